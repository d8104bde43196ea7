"""The step plan: what the cluster should look like at each canary step.

A pure function from (spec, step index, mode) to a ``DesiredState``: canary traffic
weight, stable and canary replica counts, active header routes, and what the step waits
for. The reconciler turns one DesiredState into one Pulumi update, so the whole rollout
can be printed, tested and reviewed before anything runs. The replica math follows
Argo Rollouts (utils/replicaset/canary.go); docs/plan.md states every rule, the
invariants the property tests check, and where KULTA differs.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from kulta.model.rollout import (
    AnalysisRef,
    CanaryStrategy,
    RolloutSpec,
    SetCanaryScale,
    SetHeaderRoute,
    Step,
)

__all__ = [
    "DesiredState",
    "PlanMode",
    "Wait",
    "WaitKind",
    "basic_canary_replicas",
    "desired_state",
    "full_plan",
    "replicas_for_weight",
    "resolve_max_surge",
    "resolve_max_unavailable",
]

#: ASCII digits only (``\d`` also takes other scripts' digits); used with ``fullmatch``.
_PERCENT = re.compile(r"([0-9]+)%")


class PlanMode(enum.Enum):
    """Which way the rollout is heading."""

    PROGRESSING = "Progressing"
    PROMOTED = "Promoted"
    ABORTED = "Aborted"


class WaitKind(enum.Enum):
    """What a step waits for before the next step starts."""

    NONE = "None"
    PAUSE_DURATION = "PauseDuration"
    PAUSE_UNTIL_PROMOTED = "PauseUntilPromoted"
    ANALYSIS = "Analysis"


@dataclass(frozen=True)
class Wait:
    """The wait of a step: ``seconds`` for a timed pause, ``analysis`` for an analysis step."""

    kind: WaitKind
    seconds: int | None = None
    analysis: AnalysisRef | None = None


_NO_WAIT = Wait(WaitKind.NONE)


@dataclass(frozen=True)
class DesiredState:
    """The target of one step. ``canary_weight`` applies to every HTTPRoute alike."""

    step_index: int
    canary_weight: int
    stable_replicas: int
    canary_replicas: int
    header_routes: tuple[SetHeaderRoute, ...]
    wait: Wait
    mode: PlanMode

    @property
    def stable_weight(self) -> int:
        return 100 - self.canary_weight

    @property
    def total_replicas(self) -> int:
        return self.stable_replicas + self.canary_replicas


def _resolve(value: int | str, replicas: int, *, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    found = _PERCENT.fullmatch(value)
    if found is None:
        raise ValueError(f"{value!r} is neither a count nor a percentage")
    share = Fraction(int(found.group(1)) * replicas, 100)
    return math.ceil(share) if round_up else math.floor(share)


def resolve_max_surge(strategy: CanaryStrategy, replicas: int) -> int:
    """maxSurge as a pod count: percentages round up (as in Kubernetes)."""
    return _resolve(strategy.max_surge, replicas, round_up=True)


def resolve_max_unavailable(strategy: CanaryStrategy, replicas: int) -> int:
    """maxUnavailable as a pod count: percentages round down; 1 if both resolve to 0."""
    unavailable = _resolve(strategy.max_unavailable, replicas, round_up=False)
    if unavailable == 0 and resolve_max_surge(strategy, replicas) == 0:
        return 1
    return unavailable


def replicas_for_weight(replicas: int, weight: int) -> int:
    """Pods needed to serve ``weight`` percent of the traffic: ceil(replicas * weight / 100)."""
    return -(-replicas * weight // 100)


def basic_canary_replicas(replicas: int, weight: int, max_surge: int) -> tuple[int, int]:
    """(canary, stable) pod counts whose ratio best approximates ``weight`` without routing.

    Candidates use ``replicas`` pods in total, or one more when ``max_surge`` allows a
    surge; each side keeps at least one pod when 0 < weight < 100 (unless a single pod
    without surge cannot be split). The closest ratio wins; ties prefer fewer pods in
    total, then more canary pods. Matches Argo's approximation where Argo has an answer.
    """
    if replicas == 0 or weight == 0:
        return 0, replicas
    if weight == 100:
        return replicas, 0
    allow_empty_side = replicas == 1 and max_surge == 0
    best: tuple[Fraction, int, int, int] | None = None
    totals = (replicas, replicas + 1) if max_surge > 0 else (replicas,)
    for total in totals:
        exact = Fraction(total * weight, 100)
        for canary in sorted({math.floor(exact), math.ceil(exact)}, reverse=True):
            low, high = (0, total) if allow_empty_side else (1, total - 1)
            if not low <= canary <= high:
                continue
            delta = abs(Fraction(canary * 100, total) - weight)
            key = (delta, total, -canary, canary)
            if best is None or key[:3] < best[:3]:
                best = key
    if best is None:  # replicas == 1 with surge: 1 + 1 always fits, so this is unreachable
        raise ValueError(f"no pod split for {replicas} replicas at weight {weight}")
    _, total, _, canary = best
    return canary, total - canary


def _last_weight(steps: tuple[Step, ...], upto: int) -> int:
    for step in reversed(steps[: upto + 1]):
        if step.set_weight is not None:
            return step.set_weight
    return 0


def _active_canary_scale(steps: tuple[Step, ...], upto: int) -> SetCanaryScale | None:
    """The setCanaryScale in force at ``upto``; matchTrafficWeight ends any override."""
    for step in reversed(steps[: upto + 1]):
        scale = step.set_canary_scale
        if scale is None:
            continue
        return None if scale.match_traffic_weight else scale
    return None


def _header_routes(strategy: CanaryStrategy, upto: int) -> tuple[SetHeaderRoute, ...]:
    active: dict[str, SetHeaderRoute] = {}
    for step in strategy.steps[: upto + 1]:
        route = step.set_header_route
        if route is None:
            continue
        if route.removes:
            active.pop(route.name, None)
        else:
            active[route.name] = route
    order = strategy.traffic_routing.managed_routes if strategy.traffic_routing else ()
    rank = {name: position for position, name in enumerate(order)}
    return tuple(sorted(active.values(), key=lambda route: (rank.get(route.name, len(rank)), route.name)))


def _wait(step: Step) -> Wait:
    if step.pause is not None:
        if step.pause.duration_seconds is None:
            return Wait(WaitKind.PAUSE_UNTIL_PROMOTED)
        return Wait(WaitKind.PAUSE_DURATION, seconds=step.pause.duration_seconds)
    if step.analysis is not None:
        return Wait(WaitKind.ANALYSIS, analysis=step.analysis)
    return _NO_WAIT


def _step_replicas(spec: RolloutSpec, weight: int, upto: int) -> tuple[int, int]:
    """(stable, canary) pod counts while progressing at step ``upto``."""
    strategy = spec.strategy
    replicas = spec.replicas
    if strategy.traffic_routing is None:
        canary, stable = basic_canary_replicas(replicas, weight, resolve_max_surge(strategy, replicas))
        return stable, canary
    scale = _active_canary_scale(strategy.steps, upto)
    if scale is not None and scale.replicas is not None:
        canary, scale_weight = scale.replicas, 0
    elif scale is not None and scale.weight is not None:
        canary, scale_weight = replicas_for_weight(replicas, scale.weight), scale.weight
    else:
        canary, scale_weight = replicas_for_weight(replicas, weight), weight
    if not strategy.dynamic_stable_scale:
        return replicas, canary
    stable = max(replicas_for_weight(replicas, 100 - scale_weight), replicas_for_weight(replicas, 100 - weight))
    return stable, canary


def desired_state(spec: RolloutSpec, step_index: int, mode: PlanMode = PlanMode.PROGRESSING) -> DesiredState:
    """The state once ``steps[0..step_index]`` are applied (see docs/plan.md).

    ``step_index == len(steps)`` (or mode PROMOTED) is full promotion; mode ABORTED
    sends all traffic to the stable pods and scales the canary to 0.
    """
    steps = spec.strategy.steps
    if not 0 <= step_index <= len(steps):
        raise ValueError(f"step index {step_index} is outside 0..{len(steps)}")
    if mode is PlanMode.ABORTED:
        return DesiredState(step_index, 0, spec.replicas, 0, (), _NO_WAIT, PlanMode.ABORTED)
    if mode is PlanMode.PROMOTED or step_index == len(steps):
        return DesiredState(step_index, 100, 0, spec.replicas, (), _NO_WAIT, PlanMode.PROMOTED)
    weight = _last_weight(steps, step_index)
    stable, canary = _step_replicas(spec, weight, step_index)
    return DesiredState(
        step_index=step_index,
        canary_weight=weight,
        stable_replicas=stable,
        canary_replicas=canary,
        header_routes=_header_routes(spec.strategy, step_index),
        wait=_wait(steps[step_index]),
        mode=PlanMode.PROGRESSING,
    )


def full_plan(spec: RolloutSpec) -> tuple[DesiredState, ...]:
    """Every step's state in order, then full promotion."""
    return tuple(desired_state(spec, index) for index in range(len(spec.strategy.steps) + 1))
