"""One entry of ``spec.strategy.canary.steps``: setWeight, pause, analysis, setCanaryScale,
setHeaderRoute, setMirrorRoute.

A step holds one primary action (setWeight, pause or analysis), as in Argo; the
step kinds Argo has and KULTA does not (experiment, plugin) are refused by name.
Rules that tie a step to other canary fields (setCanaryScale, setHeaderRoute and
setMirrorRoute need trafficRouting) live in ``rollout_canary``.

``setMirrorRoute`` is Argo's ``SetMirrorRoute`` (``name``, ``match`` — a list of
``RouteMatch``: ``method``, ``path``, ``headers`` — and ``percentage``). Gateway API
matches a method only exactly, from a fixed list, so a ``method`` with ``prefix``
or ``regex`` is refused by name; a path or header ``prefix`` keeps Argo's string
prefix meaning (a regular expression), as setHeaderRoute's prefix does.
"""

from __future__ import annotations

from typing import Any

from kulta.model.rollout import (
    MIRROR_METHODS,
    PRIMARY_STEP_KINDS,
    HeaderMatch,
    HeaderMatchType,
    MirrorMatch,
    Pause,
    SetCanaryScale,
    SetHeaderRoute,
    SetMirrorRoute,
    Step,
    StepKind,
)
from kulta.spec.common import check_header_name, check_header_value, compile_regex, unsupported
from kulta.spec.fields import (
    INT32_MAX,
    MISSING,
    Issues,
    Shape,
    child,
    index,
    parse_duration,
    read_bool,
    read_int,
    read_list,
    read_str,
)
from kulta.spec.rollout_analysis_refs import parse_step_analysis

__all__ = ["STEP_KEYS", "parse_step"]

#: Argo's ``RolloutPause.DurationSeconds`` returns an int32: a longer pause is invalid there
#: (a digit string fails ``strconv.ParseInt(.., 10, 32)``; a longer Go duration overflows).
_LONGEST_PAUSE = "the longest pause Argo can hold (RolloutPause.DurationSeconds counts 32-bit seconds)"

#: the step kinds KULTA reads (one key each).
STEP_KEYS = tuple(kind.value for kind in StepKind)
_STEP = Shape(
    STEP_KEYS,
    {
        "experiment": unsupported("the experiment step", "remove the step; use an analysis step to test the canary"),
        "plugin": unsupported("the plugin step", "remove the step"),
    },
)
_PAUSE = Shape(("duration",))
_SCALE_CHOICES = ("replicas", "weight", "matchTrafficWeight")
_CANARY_SCALE = Shape(_SCALE_CHOICES)
_HEADER_ROUTE = Shape(("name", "match"))
_HEADER_MATCH = Shape(("headerName", "headerValue"))
_HEADER_VALUE = Shape(tuple(member.value for member in HeaderMatchType))
_MIRROR_ROUTE = Shape(("name", "match", "percentage"))
_ROUTE_MATCH = Shape(("method", "path", "headers"))
#: Gateway API's HTTPPathMatch value limit (its CRD's maxLength)
_MAX_PATH = 1024


def _parse_pause(issues: Issues, value: Any, path: str) -> Pause | None:
    if value is None:
        issues.add(path, "is empty; write `pause: {}` to pause until promoted or `pause: {duration: 30s}`")
        return None
    data = _PAUSE.read(issues, value, path)
    if data is None:
        return None
    if "duration" not in data or data["duration"] is None:
        return Pause(duration_seconds=None)
    seconds = parse_duration(
        issues, data["duration"], child(path, "duration"), maximum=INT32_MAX, longest=_LONGEST_PAUSE
    )
    return None if seconds is None else Pause(duration_seconds=seconds)


def _parse_canary_scale(issues: Issues, value: Any, path: str) -> SetCanaryScale | None:
    data = _CANARY_SCALE.read(issues, value, path)
    if data is None:
        return None
    present = [key for key in _SCALE_CHOICES if key in data]
    if len(present) != 1:
        found = f" (found {' and '.join(present)})" if present else ""
        issues.add(path, f"needs exactly one of replicas, weight, matchTrafficWeight{found}")
        return None
    key = present[0]
    if key == "replicas":
        replicas = read_int(issues, data[key], child(path, key), minimum=0, required=True)
        return None if replicas is None else SetCanaryScale(replicas=replicas)
    if key == "weight":
        weight = read_int(issues, data[key], child(path, key), minimum=0, maximum=100, required=True)
        return None if weight is None else SetCanaryScale(weight=weight)
    match = read_bool(issues, data[key], child(path, key))
    if match is not True:
        if match is False:
            issues.add(child(path, key), "false has no effect; use matchTrafficWeight: true or set replicas/weight")
        elif data[key] is None:
            issues.add(child(path, key), "is empty; use matchTrafficWeight: true")
        return None
    return SetCanaryScale(match_traffic_weight=True)


def _parse_header_match(issues: Issues, value: Any, path: str) -> HeaderMatch | None:
    data = _HEADER_MATCH.read(issues, value, path)
    if data is None:
        return None
    name = read_str(issues, data.get("headerName", MISSING), child(path, "headerName"), required=True)
    if name is not None and not check_header_name(issues, name, child(path, "headerName")):
        name = None
    where = child(path, "headerValue")
    raw = data.get("headerValue", MISSING)
    if raw is MISSING or raw is None:
        issues.add(where, "is required: use {exact: V}, {prefix: V} or {regex: V}")
        return None
    string_match = _parse_string_match(issues, raw, where)
    if string_match is None:
        return None
    text, match_type = string_match
    if not check_header_value(issues, text, child(where, match_type.value)):
        return None
    if name is None:
        return None
    return HeaderMatch(name=name, value=text, match_type=match_type)


def _parse_string_match(issues: Issues, raw: Any, where: str) -> tuple[str, HeaderMatchType] | None:
    """Argo's ``StringMatch``: exactly one of exact, prefix, regex (a regex must compile)."""
    matcher = _HEADER_VALUE.read(issues, raw, where)
    if matcher is None:
        return None
    present = [member for member in HeaderMatchType if member.value in matcher]
    if len(present) != 1:
        found = f" (found {' and '.join(m.value for m in present)})" if present else ""
        issues.add(where, f"needs exactly one of exact, prefix, regex{found}")
        return None
    match_type = present[0]
    value_path = child(where, match_type.value)
    text = read_str(issues, matcher[match_type.value], value_path, required=True)
    if text is None:
        return None
    if match_type is HeaderMatchType.REGEX and compile_regex(issues, text, value_path) is None:
        return None
    return text, match_type


def _parse_method(issues: Issues, raw: Any, where: str) -> str | None:
    parsed = _parse_string_match(issues, raw, where)
    if parsed is None:
        return None
    text, match_type = parsed
    if match_type is not HeaderMatchType.EXACT:
        issues.add(
            child(where, match_type.value),
            f"is not supported: Gateway API matches a method only exactly; use {{exact: {', '.join(MIRROR_METHODS)}}}",
        )
        return None
    if text not in MIRROR_METHODS:
        issues.add(
            child(where, "exact"), f"{text!r} is not a Gateway API method: use one of {', '.join(MIRROR_METHODS)}"
        )
        return None
    return text


def _parse_path(issues: Issues, raw: Any, where: str) -> tuple[str, HeaderMatchType] | None:
    parsed = _parse_string_match(issues, raw, where)
    if parsed is None:
        return None
    text, match_type = parsed
    value_path = child(where, match_type.value)
    if match_type is not HeaderMatchType.REGEX and not text.startswith("/"):
        issues.add(value_path, f"{text!r} must start with '/' (Gateway API paths are absolute)")
        return None
    if len(text) > _MAX_PATH:
        issues.add(value_path, f"is {len(text)} characters; Gateway API takes at most {_MAX_PATH}")
        return None
    return parsed


def _parse_route_match(issues: Issues, value: Any, path: str) -> MirrorMatch | None:
    data = _ROUTE_MATCH.read(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    method = None
    if data.get("method") is not None:
        method = _parse_method(issues, data["method"], child(path, "method"))
    route_path = None
    if data.get("path") is not None:
        route_path = _parse_path(issues, data["path"], child(path, "path"))
    headers: list[HeaderMatch] = []
    raw_headers = data.get("headers")
    if raw_headers is not None:
        headers_path = child(path, "headers")
        if not isinstance(raw_headers, dict):
            issues.add(headers_path, "must be a map of header name to {exact|prefix|regex: VALUE}")
        else:
            for name, raw in raw_headers.items():
                where = child(headers_path, str(name))
                if not isinstance(name, str) or not check_header_name(issues, name, where):
                    continue
                parsed = _parse_string_match(issues, raw, where)
                if parsed is None or not check_header_value(issues, parsed[0], child(where, parsed[1].value)):
                    continue
                headers.append(HeaderMatch(name=name, value=parsed[0], match_type=parsed[1]))
    if len(issues) != before:
        return None
    if method is None and route_path is None and not headers:
        issues.add(path, "is empty: give a method, path or headers (an empty match would mirror every request)")
        return None
    return MirrorMatch(method=method, path=route_path, headers=tuple(headers))


def _parse_mirror_route(issues: Issues, value: Any, path: str) -> SetMirrorRoute | None:
    data = _MIRROR_ROUTE.read(issues, value, path)
    if data is None:
        return None
    before = len(issues)
    name = read_str(issues, data.get("name", MISSING), child(path, "name"), required=True)
    percentage = None
    if data.get("percentage") is not None:
        percentage = read_int(issues, data["percentage"], child(path, "percentage"), minimum=0, maximum=100)
    matches: list[MirrorMatch] = []
    items = read_list(issues, data.get("match", MISSING), child(path, "match"))
    if items == []:
        # Argo removes the route only for a nil match; an empty list is neither a removal nor a match
        issues.add(child(path, "match"), "is empty: list at least one match, or leave match out to remove the route")
    for position, item in enumerate(items or ()):
        parsed = _parse_route_match(issues, item, index(child(path, "match"), position))
        if parsed is not None:
            matches.append(parsed)
    if len(issues) != before or name is None:
        return None
    return SetMirrorRoute(name=name, matches=tuple(matches), percentage=percentage)


def _parse_header_route(issues: Issues, value: Any, path: str) -> SetHeaderRoute | None:
    data = _HEADER_ROUTE.read(issues, value, path)
    if data is None:
        return None
    name = read_str(issues, data.get("name", MISSING), child(path, "name"), required=True)
    matches: list[HeaderMatch] = []
    ok = name is not None
    items = read_list(issues, data.get("match", MISSING), child(path, "match"))
    for position, item in enumerate(items or ()):
        parsed = _parse_header_match(issues, item, index(child(path, "match"), position))
        if parsed is None:
            ok = False
        else:
            matches.append(parsed)
    if "match" in data and data["match"] is not None and items is None:
        ok = False
    return SetHeaderRoute(name=name, matches=tuple(matches)) if ok and name is not None else None


def parse_step(issues: Issues, value: Any, path: str, position: int) -> Step | None:
    """``steps[position]``: its kinds and the value of each."""
    before = len(issues)
    data = _STEP.read(issues, value, path)
    if data is None:
        return None
    if not data:
        issues.add(path, f"is empty; a step needs one of {', '.join(STEP_KEYS)}")
        return None
    kinds = frozenset(kind for kind in StepKind if kind.value in data)
    primary = [kind.value for kind in PRIMARY_STEP_KINDS if kind in kinds]
    if len(primary) > 1:
        issues.add(
            path,
            f"has {' and '.join(primary)}; a step may have only one of setWeight, pause, analysis: "
            "split it into one step each",
        )
    set_weight = None
    if StepKind.SET_WEIGHT in kinds:
        set_weight = read_int(
            issues, data["setWeight"], child(path, "setWeight"), minimum=0, maximum=100, required=True
        )
    pause = _parse_pause(issues, data["pause"], child(path, "pause")) if StepKind.PAUSE in kinds else None
    analysis = (
        parse_step_analysis(issues, data["analysis"], child(path, "analysis")) if StepKind.ANALYSIS in kinds else None
    )
    scale = (
        _parse_canary_scale(issues, data["setCanaryScale"], child(path, "setCanaryScale"))
        if StepKind.SET_CANARY_SCALE in kinds
        else None
    )
    header = (
        _parse_header_route(issues, data["setHeaderRoute"], child(path, "setHeaderRoute"))
        if StepKind.SET_HEADER_ROUTE in kinds
        else None
    )
    mirror = (
        _parse_mirror_route(issues, data["setMirrorRoute"], child(path, "setMirrorRoute"))
        if StepKind.SET_MIRROR_ROUTE in kinds
        else None
    )
    if len(issues) != before or not kinds:
        return None
    return Step(
        index=position,
        kinds=kinds,
        set_weight=set_weight,
        pause=pause,
        analysis=analysis,
        set_canary_scale=scale,
        set_header_route=header,
        set_mirror_route=mirror,
    )
