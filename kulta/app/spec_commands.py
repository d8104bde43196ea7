"""``kulta validate`` and ``kulta plan``: check files and show a rollout before it runs.

Both work on files only (no cluster, no Pulumi), so they fit in CI and pre-commit
hooks. Output goes to the stream the CLI passes in, one error per line in the
``file#doc field.path: message`` form, so editors and CI logs can point at the line.
Every line is written through ``kulta.spec.escape.one_line``: a file name, key or value
holding a newline or an escape sequence shows it escaped and never starts a line.

``validate``, ``plan`` and ``preview`` read files by one rule, ``load_with_references``
(docs/spec.md, "Which files are read"): the named files, plus the other YAML files of
each named file's directory to find what they refer to; errors only of the named files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from kulta.app.bluegreen_plan import render_blue_green_plan
from kulta.app.text_table import table
from kulta.core.constants import GRPCROUTE_KIND, HTTPROUTE_KIND
from kulta.core.plan import (
    DesiredState,
    PlanMode,
    Wait,
    WaitKind,
    desired_state,
    full_plan,
    rolling_update,
    weighted_steps_without_canary_pods,
)
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.errors import SpecError
from kulta.model.rollout import DEFAULT_NAMESPACE, OtherDocument, Rollout, SetMirrorRoute, Step, StepKind
from kulta.spec import LoadResult, load_paths
from kulta.spec.escape import one_line
from kulta.spec.fields import format_seconds
from kulta.spec.namespaces import DefaultNamespaces

__all__ = [
    "describe_action",
    "format_duration",
    "load_with_references",
    "plan_command",
    "render_plan",
    "validate_command",
]

log = logging.getLogger(__name__)

_HEADERS = ("step", "action", "canary%", "stable%", "stable pods", "canary pods", "header routes", "wait")
#: the column a plan shows only when a step sets a mirror route (plans without one print as before)
_MIRROR_HEADER = "mirror routes"


def format_duration(seconds: int) -> str:
    """``90`` -> ``1m30s``; ``3600`` -> ``1h``; ``0`` -> ``0s``."""
    return format_seconds(seconds)


def load_with_references(paths: Sequence[str], *, namespace: str = DEFAULT_NAMESPACE) -> LoadResult:
    """The files ``validate``, ``plan`` and ``preview`` read, by the same rule for all three.

    The named files (files, directories, globs) are checked; the other YAML files directly
    in each named file's directory are read too, for the analysis templates and
    ``workloadRef`` Deployments the named files refer to, but their errors are not reported.
    Documents without ``metadata.namespace`` are in ``namespace`` (``--namespace``).
    """
    return load_paths(paths, base=Path.cwd(), siblings=True, namespaces=DefaultNamespaces(default=namespace))


def _summary(result: LoadResult) -> str:
    text = (
        f"{len(result.files)} file(s): {len(result.rollouts)} rollout(s), "
        f"{len(result.templates_of_named_files())} analysis template(s), {len(result.errors)} error(s)"
    )
    if result.warnings:
        text += f", {len(result.warnings)} warning(s)"
    if result.reference_files:
        text += f"; {len(result.reference_files)} more file(s) of their directories read for references"
    return text


def _write(out: TextIO, line: str) -> None:
    """One output line; what came from the files (names, paths, values) cannot break it (``one_line``)."""
    out.write(one_line(line) + "\n")


def _write_errors(errors: Sequence[SpecError], out: TextIO) -> None:
    for error in errors:
        _write(out, str(error))


def validate_command(paths: Sequence[str], out: TextIO, *, namespace: str = DEFAULT_NAMESPACE) -> int:
    """Print every error and warning of every file, then a summary; 0 when all files are valid.

    Warnings (fields KULTA accepts but does not use) never change the exit status.
    """
    result = load_with_references(paths, namespace=namespace)
    _write_errors(result.errors, out)
    for warning in result.warnings:
        _write(out, f"warning: {warning}")
    if not result.files and not result.errors:
        _write(out, "no YAML files found: pass files, directories or globs")
        return 1
    status = "FAILED" if result.errors else "OK"
    _write(out, f"{status}: {_summary(result)}")
    return 1 if result.errors else 0


def describe_action(step: Step) -> str:
    parts: list[str] = []
    for kind in (
        StepKind.SET_WEIGHT,
        StepKind.PAUSE,
        StepKind.ANALYSIS,
        StepKind.SET_CANARY_SCALE,
        StepKind.SET_HEADER_ROUTE,
        StepKind.SET_MIRROR_ROUTE,
    ):
        if kind not in step.kinds:
            continue
        if kind is StepKind.SET_WEIGHT:
            parts.append(f"setWeight {step.set_weight}")
        elif kind is StepKind.PAUSE:
            parts.append("pause")
        elif kind is StepKind.ANALYSIS and step.analysis is not None:
            parts.append("analysis " + ",".join(ref.name for ref in step.analysis.templates))
        elif kind is StepKind.SET_CANARY_SCALE and step.set_canary_scale is not None:
            scale = step.set_canary_scale
            if scale.replicas is not None:
                parts.append(f"setCanaryScale replicas={scale.replicas}")
            elif scale.weight is not None:
                parts.append(f"setCanaryScale weight={scale.weight}")
            else:
                parts.append("setCanaryScale matchTrafficWeight")
        elif kind is StepKind.SET_HEADER_ROUTE and step.set_header_route is not None:
            route = step.set_header_route
            parts.append(f"setHeaderRoute {route.name}" + (" (remove)" if route.removes else ""))
        elif kind is StepKind.SET_MIRROR_ROUTE and step.set_mirror_route is not None:
            mirror = step.set_mirror_route
            parts.append(f"setMirrorRoute {mirror.name}" + (" (remove)" if mirror.removes else ""))
    return " + ".join(parts)


def _describe_wait(state: DesiredState) -> str:
    wait = state.wait
    if wait.kind is WaitKind.PAUSE_DURATION and wait.seconds is not None:
        return format_duration(wait.seconds)
    if wait.kind is WaitKind.PAUSE_UNTIL_PROMOTED:
        return "until promoted"
    if wait.kind is WaitKind.ANALYSIS and wait.analysis is not None:
        return "analysis " + ",".join(ref.name for ref in wait.analysis.templates)
    return "-"


def _row(label: str, action: str, state: DesiredState, *, mirrors: bool = False) -> tuple[str, ...]:
    routes = ",".join(route.name for route in state.header_routes) or "-"
    row = (
        label,
        action,
        str(state.canary_weight),
        str(state.stable_weight),
        str(state.stable_replicas),
        str(state.canary_replicas),
        routes,
        _describe_wait(state),
    )
    if not mirrors:
        return row
    mirrored = ",".join(_describe_mirror(route) for route in state.mirror_routes) or "-"
    return (*row[:-1], mirrored, row[-1])


def _describe_mirror(route: SetMirrorRoute) -> str:
    return route.name if route.percentage is None else f"{route.name}({route.percentage}%)"


#: a plan lists at most this many rolling-update moves (they grow with replicas)
MAX_PLAN_MOVES = 40


def render_plan(rollout: Rollout, others: Sequence[OtherDocument] = ()) -> list[str]:
    """The lines ``kulta plan`` prints for one Rollout."""
    spec = rollout.spec
    strategy = spec.strategy
    lines = [f"Rollout {rollout.namespace}/{rollout.name} ({rollout.source})"]
    try:
        revision = pod_template_hash(resolve_template(rollout, others))
    except SpecError as exc:
        revision = f"unknown ({exc.message})"
    lines.append(f"  replicas: {spec.replicas}; revision (pod-template-hash): {revision}")
    if spec.blue_green is not None:
        return lines + render_blue_green_plan(rollout, spec.blue_green)
    routing = strategy.traffic_routing
    if routing is None:
        lines.append("  traffic: no trafficRouting; the canary's share of pods approximates the weight")
    else:
        groups = ((HTTPROUTE_KIND, routing.http_routes), (GRPCROUTE_KIND, routing.grpc_routes))
        routes = "; ".join(
            f"{kind} " + ", ".join(f"{route.namespace or rollout.namespace}/{route.name}" for route in refs)
            for kind, refs in groups
            if refs
        )
        lines.append(
            f"  traffic: {routes}; services {strategy.stable_service} (stable), "
            f"{strategy.canary_service} (canary); dynamicStableScale: {str(strategy.dynamic_stable_scale).lower()}"
        )
    if strategy.analysis is not None:
        names = ",".join(ref.name for ref in strategy.analysis.templates)
        lines.append(f"  background analysis: {names} from step {strategy.analysis.starting_step}")
    mirrors = any(step.set_mirror_route is not None for step in strategy.steps)
    rows: list[tuple[str, ...]] = [(*_HEADERS[:-1], _MIRROR_HEADER, _HEADERS[-1]) if mirrors else _HEADERS]
    plan = full_plan(spec)
    for step, state in zip(strategy.steps, plan, strict=False):
        rows.append(_row(str(step.index), describe_action(step), state, mirrors=mirrors))
    more_moves = False
    if not strategy.steps and routing is None:
        # Argo's paced replacement: one ReplicaSet moves per update, within maxSurge/maxUnavailable;
        # the moves grow with replicas, so a plan lists at most MAX_PLAN_MOVES of them
        pods = (spec.replicas, 0)
        for move in range(1, MAX_PLAN_MOVES + 2):
            following = rolling_update(spec, *pods)
            if following is None:
                break
            if move > MAX_PLAN_MOVES:
                more_moves = True
                break
            pods = following
            stable, canary = pods
            share = round(100 * canary / (stable + canary)) if stable + canary else 0
            state = DesiredState(0, share, stable, canary, (), Wait(WaitKind.NONE), PlanMode.PROGRESSING)
            rows.append(_row(f"move {move}", "rolling update", state))
    rows.append(_row("end", "promote", plan[-1], mirrors=mirrors))
    rows.append(_row("abort", "abort (any step)", desired_state(spec, 0, PlanMode.ABORTED), mirrors=mirrors))
    lines.extend("  " + line for line in table(rows))
    if mirrors:
        lines.append(
            "  note: a mirror route's requests keep the step's split and are copied to the canary Service "
            "(Gateway API RequestMirror; the copies' responses are discarded)"
        )
    if more_moves:
        lines.append(f"  note: more than {MAX_PLAN_MOVES} moves; the rest continue the same way until promotion")
    for index in weighted_steps_without_canary_pods(spec):
        lines.append(
            f"  note: step {index} runs no canary pod: Argo finds no split of {spec.replicas} pod(s) for "
            f"{plan[index].canary_weight}% (add replicas or maxSurge, or choose another weight)"
        )
    return lines


def plan_command(path: str, out: TextIO, *, namespace: str = DEFAULT_NAMESPACE) -> int:
    """Print the whole plan of each Rollout in the file ``path``; 1 when it has errors.

    Files are read as by ``validate`` (``load_with_references``): analysis templates and
    ``workloadRef`` Deployments may be in the other YAML files of the same directory.
    """
    if not os.path.lexists(path) or os.path.isdir(path):
        # anything else that is not a regular file (a FIFO, a broken link) is named by the loader
        _write(out, f"{path}: no such file: pass one YAML file")
        return 1
    result = load_with_references([path], namespace=namespace)
    name = result.files[0] if result.files else path
    if result.errors:
        _write_errors(result.errors, out)
        _write(out, f"FAILED: {len(result.errors)} error(s) in {name}")
        return 1
    if not result.rollouts:
        _write(out, f"no Rollout found in {name}")
        return 1
    for position, rollout in enumerate(result.rollouts):
        if position:
            _write(out, "")
        for line in render_plan(rollout, result.others):
            _write(out, line)
    log.debug("printed the plan of %d rollouts from %s", len(result.rollouts), name)
    return 0
