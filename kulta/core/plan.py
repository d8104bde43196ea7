"""The step plan: what the cluster should look like at each canary step.

A pure function from (spec, step index, mode) to a ``DesiredState``: canary traffic
weight, stable and canary replica counts, active header routes, and what the step waits
for. The reconciler turns one DesiredState into one Pulumi update, so the whole rollout
can be printed, tested and reviewed before anything runs. The replica math follows
Argo Rollouts (utils/replicaset/canary.go); docs/plan.md states every rule and
how the tests check it against Argo.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from kulta.core.defaults import abort_scale_down_delay_seconds
from kulta.model.rollout import (
    AnalysisRef,
    CanaryStrategy,
    RolloutSpec,
    SetCanaryScale,
    SetHeaderRoute,
    SetMirrorRoute,
    Step,
)

__all__ = [
    "MAX_WEIGHT",
    "DesiredState",
    "PlanMode",
    "Pods",
    "ReplicaSetScale",
    "Wait",
    "WaitKind",
    "abort_canary_weight",
    "abort_route_weight",
    "basic_canary_counts",
    "basic_canary_next",
    "basic_canary_path",
    "basic_canary_replicas",
    "desired_state",
    "full_plan",
    "replicas_for_weight",
    "resolve_max_surge",
    "resolve_max_unavailable",
    "rolling_plan",
    "rolling_update",
    "routed_replicas",
    "stable_replicas_for_weights",
    "weighted_steps_without_canary_pods",
]

#: ASCII digits only (``\d`` also takes other scripts' digits); used with ``fullmatch``.
_PERCENT = re.compile(r"([0-9]+)%")

#: Argo's ``weightutil.MaxTrafficWeight``: weights are percentages (maxTrafficWeight is refused)
MAX_WEIGHT = 100

#: (stable, canary) pod counts
Pods = tuple[int, int]


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
    #: the mirror routes active at this step (``setMirrorRoute``), in managedRoutes order
    mirror_routes: tuple[SetMirrorRoute, ...] = ()

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
    """maxSurge as a pod count, as Argo's ``MaxSurge``: percentages round up."""
    return _resolve(strategy.max_surge, replicas, round_up=True)


def resolve_max_unavailable(strategy: CanaryStrategy, replicas: int) -> int:
    """maxUnavailable as a pod count, as Argo's ``MaxUnavailable`` (``resolveFenceposts``).

    Percentages round down; 1 when both maxSurge and maxUnavailable resolve to 0; never
    more than ``replicas``; 0 for 0 replicas.
    """
    if replicas == 0:
        return 0
    unavailable = _resolve(strategy.max_unavailable, replicas, round_up=False)
    if unavailable == 0 and resolve_max_surge(strategy, replicas) == 0:
        unavailable = 1
    return min(unavailable, replicas)


def replicas_for_weight(replicas: int, weight: int) -> int:
    """Pods needed to serve ``weight`` percent of the traffic: ceil(replicas * weight / 100).

    Argo's ``trafficWeightToReplicas``. Argo divides in float64; for integers the
    ceiling is the same while replicas * weight stays below 2**40.
    """
    return -(-replicas * weight // MAX_WEIGHT)


def _floor_ceiling_tied(weight: int, total: int) -> bool:
    """Argo's ``floorCeilingTied``: total * weight / 100 ends in exactly .5, in float64."""
    return math.modf(float(total) * (float(weight) / float(MAX_WEIGHT)))[0] == 0.5


def _weight_delta(weight: int, canary: int, total: int) -> float:
    """Argo's ``weightDelta``: how far ``canary`` of ``total`` pods is from ``weight``, in float64."""
    return abs(float(canary * MAX_WEIGHT) / float(total) - float(weight))


def basic_canary_replicas(replicas: int, weight: int, max_surge: int) -> tuple[int, int]:
    """(canary, stable) pods approximating ``weight`` without traffic routing.

    Argo's ``approximateWeightedCanaryStableReplicaCounts`` (utils/replicaset/canary.go),
    computed in float64 exactly as Argo does. The candidates, in this order: the
    ceiling of ``replicas * weight / 100`` canary pods out of ``replicas`` (only if it
    leaves a stable pod); the floor, out of ``replicas`` (unless floor and ceiling are
    equally close, or the floor is 0); with ``max_surge`` > 0 the same two canary
    counts out of ``replicas + 1``. A count of 0 is allowed only at weight 0 or 100
    or for a single pod without surge. The first candidate with the smallest
    distance to ``weight`` wins. Without any candidate (e.g. 10 pods, weight 95, no
    surge) Argo runs no canary pod: (0, replicas).
    """
    if replicas == 0:
        return 0, 0
    exact = float(replicas * weight) / float(MAX_WEIGHT)
    ceiling, floor = math.ceil(exact), math.floor(exact)
    zero_allowed = weight in (0, MAX_WEIGHT) or (replicas == 1 and max_surge == 0)
    totals = (replicas, replicas + 1) if max_surge > 0 else (replicas,)
    options: list[tuple[int, int]] = []
    for total in totals:
        if ceiling < replicas or zero_allowed or total > replicas:
            options.append((ceiling, total))
        if not _floor_ceiling_tied(weight, total) and (floor != 0 or zero_allowed):
            options.append((floor, total))
    if not options:
        return 0, replicas
    canary, total = min(options, key=lambda option: _weight_delta(weight, *option))
    return canary, total - canary


def weighted_steps_without_canary_pods(spec: RolloutSpec) -> tuple[int, ...]:
    """Indexes of the steps whose canary weight is above 0 but whose plan has no canary pod.

    A basic canary gets there (``basic_canary_replicas``) with one replica, no surge and
    a weight below 50 %, or at a weight Argo finds no pod split for (e.g. 95 % of 10
    pods without surge); a traffic-routed one with a setCanaryScale of 0 pods. Empty
    for 0 replicas. ``kulta validate`` can warn about these steps.
    """
    if spec.replicas == 0:
        return ()
    return tuple(
        state.step_index for state in full_plan(spec)[:-1] if state.canary_weight > 0 and state.canary_replicas == 0
    )


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


def _managed_order(strategy: CanaryStrategy) -> dict[str, int]:
    order = strategy.traffic_routing.managed_routes if strategy.traffic_routing else ()
    return {name: position for position, name in enumerate(order)}


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
    rank = _managed_order(strategy)
    return tuple(sorted(active.values(), key=lambda route: (rank.get(route.name, len(rank)), route.name)))


def _mirror_routes(strategy: CanaryStrategy, upto: int) -> tuple[SetMirrorRoute, ...]:
    """The mirror routes set by steps 0..upto and not removed since (a later one replaces an earlier one).

    As Argo's ``SetMirrorRoute`` handling: a step with ``match`` sets the named
    route, one without removes it; all managed routes go at promotion and abort
    (``reconcileTrafficRouting`` calls ``RemoveManagedRoutes`` once the rollout
    ``IsFullyPromoted`` and when the canary has no available pods, as after an
    abort), which ``desired_state`` expresses by returning none then.
    """
    active: dict[str, SetMirrorRoute] = {}
    for step in strategy.steps[: upto + 1]:
        route = step.set_mirror_route
        if route is None:
            continue
        if route.removes:
            active.pop(route.name, None)
        else:
            active[route.name] = route
    rank = _managed_order(strategy)
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
    """(stable, canary) pod counts while progressing at step ``upto``, the route at ``weight``."""
    strategy = spec.strategy
    if strategy.traffic_routing is None:
        canary, stable = basic_canary_replicas(spec.replicas, weight, resolve_max_surge(strategy, spec.replicas))
        return stable, canary
    return routed_replicas(spec, upto, weight)


def _has_explicit_abort_scale_down_delay(strategy: CanaryStrategy) -> bool:
    """Argo's ``HasExplicitAbortScaleDownDelay``: set with traffic routing, and not 0."""
    return strategy.traffic_routing is not None and strategy.abort_scale_down_delay_seconds not in (None, 0)


def abort_canary_weight(spec: RolloutSpec, stable_available: int, canary_available: int) -> int:
    """The canary weight an aborting dynamicStableScale rollout steps down to next.

    Argo's ``GetDesiredCanaryWeight`` while aborted with ``dynamicStableScale``: the
    canary still needs ``replicas - stable_available`` pods (or, unless
    abortScaleDownDelaySeconds is set to a delay, its available pods if more); the
    result is the weight of the last ``setWeight`` step whose pods are fewer than that,
    0 if none. 0 without traffic routing or without ``dynamicStableScale``
    (``GetCurrentSetWeight`` of an aborted rollout).
    """
    strategy = spec.strategy
    if strategy.traffic_routing is None or not strategy.dynamic_stable_scale:
        return 0
    replicas = spec.replicas
    needed = replicas - stable_available
    if not _has_explicit_abort_scale_down_delay(strategy):
        needed = max(needed, canary_available)
    for step in reversed(strategy.steps):
        if step.set_weight is not None and replicas_for_weight(replicas, step.set_weight) < needed:
            return step.set_weight
    return 0


def abort_route_weight(
    spec: RolloutSpec, stable_available: int, canary_available: int, current_canary_weight: int | None
) -> int:
    """The canary weight to put on the route while a dynamicStableScale rollout aborts.

    Argo's ``calculateDesiredWeightOnAbortOrStableRollback`` (rollout/trafficrouting.go):
    traffic leaves the canary only as fast as the stable's available pods can take it
    (in whole percent, rounded down), never goes back up, and follows
    ``abort_canary_weight`` once the stable is big enough for it.
    ``current_canary_weight`` is the weight on the route now (None if none was set).
    0 without ``dynamicStableScale`` (the route goes back to the stable at once) or
    without replicas.
    """
    strategy = spec.strategy
    replicas = spec.replicas
    if strategy.traffic_routing is None or not strategy.dynamic_stable_scale or replicas == 0:
        return 0
    desired = abort_canary_weight(spec, stable_available, canary_available)
    stable_share = MAX_WEIGHT * stable_available // replicas
    expected = max(0, MAX_WEIGHT - stable_share)
    if current_canary_weight is None:
        return max(expected, desired)
    if desired <= 0:
        return min(expected, current_canary_weight)
    if stable_share < MAX_WEIGHT - desired:
        return current_canary_weight
    return min(desired, current_canary_weight)


def stable_replicas_for_weights(
    spec: RolloutSpec, desired_canary_weight: int, current_canary_weight: int | None
) -> int:
    """Stable pods of a traffic-routed canary, given the weight the route carries now.

    Argo's ``CalculateReplicaCountsForTrafficRoutedCanary``: ``replicas`` without
    ``dynamicStableScale``; with it, the pods for the higher of the desired stable
    weight (``100 - desired_canary_weight``) and the stable weight on the route
    (``100 - current_canary_weight``; ignored when None, i.e. no weight set yet). So
    the stable shrinks only once traffic has left it, and grows back before traffic
    returns. ``desired_canary_weight`` is Argo's desired weight: the setCanaryScale
    weight in force, 0 under a setCanaryScale replicas count, else the step's weight
    (``routed_replicas`` works it out from the step).
    """
    replicas = spec.replicas
    if not spec.strategy.dynamic_stable_scale:
        return replicas
    stable = replicas_for_weight(replicas, MAX_WEIGHT - desired_canary_weight)
    if current_canary_weight is None:
        return stable
    return max(stable, replicas_for_weight(replicas, MAX_WEIGHT - current_canary_weight))


def _canary_replicas_or_weight(
    spec: RolloutSpec, step_index: int, mode: PlanMode, available: tuple[int, int] | None
) -> tuple[int | None, int]:
    """Argo's ``GetCanaryReplicasOrWeight``: a setCanaryScale pod count, or the desired weight."""
    steps = spec.strategy.steps
    if mode is PlanMode.PROMOTED or (mode is PlanMode.PROGRESSING and step_index >= len(steps)):
        return None, MAX_WEIGHT
    if mode is PlanMode.ABORTED:
        # UseSetCanaryScale keeps a setCanaryScale after an abort only when
        # abortScaleDownDelaySeconds is 0; Argo resets the step index to 0 on abort.
        keep = bool(steps) and abort_scale_down_delay_seconds(spec.strategy) is None
        scale = _active_canary_scale(steps, 0) if keep else None
    else:
        scale = _active_canary_scale(steps, step_index)
    if scale is not None and scale.replicas is not None:
        return scale.replicas, 0
    if scale is not None and scale.weight is not None:
        return None, scale.weight
    if mode is PlanMode.ABORTED:
        return None, 0 if available is None else abort_canary_weight(spec, *available)
    return None, _last_weight(steps, step_index)


def routed_replicas(
    spec: RolloutSpec,
    step_index: int,
    current_canary_weight: int | None,
    mode: PlanMode = PlanMode.PROGRESSING,
    *,
    stable_available: int | None = None,
    canary_available: int | None = None,
) -> Pods:
    """(stable, canary) pods of a traffic-routed canary at a step, given the route's weight now.

    Argo's ``CalculateReplicaCountsForTrafficRoutedCanary`` with the weights on the route
    (``status.canary.weights``): the canary has the setCanaryScale count in force, or the
    pods for the desired weight (``GetCanaryReplicasOrWeight``); the stable is
    ``stable_replicas_for_weights``. While aborting with ``dynamicStableScale`` the
    canary keeps pods for the higher of the desired weight and the weight still on the
    route, and the desired weight steps down with the stable's availability
    (``abort_canary_weight``; give ``stable_available`` and ``canary_available``, else
    the end of the abort is assumed). Mode PROMOTED (or ``step_index == len(steps)``) is
    weight 100 before the previous stable is scaled down.

    When Argo delays the scale-down of an aborted canary (``abortScaleDownDelaySeconds``,
    30 s by default, except under ``dynamicStableScale`` without an explicit value) it
    leaves the canary's pods as they are until the stable is full and the delay has
    passed; the canary count here is what it scales to afterwards.
    """
    strategy = spec.strategy
    if strategy.traffic_routing is None:
        raise ValueError("routed_replicas needs trafficRouting; see basic_canary_counts")
    if not 0 <= step_index <= len(strategy.steps):
        raise ValueError(f"step index {step_index} is outside 0..{len(strategy.steps)}")
    available = None if stable_available is None or canary_available is None else (stable_available, canary_available)
    override, desired_weight = _canary_replicas_or_weight(spec, step_index, mode, available)
    replicas = spec.replicas
    canary = override if override is not None else replicas_for_weight(replicas, desired_weight)
    if not strategy.dynamic_stable_scale:
        return replicas, canary
    stable = stable_replicas_for_weights(spec, desired_weight, current_canary_weight)
    if mode is PlanMode.ABORTED and current_canary_weight is not None:
        canary = max(replicas_for_weight(replicas, current_canary_weight), canary)
    return stable, canary


def _aborted_replicas(spec: RolloutSpec, step_index: int) -> Pods:
    """(stable, canary) once an abort is over: all traffic on the stable."""
    if spec.strategy.traffic_routing is None:
        return spec.replicas, 0
    return routed_replicas(spec, step_index, 0, PlanMode.ABORTED)


def desired_state(spec: RolloutSpec, step_index: int, mode: PlanMode = PlanMode.PROGRESSING) -> DesiredState:
    """The state once ``steps[0..step_index]`` are applied (see docs/plan.md).

    ``step_index == len(steps)`` (or mode PROMOTED) is full promotion; mode ABORTED
    sends all traffic to the stable pods and scales the canary to 0 (to the
    setCanaryScale of step 0 when abortScaleDownDelaySeconds is 0, as Argo does).
    """
    steps = spec.strategy.steps
    if not 0 <= step_index <= len(steps):
        raise ValueError(f"step index {step_index} is outside 0..{len(steps)}")
    if mode is PlanMode.ABORTED:
        stable, canary = _aborted_replicas(spec, step_index)
        return DesiredState(step_index, 0, stable, canary, (), _NO_WAIT, PlanMode.ABORTED)
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
        mirror_routes=_mirror_routes(spec.strategy, step_index),
    )


def full_plan(spec: RolloutSpec) -> tuple[DesiredState, ...]:
    """Every step's state in order, then full promotion."""
    return tuple(desired_state(spec, index) for index in range(len(spec.strategy.steps) + 1))


# --- Paced transitions: how Argo moves the pods between two states ---------------------


@dataclass(frozen=True)
class ReplicaSetScale:
    """A ReplicaSet as Argo's replica math sees it: ``spec.replicas`` and ``status.availableReplicas``."""

    replicas: int
    available: int

    @classmethod
    def ready(cls, replicas: int) -> ReplicaSetScale:
        """A ReplicaSet whose pods are all available."""
        return cls(replicas, replicas)


def _replicas_for_scale_down(rs: ReplicaSetScale, ignore_availability: bool) -> int:
    """Argo's ``GetReplicasForScaleDown``."""
    if rs.replicas < rs.available:
        return rs.replicas
    return rs.replicas if ignore_availability else rs.available


def _adjust_within_limits(
    drain: ReplicaSetScale,
    adjust: ReplicaSetScale,
    drain_count: int,
    adjust_count: int,
    max_total: int,
    min_available: int,
) -> tuple[int, int]:
    """Argo's ``adjustReplicaWithinLimits``: (drain count, adjust count) within both bounds."""
    over_limit = max(0, adjust_count + drain_count - max_total)
    available = min(drain.available, drain_count)
    adjust_count -= over_limit
    available += min(adjust.available, adjust_count)
    extra_available = max(0, adjust.available - adjust_count)
    missing_available = max(0, min_available - available)
    adjust_count += min(extra_available, missing_available)
    over_limit = max(0, adjust_count + drain_count - max_total)
    return drain_count - over_limit, adjust_count


def basic_canary_counts(
    spec: RolloutSpec,
    weight: int,
    stable: ReplicaSetScale,
    canary: ReplicaSetScale,
    older_replicas: int = 0,
) -> Pods:
    """(stable, canary) pods Argo asks for next, without traffic routing.

    Argo's ``CalculateReplicaCountsForBasicCanary`` (utils/replicaset/canary.go) with a
    stable ReplicaSet distinct from the canary; ``weight`` is the desired canary weight
    (the step's, 0 when aborted, 100 past the last step or without steps) and
    ``older_replicas`` the pods of every other ReplicaSet. The target split is
    ``basic_canary_replicas``; towards it Argo first scales up (the stable before the
    canary) within ``replicas + maxSurge`` pods in total, then, if no older ReplicaSet
    has pods, scales down (the stable when the canary grows, the canary when it shrinks)
    only as far as ``replicas - maxUnavailable`` available pods allow.
    """
    replicas = spec.replicas
    surge = resolve_max_surge(spec.strategy, replicas)
    desired_canary, desired_stable = basic_canary_replicas(replicas, weight, surge)
    stable_count, canary_count = stable.replicas, canary.replicas
    max_total = replicas + surge
    scale_up = max_total - (older_replicas + stable.replicas + canary.replicas)
    if stable.replicas < desired_stable and scale_up > 0:
        stable_count = min(stable.replicas + scale_up, desired_stable)
        scale_up -= stable_count - stable.replicas
    if canary.replicas < desired_canary and scale_up > 0:
        canary_count = min(canary.replicas + scale_up, desired_canary)
    if older_replicas > 0:
        return stable_count, canary_count
    min_available = replicas - resolve_max_unavailable(spec.strategy, replicas)
    increasing = desired_canary >= canary.replicas
    to_scale_down = _replicas_for_scale_down(canary, not increasing) + _replicas_for_scale_down(stable, increasing)
    if to_scale_down <= min_available:
        return stable_count, canary_count
    scale_down = to_scale_down - min_available
    if increasing:
        if stable.replicas > desired_stable:
            stable_count = max(desired_stable, stable.replicas - scale_down)
        return _adjust_within_limits(stable, canary, stable_count, canary_count, max_total, min_available)
    if canary.replicas > desired_canary:
        canary_count = max(desired_canary, canary.replicas - scale_down)
    canary_count, stable_count = _adjust_within_limits(
        canary, stable, canary_count, stable_count, max_total, min_available
    )
    return stable_count, canary_count


def basic_canary_next(spec: RolloutSpec, weight: int, stable: int, canary: int) -> Pods | None:
    """The pods after Argo's next scaling towards ``weight`` (basic canary), all available.

    One pass of Argo's ``reconcileCanaryReplicaSets`` (rollout/canary.go) when every
    created pod is available: the stable ReplicaSet is reconciled first, and a pass that
    scales it ends there; otherwise the canary is scaled (``NewRSNewReplicas``). So each
    call changes one side only. None when Argo would scale nothing: the pods are at the
    split for ``weight``.
    """
    stable_target, canary_target = basic_canary_counts(
        spec, weight, ReplicaSetScale.ready(stable), ReplicaSetScale.ready(canary)
    )
    if stable_target != stable:
        return stable_target, canary
    if canary_target != canary:
        return stable, canary_target
    return None


def basic_canary_path(spec: RolloutSpec, weight: int, stable: int, canary: int) -> tuple[Pods, ...]:
    """(stable, canary) from the given pods to the split for ``weight``, one scaling at a time.

    Every state is one ``basic_canary_next``; the first is the given one. Starting
    within ``replicas - maxUnavailable`` .. ``replicas + maxSurge`` pods, every state
    stays within them.
    """
    path = [(stable, canary)]
    seen = {path[0]}
    while (following := basic_canary_next(spec, weight, *path[-1])) is not None:
        if following in seen:  # Argo's arithmetic always settles; a loop would be a porting bug
            raise RuntimeError(f"basic canary pods cycle at {following} towards weight {weight}")
        seen.add(following)
        path.append(following)
    return tuple(path)


def rolling_update(spec: RolloutSpec, stable: int, canary: int) -> Pods | None:
    """The next (stable, canary) pods of a Rollout without steps; None once at (0, replicas).

    Without steps Argo's desired weight is 100 (``GetCurrentSetWeight``). Without traffic
    routing that is ``basic_canary_next`` at weight 100: paced by maxSurge and
    maxUnavailable, the stable scaled first. With traffic routing Argo does not pace:
    the stable is kept at ``replicas`` and the canary goes to ``replicas`` at once
    (``CalculateReplicaCountsForTrafficRoutedCanary`` at weight 100); once it is
    available the rollout is promoted and the previous stable scaled to 0 (after
    ``scaleDownDelaySeconds``, or at once with ``dynamicStableScale``).
    """
    replicas = spec.replicas
    if spec.strategy.traffic_routing is None:
        return basic_canary_next(spec, MAX_WEIGHT, stable, canary)
    if (stable, canary) == (0, replicas):
        return None
    if canary == replicas:
        return 0, replicas
    if stable != replicas:
        return replicas, canary
    return replicas, replicas


def rolling_plan(spec: RolloutSpec) -> tuple[Pods, ...]:
    """Every (stable, canary) of a Rollout without steps, from (replicas, 0) to (0, replicas)."""
    if spec.strategy.traffic_routing is None:
        return basic_canary_path(spec, MAX_WEIGHT, spec.replicas, 0)
    path = [(spec.replicas, 0)]
    while (following := rolling_update(spec, *path[-1])) is not None:
        path.append(following)
    return tuple(path)
