"""Rollout parsing: every step kind, every field, and every error message."""

from __future__ import annotations

from typing import Any

import pytest

from kulta.model.rollout import (
    AnalysisArg,
    AnalysisRef,
    AnalysisTemplateRef,
    ArgValueFrom,
    HeaderMatch,
    HeaderMatchType,
    HTTPRouteRef,
    MirrorMatch,
    Pause,
    PodTemplateHashValue,
    SetCanaryScale,
    SetHeaderRoute,
    SetMirrorRoute,
    StepKind,
    TrafficRouting,
)
from tests.unit.spec_helpers import FILE, base_rollout, canary, error_lines, load, template_doc, with_steps

MANAGED = {"managedRoutes": [{"name": "beta"}]}
ROUTING_HEADERS = {
    "managedRoutes": [{"name": "beta"}],
    "plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}},
}


def only_step(step: dict[str, Any], **canary_changes: Any) -> Any:
    result = load(with_steps(step, **canary_changes), template_doc())
    assert error_lines(result) == []
    (rollout,) = result.rollouts
    (parsed,) = rollout.spec.strategy.steps
    return parsed


@pytest.mark.parametrize(
    ("step", "kind", "attribute", "expected"),
    [
        ({"setWeight": 0}, StepKind.SET_WEIGHT, "set_weight", 0),
        ({"setWeight": 100}, StepKind.SET_WEIGHT, "set_weight", 100),
        ({"pause": {}}, StepKind.PAUSE, "pause", Pause(None)),
        ({"pause": {"duration": 90}}, StepKind.PAUSE, "pause", Pause(90)),
        ({"pause": {"duration": "90"}}, StepKind.PAUSE, "pause", Pause(90)),
        ({"pause": {"duration": "30s"}}, StepKind.PAUSE, "pause", Pause(30)),
        ({"pause": {"duration": "5m"}}, StepKind.PAUSE, "pause", Pause(300)),
        ({"pause": {"duration": "1h"}}, StepKind.PAUSE, "pause", Pause(3600)),
        ({"pause": {"duration": "1h30m5s"}}, StepKind.PAUSE, "pause", Pause(5405)),
        ({"pause": {"duration": 0}}, StepKind.PAUSE, "pause", Pause(0)),
        ({"pause": {"duration": None}}, StepKind.PAUSE, "pause", Pause(None)),
        (
            {"setCanaryScale": {"replicas": 2}},
            StepKind.SET_CANARY_SCALE,
            "set_canary_scale",
            SetCanaryScale(replicas=2),
        ),
        ({"setCanaryScale": {"weight": 40}}, StepKind.SET_CANARY_SCALE, "set_canary_scale", SetCanaryScale(weight=40)),
        (
            {"setCanaryScale": {"matchTrafficWeight": True}},
            StepKind.SET_CANARY_SCALE,
            "set_canary_scale",
            SetCanaryScale(match_traffic_weight=True),
        ),
        (
            {"analysis": {"templates": [{"templateName": "success-rate"}]}},
            StepKind.ANALYSIS,
            "analysis",
            AnalysisRef(templates=(AnalysisTemplateRef("success-rate", False),)),
        ),
        (
            {"analysis": {"templateName": "success-rate"}},
            StepKind.ANALYSIS,
            "analysis",
            AnalysisRef(templates=(AnalysisTemplateRef("success-rate", False),)),
        ),
        (
            {
                "analysis": {
                    "templates": [{"templateName": "success-rate"}],
                    "args": [
                        {"name": "svc", "value": "web"},
                        {"name": "hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
                        {"name": "ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    ],
                }
            },
            StepKind.ANALYSIS,
            "analysis",
            AnalysisRef(
                templates=(AnalysisTemplateRef("success-rate", False),),
                args=(
                    AnalysisArg("svc", value="web"),
                    AnalysisArg("hash", value_from=ArgValueFrom(pod_template_hash_value=PodTemplateHashValue.STABLE)),
                    AnalysisArg("ns", value_from=ArgValueFrom(field_ref="metadata.namespace")),
                ),
            ),
        ),
    ],
)
def test_each_step_kind_parses(step: dict[str, Any], kind: StepKind, attribute: str, expected: Any) -> None:
    parsed = only_step(step)
    assert parsed.kind is kind
    assert parsed.kinds == frozenset({kind})
    assert getattr(parsed, attribute) == expected


@pytest.mark.parametrize(
    ("header_value", "match_type"),
    [
        ({"exact": "yes"}, HeaderMatchType.EXACT),
        ({"prefix": "ye"}, HeaderMatchType.PREFIX),
        ({"regex": "^y.s$"}, HeaderMatchType.REGEX),
    ],
)
def test_set_header_route_parses_each_match_type(header_value: dict[str, str], match_type: HeaderMatchType) -> None:
    step = {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Beta", "headerValue": header_value}]}}
    parsed = only_step(step, trafficRouting=ROUTING_HEADERS)
    assert parsed.kind is StepKind.SET_HEADER_ROUTE
    value = next(iter(header_value.values()))
    assert parsed.set_header_route == SetHeaderRoute("beta", (HeaderMatch("X-Beta", value, match_type),))


def test_set_header_route_without_match_removes_the_route() -> None:
    parsed = only_step({"setHeaderRoute": {"name": "beta"}}, trafficRouting=ROUTING_HEADERS)
    assert parsed.set_header_route == SetHeaderRoute("beta", ())
    assert parsed.set_header_route.removes


def test_set_mirror_route_parses_argos_route_match() -> None:
    # the Gateway API plugin's TestConvertRouteMatchesToHTTPRouteMatches example: POST, path prefix /api, X-Test
    step = {
        "setWeight": 10,
        "setMirrorRoute": {
            "name": "beta",
            "percentage": 50,
            "match": [
                {"method": {"exact": "POST"}, "path": {"prefix": "/api"}, "headers": {"X-Test": {"exact": "true"}}},
                {"path": {"regex": "^/v[0-9]+/"}},
            ],
        },
    }
    parsed = only_step(step, trafficRouting=ROUTING_HEADERS)
    assert parsed.kind is StepKind.SET_WEIGHT
    assert parsed.kinds == {StepKind.SET_WEIGHT, StepKind.SET_MIRROR_ROUTE}
    assert parsed.set_mirror_route == SetMirrorRoute(
        "beta",
        (
            MirrorMatch(
                "POST", ("/api", HeaderMatchType.PREFIX), (HeaderMatch("X-Test", "true", HeaderMatchType.EXACT),)
            ),
            MirrorMatch(None, ("^/v[0-9]+/", HeaderMatchType.REGEX), ()),
        ),
        50,
    )
    assert not parsed.set_mirror_route.removes


def test_set_mirror_route_with_only_a_name_removes_the_route() -> None:
    parsed = only_step({"setMirrorRoute": {"name": "beta"}}, trafficRouting=ROUTING_HEADERS)
    assert parsed.kind is StepKind.SET_MIRROR_ROUTE
    assert parsed.set_mirror_route == SetMirrorRoute("beta", (), None)
    assert parsed.set_mirror_route.removes


def test_secondary_kinds_share_a_step_with_a_primary_one() -> None:
    step = {"setWeight": 20, "setCanaryScale": {"replicas": 1}, "setHeaderRoute": {"name": "beta"}}
    parsed = only_step(step, trafficRouting=ROUTING_HEADERS)
    assert parsed.kind is StepKind.SET_WEIGHT
    assert parsed.kinds == {StepKind.SET_WEIGHT, StepKind.SET_CANARY_SCALE, StepKind.SET_HEADER_ROUTE}
    assert parsed.set_canary_scale == SetCanaryScale(replicas=1)


def test_secondary_kind_alone_is_the_primary_kind() -> None:
    parsed = only_step(
        {"setCanaryScale": {"weight": 10}, "setHeaderRoute": {"name": "beta"}}, trafficRouting=ROUTING_HEADERS
    )
    assert parsed.kind is StepKind.SET_CANARY_SCALE


def test_full_spec_fields_and_defaults() -> None:
    doc = base_rollout(
        revisionHistoryLimit=3,
        minReadySeconds=5,
        progressDeadlineSeconds=120,
        progressDeadlineAbort=True,
        paused=True,
    )
    canary(doc).update(
        maxSurge=1,
        maxUnavailable="10%",
        dynamicStableScale=True,
        abortScaleDownDelaySeconds=0,
        canaryMetadata={"labels": {"role": "canary"}},
        stableMetadata={"annotations": {"note": "stable"}},
        analysis={"templates": [{"templateName": "success-rate"}], "startingStep": 1},
        steps=[{"setWeight": 10}, {"pause": {}}],
    )
    result = load(doc, template_doc())
    assert error_lines(result) == []
    rollout = result.rollouts[0]
    spec = rollout.spec
    assert (rollout.name, rollout.namespace, rollout.api_version) == ("web", "shop", "argoproj.io/v1alpha1")
    assert (spec.replicas, spec.revision_history_limit, spec.min_ready_seconds) == (4, 3, 5)
    assert (spec.progress_deadline_seconds, spec.progress_deadline_abort, spec.paused) == (120, True, True)
    strategy = spec.strategy
    assert (strategy.max_surge, strategy.max_unavailable, strategy.dynamic_stable_scale) == (1, "10%", True)
    assert (strategy.scale_down_delay_seconds, strategy.abort_scale_down_delay_seconds) == (None, 0)
    assert strategy.canary_metadata.labels == {"role": "canary"}
    assert strategy.stable_metadata.annotations == {"note": "stable"}
    assert strategy.analysis is not None and strategy.analysis.starting_step == 1
    assert strategy.traffic_routing == TrafficRouting((HTTPRouteRef("web", None, True),), None, ())
    assert spec.template is not None and spec.template["spec"]["containers"][0]["image"] == "registry.local/web:v1"


def test_defaults_match_argo() -> None:
    doc = base_rollout()
    del doc["spec"]["replicas"]
    doc["metadata"] = {"name": "web"}
    rollout = load(doc).rollouts[0]
    assert rollout.namespace == "default"
    assert rollout.spec.replicas == 1
    assert rollout.spec.revision_history_limit == 10
    assert rollout.spec.progress_deadline_seconds == 600
    assert rollout.spec.strategy.max_surge == "25%"
    assert rollout.spec.strategy.max_unavailable == "25%"


def test_kulta_api_version_is_accepted() -> None:
    doc = base_rollout()
    doc["apiVersion"] = "kulta.io/v1alpha1"
    assert load(doc).rollouts[0].api_version == "kulta.io/v1alpha1"


def test_routing_forms() -> None:
    plural = {
        "plugins": {
            "argoproj-labs/gatewayAPI": {
                "namespace": "edge",
                "httpRoutes": [{"name": "a", "useHeaderRoutes": True}, {"name": "b"}],
            }
        }
    }
    rollout = load(with_steps(trafficRouting=plural)).rollouts[0]
    assert rollout.spec.strategy.traffic_routing == TrafficRouting(
        (HTTPRouteRef("a", "edge", True), HTTPRouteRef("b", "edge", False)), "edge", ()
    )
    short = {"gatewayAPI": {"httpRoute": "web"}}
    rollout = load(with_steps(trafficRouting=short)).rollouts[0]
    assert rollout.spec.strategy.traffic_routing == TrafficRouting((HTTPRouteRef("web", None, True),), None, ())


def test_without_traffic_routing_services_are_optional() -> None:
    doc = with_steps({"setWeight": 50})
    for key in ("trafficRouting", "canaryService", "stableService"):
        del canary(doc)[key]
    rollout = load(doc).rollouts[0]
    assert rollout.spec.strategy.traffic_routing is None


# -- errors ---------------------------------------------------------------------------

CANARY = f"{FILE}#1 spec.strategy.canary"
STEP0 = f"{CANARY}.steps[0]"


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"setWeight": 120}, f"{STEP0}.setWeight: 120 is outside 0..100"),
        ({"setWeight": -1}, f"{STEP0}.setWeight: -1 is outside 0..100"),
        ({"setWeight": "20"}, f'{STEP0}.setWeight: must be a whole number, got "20"'),
        ({"setWieght": 20}, f"{STEP0}.setWieght: unknown field; did you mean setWeight?"),
        (
            {},
            f"{STEP0}: is empty; a step needs one of setWeight, pause, setCanaryScale, analysis, setHeaderRoute, "
            "setMirrorRoute",
        ),
        (
            {"setWeight": 10, "pause": {}},
            f"{STEP0}: has setWeight and pause; a step may have only one of setWeight, pause, analysis: "
            "split it into one step each",
        ),
        (
            {"pause": None},
            f"{STEP0}.pause: is empty; write `pause: {{}}` to pause until promoted or `pause: {{duration: 30s}}`",
        ),
        (
            {"pause": {"duration": "5x"}},
            f'{STEP0}.pause.duration: "5x" is not a duration; use whole seconds (90) or a duration like 30s, 5m, '
            "1h, 1h30m",
        ),
        (
            {"pause": {"duration": -5}},
            f"{STEP0}.pause.duration: -5 is negative; use whole seconds (90) or a duration like 30s, 5m, 1h, 1h30m",
        ),
        (
            {"pause": {"duration": "500ms"}},
            f'{STEP0}.pause.duration: "500ms" is not a duration; use whole seconds (90) or a duration like 30s, 5m, '
            "1h, 1h30m",
        ),
        ({"pause": {"duraton": "5s"}}, f"{STEP0}.pause.duraton: unknown field; did you mean duration?"),
        (
            {"experiment": {"templates": []}},
            f"{STEP0}.experiment: the experiment step is not supported by KULTA; remove the step; use an analysis "
            "step to test the canary",
        ),
        (
            {"setMirrorRoute": {"name": "beta", "match": [{"method": {"exact": "FETCH"}}]}},
            f"{STEP0}.setMirrorRoute.match[0].method.exact: 'FETCH' is not a Gateway API method: use one of GET, "
            "HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH",
        ),
        (
            {"setMirrorRoute": {"name": "beta", "match": [{"path": {"exact": "api"}}]}},
            f"{STEP0}.setMirrorRoute.match[0].path.exact: 'api' must start with '/' (Gateway API paths are absolute)",
        ),
        (
            {"setMirrorRoute": {"name": "beta", "match": []}},
            f"{STEP0}.setMirrorRoute.match: is empty: list at least one match, or leave match out to remove the route",
        ),
        (
            {"setMirrorRoute": {"name": "beta", "match": [{}]}},
            f"{STEP0}.setMirrorRoute.match[0]: is empty: give a method, path or headers (an empty match would "
            "mirror every request)",
        ),
        (
            {"setMirrorRoute": {"name": "beta", "percentage": 101, "match": [{"method": {"exact": "GET"}}]}},
            f"{STEP0}.setMirrorRoute.percentage: 101 is outside 0..100",
        ),
        (
            {"setMirrorRoute": {"name": "beta", "match": [{"method": {"exact": "GET"}, "host": "a"}]}},
            f"{STEP0}.setMirrorRoute.match[0].host: unknown field; the fields here are: headers, method, path",
        ),
        (
            {"setCanaryScale": {"replicas": 1, "weight": 5}},
            f"{STEP0}.setCanaryScale: needs exactly one of replicas, weight, matchTrafficWeight (found replicas and "
            "weight)",
        ),
        ({"setCanaryScale": {}}, f"{STEP0}.setCanaryScale: needs exactly one of replicas, weight, matchTrafficWeight"),
        ({"setCanaryScale": {"weight": 101}}, f"{STEP0}.setCanaryScale.weight: 101 is outside 0..100"),
        ({"setCanaryScale": {"replicas": -1}}, f"{STEP0}.setCanaryScale.replicas: -1 is below the minimum 0"),
        (
            {"setCanaryScale": {"matchTrafficWeight": False}},
            f"{STEP0}.setCanaryScale.matchTrafficWeight: false has no effect; use matchTrafficWeight: true or set "
            "replicas/weight",
        ),
        ({"analysis": {}}, f"{STEP0}.analysis.templates: is required: list at least one {{templateName: NAME}}"),
        (
            {"analysis": {"templates": []}},
            f"{STEP0}.analysis.templates: is empty: list at least one {{templateName: NAME}}",
        ),
        (
            {"analysis": {"templates": [{"templateName": "success-rate", "scope": True}]}},
            f"{STEP0}.analysis.templates[0].scope: unknown field; the fields here are: clusterScope, templateName",
        ),
        (
            {"analysis": {"templates": [{"templateName": "success-rate", "clusterscope": True}]}},
            f"{STEP0}.analysis.templates[0].clusterscope: unknown field; did you mean clusterScope?",
        ),
        (
            {"analysis": {"templates": [{"templateName": "success-rate"}], "dryRun": []}},
            f"{STEP0}.analysis.dryRun: dryRun on a Rollout's analysis is not supported by KULTA; set dryRun in the "
            "AnalysisTemplate instead",
        ),
        (
            {"analysis": {"templates": [{"templateName": "success-rate"}], "args": [{"name": "port", "value": 80}]}},
            f'{STEP0}.analysis.args[0].value: must be a string, got 80: quote it ("80")',
        ),
        (
            {"analysis": {"templates": [{"templateName": "success-rate"}], "args": [{"name": "port"}]}},
            f"{STEP0}.analysis.args[0]: needs value or valueFrom",
        ),
        (
            {
                "analysis": {
                    "templates": [{"templateName": "success-rate"}],
                    "args": [{"name": "h", "valueFrom": {"podTemplateHashValue": "Canary"}}],
                }
            },
            f'{STEP0}.analysis.args[0].valueFrom.podTemplateHashValue: "Canary" is not one of Stable, Latest',
        ),
        (
            {
                "analysis": {
                    "templates": [{"templateName": "success-rate"}],
                    "args": [{"name": "h", "value": "a", "valueFrom": {"podTemplateHashValue": "Stable"}}],
                }
            },
            f"{STEP0}.analysis.args[0]: set either value or valueFrom, not both",
        ),
        (
            {"analysis": {"templates": [{"templateName": "nope"}]}},
            f'{STEP0}.analysis: AnalysisTemplate "nope" in namespace "shop" is not in the files KULTA read: add it or '
            "fix the name",
        ),
        (
            {"analysis": {"templates": [{"templateName": "success-rate", "clusterScope": True}]}},
            f'{STEP0}.analysis: ClusterAnalysisTemplate "success-rate" is not in the files KULTA read: add it or fix '
            "the name",
        ),
        (
            {
                "setHeaderRoute": {
                    "name": "beta",
                    "match": [{"headerName": "X", "headerValue": {"exact": "a", "regex": "b"}}],
                }
            },
            f"{STEP0}.setHeaderRoute.match[0].headerValue: needs exactly one of exact, prefix, regex (found exact and "
            "regex)",
        ),
        (
            {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X"}]}},
            f"{STEP0}.setHeaderRoute.match[0].headerValue: is required: use {{exact: V}}, {{prefix: V}} or {{regex: V}}",  # noqa: E501
        ),
        (
            {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X Y", "headerValue": {"exact": "a"}}]}},
            f'{STEP0}.setHeaderRoute.match[0].headerName: "X Y" is not a valid HTTP header name: use at most 256 '
            "letters, digits and !#$%&'*+-.^_`|~",
        ),
        (
            {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X", "headerValue": {"regex": "("}}]}},
            f'{STEP0}.setHeaderRoute.match[0].headerValue.regex: "(" is not a valid regular expression: missing ), '
            "unterminated subpattern at position 0",
        ),
        (
            {"setHeaderRoute": {"name": "alpha"}},
            f'{STEP0}.setHeaderRoute.name: "alpha" is not listed in spec.strategy.canary.trafficRouting.managedRoutes: '
            "add {name: alpha} there",
        ),
    ],
)
def test_step_errors(step: dict[str, Any], expected: str) -> None:
    result = load(with_steps(step, trafficRouting=ROUTING_HEADERS), template_doc())
    assert error_lines(result) == [expected]
    assert result.rollouts == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"maxSurge": 0, "maxUnavailable": "0%"},
            f"{CANARY}.maxSurge: maxSurge and maxUnavailable are both 0, so no pod could ever be replaced; set one of "
            "them above 0",
        ),
        ({"maxSurge": "lots"}, f'{CANARY}.maxSurge: "lots" must be a count like 1 or a percentage like "25%"'),
        ({"maxUnavailable": "150%"}, f'{CANARY}.maxUnavailable: "150%" is above 100%'),
        (
            {"stableService": "web-canary"},
            f'{CANARY}.stableService: "web-canary" is also the canaryService; two different Services are required',
        ),
        (
            {"canaryService": None},
            f"{CANARY}.canaryService: is required with trafficRouting: name the Service the HTTPRoute sends to",
        ),
        (
            {"canaryService": "Web_Canary"},
            f'{CANARY}.canaryService: "Web_Canary" is not a valid name: use at most 63 lowercase letters, digits and '
            "'-', starting and ending with a letter or digit",
        ),
        (
            {"dynamicStableScale": True, "scaleDownDelaySeconds": 10},
            f"{CANARY}.dynamicStableScale: cannot be combined with scaleDownDelaySeconds (the stable is already scaled "
            "down as traffic leaves it): remove one of them",
        ),
        (
            {"antiAffinity": {}},
            f"{CANARY}.antiAffinity: antiAffinity is not supported by KULTA; set pod anti-affinity in spec.template "
            "instead",
        ),
        (
            {"canaryMetadata": {"labels": {"version": 2}}},
            f'{CANARY}.canaryMetadata.labels.version: must be a string, got 2: quote it ("2")',
        ),
        ({"stepz": []}, f"{CANARY}.stepz: unknown field; did you mean steps?"),
        (
            {
                "analysis": {"templates": [{"templateName": "success-rate"}], "startingStep": 3},
                "steps": [{"pause": {}}],
            },
            f"{CANARY}.analysis.startingStep: 3 is outside 0..0 (the step indexes)",
        ),
        (
            {"analysis": {"templates": [{"templateName": "success-rate"}], "startingStep": 1}},
            f"{CANARY}.analysis.startingStep: 1 names a step, but there are no steps: use 0",
        ),
        (
            {"trafficRouting": {"istio": {}}},
            f"{CANARY}.trafficRouting.istio: trafficRouting.istio is not supported by KULTA; KULTA routes traffic with "
            "Gateway API HTTPRoutes and GRPCRoutes only: use plugins.argoproj-labs/gatewayAPI",
        ),
        (
            {
                "trafficRouting": {
                    "nginx": {"stableIngress": "x"},
                    "plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}},
                }
            },
            f"{CANARY}.trafficRouting.nginx: trafficRouting.nginx is not supported by KULTA; KULTA routes traffic with "
            "Gateway API HTTPRoutes and GRPCRoutes only: use plugins.argoproj-labs/gatewayAPI",
        ),
        (
            {"trafficRouting": {"plugins": {"acme/router": {}}}},
            f"{CANARY}.trafficRouting.plugins.acme/router: the traffic router plugin acme/router is not supported by "
            "KULTA; KULTA routes traffic with Gateway API HTTPRoutes and GRPCRoutes only: use "
            "plugins.argoproj-labs/gatewayAPI",
        ),
        (
            {"trafficRouting": {"smartRouting": True, "gatewayAPI": {"httpRoute": "web"}}},
            f"{CANARY}.trafficRouting.smartRouting: unknown field; the fields here are: gatewayAPI, managedRoutes, "
            "plugins",
        ),
        (
            {"trafficRouting": {}},
            f"{CANARY}.trafficRouting: needs plugins.argoproj-labs/gatewayAPI (or the short form gatewayAPI) with an "
            "httpRoute or grpcRoute",
        ),
        (
            {
                "trafficRouting": {
                    "gatewayAPI": {"httpRoute": "a"},
                    "plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "b"}},
                }
            },
            f"{CANARY}.trafficRouting.gatewayAPI: configure Gateway API once: either gatewayAPI or "
            "plugins.argoproj-labs/gatewayAPI, not both",
        ),
        (
            {"trafficRouting": {"gatewayAPI": {"namespace": "x"}}},
            f"{CANARY}.trafficRouting.gatewayAPI.httpRoute: is required: name the HTTPRoute (or grpcRoute: the "
            "GRPCRoute) whose weights KULTA sets",
        ),
        (
            {"trafficRouting": {"gatewayAPI": {"httpRoute": "a", "httpRoutes": [{"name": "b"}]}}},
            f"{CANARY}.trafficRouting.gatewayAPI: set either httpRoute or httpRoutes, not both",
        ),
        (
            {"trafficRouting": {"gatewayAPI": {"httpRoutes": [{"name": "a"}, {"name": "a"}]}}},
            f'{CANARY}.trafficRouting.gatewayAPI.httpRoutes[1].name: HTTPRoute "a" is listed twice; keep one',
        ),
        (
            {"trafficRouting": {"gatewayAPI": {"tcpRoute": "t", "httpRoute": "a"}}},
            f"{CANARY}.trafficRouting.gatewayAPI.tcpRoute: tcpRoute is not supported by KULTA; KULTA weights "
            "HTTPRoutes and GRPCRoutes only: use httpRoute(s) or grpcRoute(s)",
        ),
        (
            {"trafficRouting": {"gatewayAPI": {"grpcRoute": "a", "grpcRoutes": [{"name": "b"}]}}},
            f"{CANARY}.trafficRouting.gatewayAPI: set either grpcRoute or grpcRoutes, not both",
        ),
        (
            {"trafficRouting": {"gatewayAPI": {"grpcRoutes": [{"name": "a"}, {"name": "a"}]}}},
            f'{CANARY}.trafficRouting.gatewayAPI.grpcRoutes[1].name: GRPCRoute "a" is listed twice; keep one',
        ),
        (
            {"trafficRouting": {"gatewayAPI": {"grpcRoutes": []}}},
            f"{CANARY}.trafficRouting.gatewayAPI.grpcRoutes: is empty: list at least one {{name: ROUTE}}",
        ),
        (
            {"trafficRouting": {"gatewayAPI": {"httpRoute": "a"}, "managedRoutes": [{"name": "x"}, {"name": "x"}]}},
            f'{CANARY}.trafficRouting.managedRoutes[1].name: route "x" is listed twice; keep one',
        ),
        (
            {
                "steps": [
                    {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X", "headerValue": {"exact": "1"}}]}},
                    {"setMirrorRoute": {"name": "beta", "match": [{"method": {"exact": "GET"}}]}},
                ],
                "trafficRouting": {"managedRoutes": [{"name": "beta"}], "gatewayAPI": {"httpRoute": "a"}},
            },
            f'{CANARY}.steps[1].setMirrorRoute.name: "beta" already names a setHeaderRoute route; both would be the '
            "rule kulta-beta: use another name",
        ),
        (
            {"steps": [{"setHeaderRoute": {"name": "beta"}}], "trafficRouting": {"gatewayAPI": {"httpRoute": "a"}}},
            f"{CANARY}.trafficRouting.managedRoutes: is required by setHeaderRoute steps: list each managed route as "
            "{name: ROUTE}",
        ),
        (
            {
                "steps": [{"setHeaderRoute": {"name": "beta"}}],
                "trafficRouting": {"managedRoutes": [{"name": "beta"}], "gatewayAPI": {"httpRoutes": [{"name": "a"}]}},
            },
            f"{CANARY}.trafficRouting: setHeaderRoute steps need a route with useHeaderRoutes: true "
            "(or the single httpRoute / grpcRoute form)",
        ),
    ],
)
def test_canary_errors(change: dict[str, Any], expected: str) -> None:
    doc = base_rollout()
    canary(doc).update(change)
    result = load(doc, template_doc())
    assert error_lines(result) == [expected]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"dynamicStableScale": True},
            f"{CANARY}.dynamicStableScale: needs trafficRouting: add trafficRouting or remove it",
        ),
        (
            {"scaleDownDelaySeconds": 30},
            f"{CANARY}.scaleDownDelaySeconds: needs trafficRouting: add trafficRouting or remove it",
        ),
        (
            {"steps": [{"setCanaryScale": {"replicas": 1}}]},
            f"{STEP0}.setCanaryScale: needs trafficRouting: without it the canary's share of pods is its traffic share "
            "(Argo ignores this step silently): add trafficRouting or remove the step",
        ),
        (
            {"steps": [{"setHeaderRoute": {"name": "beta"}}]},
            f"{STEP0}.setHeaderRoute: needs trafficRouting with managedRoutes: add them or remove the step",
        ),
    ],
)
def test_errors_without_traffic_routing(change: dict[str, Any], expected: str) -> None:
    doc = base_rollout()
    del canary(doc)["trafficRouting"]
    canary(doc).update(change)
    assert error_lines(load(doc)) == [expected]


SPEC = f"{FILE}#1 spec"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"replicas": -1}, f"{SPEC}.replicas: -1 is below the minimum 0"),
        ({"replicas": True}, f"{SPEC}.replicas: must be a whole number, got true"),
        ({"replica": 3}, f"{SPEC}.replica: unknown field; did you mean replicas?"),
        (
            {"minReadySeconds": 700},
            f"{SPEC}.minReadySeconds: 700 must be below progressDeadlineSeconds (600 by default): lower it or set "
            "progressDeadlineSeconds",
        ),
        (
            {"progressDeadlineSeconds": 10, "minReadySeconds": 10},
            f"{SPEC}.progressDeadlineSeconds: 10 must be greater than minReadySeconds (10)",
        ),
        ({"paused": "yes please"}, f'{SPEC}.paused: must be true or false, got "yes please"'),
        (
            {"restartAt": "2024-01-01T00:00:00Z"},
            f"{SPEC}.restartAt: restartAt is not supported by KULTA; remove it (docs/spec.md lists what KULTA supports)",  # noqa: E501
        ),
        ({"selector": {}}, f"{SPEC}.selector: is empty; an empty selector would match every pod: add matchLabels"),
        (
            {"selector": {"matchLabels": {"app": "other"}}},
            f"{SPEC}.selector: does not match spec.template.metadata.labels: the ReplicaSets would not own their pods; "
            "make the template's labels satisfy the selector",
        ),
        (
            {"selector": {"matchExpressions": [{"key": "app", "operator": "Has"}]}},
            f'{SPEC}.selector.matchExpressions[0].operator: "Has" is not one of In, NotIn, Exists, DoesNotExist',
        ),
        (
            {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
            f"{SPEC}.template.spec.containers: must list at least one container",
        ),
        (
            {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web"}]}}},
            f"{SPEC}.template.spec.containers[0].image: is required",
        ),
        (
            {"template": {"metadata": {"labels": {"app": "web"}}}},
            f"{SPEC}.template.spec: is required: a pod template needs spec.containers",
        ),
        (
            {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
            f"{SPEC}.template: set either template or workloadRef, not both: the template comes from the referenced "
            "Deployment",
        ),
        (
            {"strategy": {"blueGreen": {"activeService": "a", "antiAffinity": {}}}},
            f"{SPEC}.strategy.blueGreen.antiAffinity: antiAffinity is not supported by KULTA; set pod anti-affinity "
            "in spec.template instead",
        ),
        ({"strategy": {}}, f"{SPEC}.strategy.canary: is required (or strategy.blueGreen)"),
    ],
)
def test_spec_errors(change: dict[str, Any], expected: str) -> None:
    assert error_lines(load(base_rollout(**change))) == [expected]


@pytest.mark.parametrize(
    ("doc_change", "expected"),
    [
        ({"metadata": {"namespace": "shop"}}, f"{FILE}#1 metadata.name: is required"),
        (
            {"metadata": {"name": "Web"}},
            f"{FILE}#1 metadata.name: \"Web\" is not a valid name: use at most 242 lowercase letters, digits, '-' and "
            "'.', starting and ending with a letter or digit",
        ),
        (
            {"metadata": {"name": "web", "generateName": "web-"}},
            f"{FILE}#1 metadata.generateName: metadata.generateName is not supported by KULTA; KULTA needs a fixed "
            "metadata.name",
        ),
        (
            {"metadata": {"name": "web", "uid": "123"}},
            f"{FILE}#1 metadata.uid: is set by the Kubernetes API server; remove it from the file",
        ),
        (
            {"metadata": {"name": "web", "labels": {"tier": 1}}},
            f'{FILE}#1 metadata.labels.tier: must be a string, got 1: quote it ("1")',
        ),
        ({"status": {}}, f"{FILE}#1 status: is written by the controller, not by users; remove it from the file"),
        (
            {"apiVersion": "argoproj.io/v1beta1"},
            f'{FILE}#1 apiVersion: "argoproj.io/v1beta1" is not supported; use argoproj.io/v1alpha1 or '
            "kulta.io/v1alpha1",
        ),
        ({"spec": None}, f"{FILE}#1 spec: must be a mapping, got null"),
    ],
)
def test_document_errors(doc_change: dict[str, Any], expected: str) -> None:
    doc = base_rollout()
    doc.update(doc_change)
    assert error_lines(load(doc)) == [expected]


def test_all_errors_of_a_document_are_reported_together() -> None:
    doc = with_steps({"setWeight": 120}, {"pause": {"duration": "soon"}}, {"experiment": {}})
    doc["spec"]["replicas"] = -2
    lines = error_lines(load(doc))
    assert lines == [
        f"{SPEC}.replicas: -2 is below the minimum 0",
        f"{CANARY}.steps[0].setWeight: 120 is outside 0..100",
        f'{CANARY}.steps[1].pause.duration: "soon" is not a duration; use whole seconds (90) or a duration like '
        "30s, 5m, 1h, 1h30m",
        f"{CANARY}.steps[2].experiment: the experiment step is not supported by KULTA; remove the step; use an "
        "analysis step to test the canary",
    ]


def test_missing_template_argument_is_reported_on_the_args() -> None:
    template = template_doc(args=[{"name": "service"}])
    doc = with_steps({"analysis": {"templates": [{"templateName": "success-rate"}]}})
    assert error_lines(load(doc, template)) == [
        f'{STEP0}.analysis.args: template "success-rate" needs argument "service" ({FILE}#2): '
        "add {name: service, value: ...}"
    ]
    doc = with_steps(
        {"analysis": {"templates": [{"templateName": "success-rate"}], "args": [{"name": "service", "value": "web"}]}}
    )
    assert error_lines(load(doc, template)) == []


def test_cluster_template_reference_resolves() -> None:
    cluster = template_doc()
    cluster["kind"] = "ClusterAnalysisTemplate"
    del cluster["metadata"]["namespace"]
    doc = with_steps({"analysis": {"templates": [{"templateName": "success-rate", "clusterScope": True}]}})
    result = load(doc, cluster)
    assert error_lines(result) == []
    assert result.templates[0].cluster_scoped
