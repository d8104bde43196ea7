"""Conformance with Argo Rollouts, one test id per field (docs/spec.md, "Conformance with Argo Rollouts").

Every field of Argo's Rollout spec, canary strategy, steps, traffic routing and
AnalysisTemplate (pkg/apis/rollouts/v1alpha1/types.go, analysis_types.go; the Gateway
API plugin's GatewayAPITrafficRouting) is either read into KULTA's model with the value
the file gives (``test_rollout_field_is_read`` / ``test_template_field_is_read``) or
refused by name at its path (``test_field_is_refused``). Expected values are literals
from the documents built here, never computed by the code under test.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kulta.model.analysis import AnalysisTemplate, TemplateArg, WebMethod
from kulta.model.rollout import (
    AnalysisArg,
    AnalysisTemplateRef,
    ArgValueFrom,
    GRPCRouteRef,
    HeaderMatch,
    HeaderMatchType,
    HTTPRouteRef,
    MirrorMatch,
    Pause,
    PodMetadata,
    PodTemplateHashValue,
    Rollout,
    SetCanaryScale,
    WorkloadRef,
)
from tests.unit.spec_helpers import FILE, base_rollout, canary, error_lines, load, template_doc

Doc = dict[str, Any]
PLUGIN = "argoproj-labs/gatewayAPI"
ANALYSIS = {"templates": [{"templateName": "success-rate"}]}


def rollout_with(spec: Doc | None = None, **canary_fields: Any) -> Doc:
    doc = base_rollout(**(spec or {}))
    canary(doc).update(copy.deepcopy(canary_fields))
    return doc


def without_routing(**canary_fields: Any) -> Doc:
    doc = rollout_with(**canary_fields)
    del canary(doc)["trafficRouting"]
    return doc


def gateway(**config: Any) -> Doc:
    return {"plugins": {PLUGIN: {"httpRoute": "web", **config}}}


def workload_docs() -> list[Doc]:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:v2"}]},
            },
        },
    }
    doc = rollout_with(spec={"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}})
    del doc["spec"]["template"]
    return [deployment, doc]


def strategy(rollout: Rollout) -> Any:
    return rollout.spec.strategy


def blue_green_with(**fields: Any) -> Doc:
    """A Rollout with strategy.blueGreen (activeService "web-active") and ``fields``."""
    return base_rollout(strategy={"blueGreen": {"activeService": "web-active", **copy.deepcopy(fields)}})


def bg(rollout: Rollout) -> Any:
    return rollout.spec.blue_green


def step0(rollout: Rollout) -> Any:
    return rollout.spec.strategy.steps[0]


HEADER_STEP = {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Beta", "headerValue": {"exact": "1"}}]}}
MANAGED = {"managedRoutes": [{"name": "beta"}], "plugins": {PLUGIN: {"httpRoute": "web"}}}
MIRROR_STEP = {
    "setMirrorRoute": {
        "name": "beta",
        "percentage": 35,
        "match": [{"method": {"exact": "GET"}, "path": {"prefix": "/api"}, "headers": {"X-Beta": {"exact": "1"}}}],
    }
}

ROLLOUT_FIELDS: list[tuple[str, list[Doc], Callable[[Rollout], Any], Any]] = [
    ("spec.replicas", [rollout_with({"replicas": 7})], lambda r: r.spec.replicas, 7),
    (
        "spec.selector",
        [rollout_with({"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}})],
        lambda r: r.spec.selector,
        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
    ),
    (
        "spec.template",
        [rollout_with()],
        lambda r: r.spec.template["spec"]["containers"][0]["image"],
        "registry.local/web:v1",
    ),
    (
        "spec.workloadRef",
        workload_docs(),
        lambda r: (r.spec.workload_ref, r.spec.template),
        (WorkloadRef("apps/v1", "Deployment", "web"), None),
    ),
    ("spec.minReadySeconds", [rollout_with({"minReadySeconds": 5})], lambda r: r.spec.min_ready_seconds, 5),
    (
        "spec.revisionHistoryLimit",
        [rollout_with({"revisionHistoryLimit": 3})],
        lambda r: r.spec.revision_history_limit,
        3,
    ),
    ("spec.paused", [rollout_with({"paused": True})], lambda r: r.spec.paused, True),
    (
        "spec.progressDeadlineSeconds",
        [rollout_with({"progressDeadlineSeconds": 120})],
        lambda r: r.spec.progress_deadline_seconds,
        120,
    ),
    (
        "spec.progressDeadlineAbort",
        [rollout_with({"progressDeadlineAbort": True})],
        lambda r: r.spec.progress_deadline_abort,
        True,
    ),
    (
        "canary.canaryService",
        [rollout_with(canaryService="web-c")],
        lambda r: strategy(r).canary_service,
        "web-c",
    ),
    (
        "canary.stableService",
        [rollout_with(stableService="web-s")],
        lambda r: strategy(r).stable_service,
        "web-s",
    ),
    ("canary.maxSurge", [rollout_with(maxSurge=2)], lambda r: strategy(r).max_surge, 2),
    ("canary.maxUnavailable", [rollout_with(maxUnavailable="10%")], lambda r: strategy(r).max_unavailable, "10%"),
    (
        "canary.dynamicStableScale",
        [rollout_with(dynamicStableScale=True)],
        lambda r: strategy(r).dynamic_stable_scale,
        True,
    ),
    (
        "canary.scaleDownDelaySeconds",
        [rollout_with(scaleDownDelaySeconds=90)],
        lambda r: strategy(r).scale_down_delay_seconds,
        90,
    ),
    (
        "canary.abortScaleDownDelaySeconds",
        [rollout_with(abortScaleDownDelaySeconds=15)],
        lambda r: strategy(r).abort_scale_down_delay_seconds,
        15,
    ),
    (
        "canary.canaryMetadata",
        [rollout_with(canaryMetadata={"labels": {"role": "canary"}, "annotations": {"a": "1"}})],
        lambda r: strategy(r).canary_metadata,
        PodMetadata(labels={"role": "canary"}, annotations={"a": "1"}),
    ),
    (
        "canary.stableMetadata",
        [rollout_with(stableMetadata={"labels": {"role": "stable"}})],
        lambda r: strategy(r).stable_metadata,
        PodMetadata(labels={"role": "stable"}),
    ),
    (
        "canary.analysis",
        [
            rollout_with(
                steps=[{"setWeight": 10}, {"setWeight": 50}],
                analysis={**ANALYSIS, "args": [{"name": "svc", "value": "web"}], "startingStep": 1},
            ),
            template_doc(),
        ],
        lambda r: (strategy(r).analysis.templates, strategy(r).analysis.args, strategy(r).analysis.starting_step),
        ((AnalysisTemplateRef("success-rate", False),), (AnalysisArg("svc", "web"),), 1),
    ),
    ("canary.steps.setWeight", [rollout_with(steps=[{"setWeight": 40}])], lambda r: step0(r).set_weight, 40),
    ("blueGreen.activeService", [blue_green_with()], lambda r: bg(r).active_service, "web-active"),
    (
        "blueGreen.previewService",
        [blue_green_with(previewService="web-prev")],
        lambda r: bg(r).preview_service,
        "web-prev",
    ),
    (
        "blueGreen.previewReplicaCount",
        [blue_green_with(previewReplicaCount=1)],
        lambda r: bg(r).preview_replica_count,
        1,
    ),
    (
        "blueGreen.autoPromotionEnabled",
        [blue_green_with(autoPromotionEnabled=False)],
        lambda r: bg(r).auto_promotion_enabled,
        False,
    ),
    (
        "blueGreen.autoPromotionSeconds",
        [blue_green_with(autoPromotionSeconds=45)],
        lambda r: bg(r).auto_promotion_seconds,
        45,
    ),
    (
        "blueGreen.prePromotionAnalysis",
        [blue_green_with(prePromotionAnalysis={**ANALYSIS, "args": [{"name": "svc", "value": "web"}]}), template_doc()],
        lambda r: (bg(r).pre_promotion_analysis.templates, bg(r).pre_promotion_analysis.args),
        ((AnalysisTemplateRef("success-rate", False),), (AnalysisArg("svc", "web"),)),
    ),
    (
        "blueGreen.postPromotionAnalysis",
        [blue_green_with(postPromotionAnalysis=ANALYSIS), template_doc()],
        lambda r: bg(r).post_promotion_analysis.templates,
        (AnalysisTemplateRef("success-rate", False),),
    ),
    (
        "blueGreen.scaleDownDelaySeconds",
        [blue_green_with(scaleDownDelaySeconds=5)],
        lambda r: bg(r).scale_down_delay_seconds,
        5,
    ),
    (
        "blueGreen.abortScaleDownDelaySeconds",
        [blue_green_with(abortScaleDownDelaySeconds=0)],
        lambda r: bg(r).abort_scale_down_delay_seconds,
        0,
    ),
    (
        "blueGreen.previewMetadata",
        [blue_green_with(previewMetadata={"labels": {"role": "preview"}, "annotations": {"a": "1"}})],
        lambda r: bg(r).preview_metadata,
        PodMetadata(labels={"role": "preview"}, annotations={"a": "1"}),
    ),
    (
        "blueGreen.activeMetadata",
        [blue_green_with(activeMetadata={"labels": {"role": "active"}})],
        lambda r: bg(r).active_metadata,
        PodMetadata(labels={"role": "active"}),
    ),
    (
        "canary.steps.pause.duration",
        [rollout_with(steps=[{"pause": {"duration": "1h30m"}}])],
        lambda r: step0(r).pause,
        Pause(5400),
    ),
    (
        "canary.steps.analysis.templates",
        [
            rollout_with(
                steps=[
                    {
                        "analysis": {
                            "templates": [{"templateName": "success-rate"}, {"templateName": "c", "clusterScope": True}]
                        }
                    }
                ]
            ),
            template_doc(),
            {**template_doc("c"), "kind": "ClusterAnalysisTemplate", "metadata": {"name": "c"}},
        ],
        lambda r: step0(r).analysis.templates,
        (AnalysisTemplateRef("success-rate", False), AnalysisTemplateRef("c", True)),
    ),
    (
        "canary.steps.analysis.args",
        [
            rollout_with(
                steps=[
                    {
                        "analysis": {
                            **ANALYSIS,
                            "args": [
                                {"name": "a", "value": "1"},
                                {"name": "h", "valueFrom": {"podTemplateHashValue": "Latest"}},
                                {"name": "f", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            ],
                        }
                    }
                ]
            ),
            template_doc(),
        ],
        lambda r: step0(r).analysis.args,
        (
            AnalysisArg("a", "1"),
            AnalysisArg("h", value_from=ArgValueFrom(pod_template_hash_value=PodTemplateHashValue.LATEST)),
            AnalysisArg("f", value_from=ArgValueFrom(field_ref="metadata.name")),
        ),
    ),
    (
        "canary.steps.setCanaryScale.replicas",
        [rollout_with(steps=[{"setCanaryScale": {"replicas": 2}}])],
        lambda r: step0(r).set_canary_scale,
        SetCanaryScale(replicas=2),
    ),
    (
        "canary.steps.setCanaryScale.weight",
        [rollout_with(steps=[{"setCanaryScale": {"weight": 30}}])],
        lambda r: step0(r).set_canary_scale,
        SetCanaryScale(weight=30),
    ),
    (
        "canary.steps.setCanaryScale.matchTrafficWeight",
        [rollout_with(steps=[{"setCanaryScale": {"matchTrafficWeight": True}}])],
        lambda r: step0(r).set_canary_scale,
        SetCanaryScale(match_traffic_weight=True),
    ),
    (
        "canary.steps.setHeaderRoute",
        [rollout_with(steps=[HEADER_STEP], trafficRouting=MANAGED)],
        lambda r: (step0(r).set_header_route.name, step0(r).set_header_route.matches),
        ("beta", (HeaderMatch("X-Beta", "1", HeaderMatchType.EXACT),)),
    ),
    (
        "canary.steps.setMirrorRoute",
        [rollout_with(steps=[MIRROR_STEP], trafficRouting=MANAGED)],
        lambda r: (
            step0(r).set_mirror_route.name,
            step0(r).set_mirror_route.percentage,
            step0(r).set_mirror_route.matches,
        ),
        (
            "beta",
            35,
            (
                MirrorMatch(
                    method="GET",
                    path=("/api", HeaderMatchType.PREFIX),
                    headers=(HeaderMatch("X-Beta", "1", HeaderMatchType.EXACT),),
                ),
            ),
        ),
    ),
    (
        "trafficRouting.managedRoutes",
        [rollout_with(steps=[HEADER_STEP], trafficRouting=MANAGED)],
        lambda r: strategy(r).traffic_routing.managed_routes,
        ("beta",),
    ),
    (
        "trafficRouting.plugins.gatewayAPI.httpRoute",
        [rollout_with(trafficRouting=gateway(namespace="edge"))],
        lambda r: strategy(r).traffic_routing.http_routes,
        (HTTPRouteRef("web", "edge", True),),
    ),
    (
        "trafficRouting.plugins.gatewayAPI.httpRoutes",
        [
            rollout_with(
                trafficRouting={
                    "plugins": {PLUGIN: {"httpRoutes": [{"name": "a", "useHeaderRoutes": True}, {"name": "b"}]}}
                }
            )
        ],
        lambda r: strategy(r).traffic_routing.http_routes,
        (HTTPRouteRef("a", None, True), HTTPRouteRef("b", None, False)),
    ),
    (
        "trafficRouting.plugins.gatewayAPI.grpcRoute",
        [rollout_with(trafficRouting={"plugins": {PLUGIN: {"grpcRoute": "rpc", "namespace": "edge"}}})],
        lambda r: (strategy(r).traffic_routing.http_routes, strategy(r).traffic_routing.grpc_routes),
        ((), (GRPCRouteRef("rpc", "edge", True),)),
    ),
    (
        "trafficRouting.plugins.gatewayAPI.grpcRoutes",
        [
            rollout_with(
                trafficRouting={
                    "plugins": {
                        PLUGIN: {
                            "httpRoute": "web",
                            "grpcRoutes": [{"name": "a", "useHeaderRoutes": True}, {"name": "b"}],
                        }
                    }
                }
            )
        ],
        lambda r: (strategy(r).traffic_routing.http_routes, strategy(r).traffic_routing.grpc_routes),
        ((HTTPRouteRef("web", None, True),), (GRPCRouteRef("a", None, True), GRPCRouteRef("b", None, False))),
    ),
]


@pytest.mark.parametrize(
    ("docs", "get", "expected"),
    [case[1:] for case in ROLLOUT_FIELDS],
    ids=[case[0] for case in ROLLOUT_FIELDS],
)
def test_rollout_field_is_read(docs: list[Doc], get: Callable[[Rollout], Any], expected: Any) -> None:
    result = load(*docs)
    assert error_lines(result) == []
    (rollout,) = result.rollouts
    assert get(rollout) == expected


PROM = {"prometheus": {"address": "http://prom:9090", "query": "vector(1)"}}


def template_with(metric: Doc | None = None, **spec: Any) -> Doc:
    body = {"name": "m", "provider": copy.deepcopy(PROM), **(metric or {})}
    return template_doc(metrics=[body], **spec)


def web_with(**fields: Any) -> Doc:
    """A template whose metric uses ``provider.web`` (with an ``svc`` argument to place)."""
    provider = {"web": {"url": "http://scores.shop:8080/ok", **fields}}
    return template_with({"provider": provider}, args=[{"name": "svc"}])


TEMPLATE_FIELDS: list[tuple[str, Doc, Callable[[AnalysisTemplate], Any], Any]] = [
    (
        "spec.args",
        template_with(
            args=[
                {"name": "plain"},
                {"name": "window", "value": "5m"},
                {"name": "token", "valueFrom": {"secretKeyRef": {"name": "prom", "key": "token"}}},
                {"name": "ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            ]
        ),
        lambda t: t.args,
        (
            TemplateArg("plain"),
            TemplateArg("window", "5m"),
            TemplateArg("token", value_from=ArgValueFrom(secret_key_ref=("prom", "token"))),
            TemplateArg("ns", value_from=ArgValueFrom(field_ref="metadata.namespace")),
        ),
    ),
    (
        "spec.dryRun",
        template_with(dryRun=[{"metricName": "m"}]),
        lambda t: t.metrics[0].dry_run,
        True,
    ),
    ("metrics.name", template_with({"name": "errors"}), lambda t: t.metrics[0].name, "errors"),
    ("metrics.interval", template_with({"interval": "1m"}), lambda t: t.metrics[0].interval_seconds, 60),
    ("metrics.initialDelay", template_with({"initialDelay": "30s"}), lambda t: t.metrics[0].initial_delay_seconds, 30),
    ("metrics.count", template_with({"count": 5, "interval": "10s"}), lambda t: t.metrics[0].count, 5),
    (
        "metrics.successCondition",
        template_with({"successCondition": "result[0] >= 0.95"}),
        lambda t: t.metrics[0].success_condition,
        "result[0] >= 0.95",
    ),
    (
        "metrics.failureCondition",
        template_with({"failureCondition": "result[0] >= 10"}),
        lambda t: t.metrics[0].failure_condition,
        "result[0] >= 10",
    ),
    (
        "metrics.failureLimit",
        template_with({"failureLimit": 2, "count": 3, "interval": "10s"}),
        lambda t: t.metrics[0].failure_limit,
        2,
    ),
    (
        "metrics.inconclusiveLimit",
        template_with({"inconclusiveLimit": 1, "count": 3, "interval": "10s"}),
        lambda t: t.metrics[0].inconclusive_limit,
        1,
    ),
    (
        "metrics.consecutiveErrorLimit",
        template_with({"consecutiveErrorLimit": 7}),
        lambda t: t.metrics[0].consecutive_error_limit,
        7,
    ),
    (
        "metrics.provider.prometheus",
        template_with(
            {
                "provider": {
                    "prometheus": {
                        "address": "https://prom.example:9090",
                        "query": "sum(up)",
                        "timeout": 10,
                        "headers": [{"key": "X-Scope-OrgID", "value": "shop"}],
                    }
                }
            }
        ),
        lambda t: (
            t.metrics[0].provider.address,
            t.metrics[0].provider.query,
            t.metrics[0].provider.timeout_seconds,
            t.metrics[0].provider.headers,
        ),
        ("https://prom.example:9090", "sum(up)", 10, (("X-Scope-OrgID", "shop"),)),
    ),
    (
        "metrics.provider.web.url",
        web_with(url="http://scores.shop:8080/api/v1/measurement?service={{args.svc}}"),
        lambda t: t.metrics[0].provider.url,
        "http://scores.shop:8080/api/v1/measurement?service={{args.svc}}",
    ),
    ("metrics.provider.web.method", web_with(method="PUT"), lambda t: t.metrics[0].provider.method, WebMethod.PUT),
    (
        "metrics.provider.web.headers",
        web_with(headers=[{"key": "Authorization", "value": "Bearer {{args.svc}}"}]),
        lambda t: t.metrics[0].provider.headers,
        (("Authorization", "Bearer {{args.svc}}"),),
    ),
    (
        "metrics.provider.web.body",
        web_with(method="POST", body="service={{args.svc}}"),
        lambda t: (t.metrics[0].provider.body, t.metrics[0].provider.json_body),
        ("service={{args.svc}}", None),
    ),
    (
        "metrics.provider.web.jsonBody",
        web_with(method="POST", jsonBody={"key1": "value_1", "key2": {"nestedObj": "nested value", "n": 3}}),
        lambda t: (t.metrics[0].provider.json_body, t.metrics[0].provider.body),
        ('{"key1":"value_1","key2":{"nestedObj":"nested value","n":3}}', None),
    ),
    (
        "metrics.provider.web.timeoutSeconds",
        web_with(timeoutSeconds=20),
        lambda t: t.metrics[0].provider.timeout_seconds,
        20,
    ),
    ("metrics.provider.web.timeoutSeconds.default", web_with(), lambda t: t.metrics[0].provider.timeout_seconds, 10),
    (
        "metrics.provider.web.timeoutSeconds.zero",
        web_with(timeoutSeconds=0),
        lambda t: t.metrics[0].provider.timeout_seconds,
        10,
    ),
    (
        "metrics.provider.web.jsonPath",
        web_with(jsonPath="{$.data.ok}"),
        lambda t: t.metrics[0].provider.json_path,
        "{$.data.ok}",
    ),
    ("metrics.provider.web.jsonPath.default", web_with(), lambda t: t.metrics[0].provider.json_path, "{$}"),
    ("metrics.provider.web.insecure", web_with(insecure=True), lambda t: t.metrics[0].provider.insecure, True),
]


@pytest.mark.parametrize(
    ("doc", "get", "expected"),
    [case[1:] for case in TEMPLATE_FIELDS],
    ids=[case[0] for case in TEMPLATE_FIELDS],
)
def test_template_field_is_read(doc: Doc, get: Callable[[AnalysisTemplate], Any], expected: Any) -> None:
    result = load(doc)
    assert error_lines(result) == []
    (template,) = result.templates
    assert get(template) == expected


CANARY = "spec.strategy.canary"
BLUE_GREEN = "spec.strategy.blueGreen"
NOT_SUPPORTED = "is not supported by KULTA"
NEEDS_ROUTING = "needs trafficRouting"


def metric_with(**fields: Any) -> Doc:
    return template_with(fields)


def provider(name: str) -> Doc:
    return template_with({"provider": {name: {}}})


def prometheus(**fields: Any) -> Doc:
    return template_with({"provider": {"prometheus": {**PROM["prometheus"], **fields}}})


def template_spec(**fields: Any) -> Doc:
    doc = template_with()
    doc["spec"].update(fields)
    return doc


def step(**fields: Any) -> Doc:
    return rollout_with(steps=[fields])


REFUSED: list[tuple[str, Doc, str, str]] = [
    ("spec.rollbackWindow", rollout_with({"rollbackWindow": {"revisions": 1}}), "spec.rollbackWindow", NOT_SUPPORTED),
    ("spec.restartAt", rollout_with({"restartAt": "2024-01-01T00:00:00Z"}), "spec.restartAt", NOT_SUPPORTED),
    ("spec.analysis", rollout_with({"analysis": {"successfulRunHistoryLimit": 1}}), "spec.analysis", NOT_SUPPORTED),
    *[
        (f"blueGreen.{key}", blue_green_with(**{key: value}), f"{BLUE_GREEN}.{key}", NOT_SUPPORTED)
        for key, value in (("antiAffinity", {}), ("maxUnavailable", 1), ("scaleDownDelayRevisionLimit", 1))
    ],
    ("blueGreen.unknown-field", blue_green_with(activeServices="x"), f"{BLUE_GREEN}.activeServices", "unknown field"),
    (
        "blueGreen.activeService-missing",
        base_rollout(strategy={"blueGreen": {"previewService": "p"}}),
        f"{BLUE_GREEN}.activeService",
        "is required",
    ),
    (
        "blueGreen.previewService-same-as-active",
        blue_green_with(previewService="web-active"),
        f"{BLUE_GREEN}.previewService",
        "two different Services are required",
    ),
    (
        "spec.strategy-canary-and-blueGreen",
        base_rollout(strategy={"canary": {}, "blueGreen": {"activeService": "a"}}),
        "spec.strategy",
        "sets both canary and blueGreen",
    ),
    ("canary.antiAffinity", rollout_with(antiAffinity={}), f"{CANARY}.antiAffinity", NOT_SUPPORTED),
    ("canary.pingPong", rollout_with(pingPong={}), f"{CANARY}.pingPong", NOT_SUPPORTED),
    (
        "canary.minPodsPerReplicaSet",
        rollout_with(minPodsPerReplicaSet=2),
        f"{CANARY}.minPodsPerReplicaSet",
        NOT_SUPPORTED,
    ),
    (
        "canary.scaleDownDelayRevisionLimit",
        rollout_with(scaleDownDelayRevisionLimit=1),
        f"{CANARY}.scaleDownDelayRevisionLimit",
        NOT_SUPPORTED,
    ),
    (
        "canary.replicaProgressThreshold",
        rollout_with(replicaProgressThreshold={}),
        f"{CANARY}.replicaProgressThreshold",
        NOT_SUPPORTED,
    ),
    (
        "canary.scaleDownDelaySeconds-without-trafficRouting",
        without_routing(scaleDownDelaySeconds=30),
        f"{CANARY}.scaleDownDelaySeconds",
        NEEDS_ROUTING,
    ),
    (
        "canary.abortScaleDownDelaySeconds-without-trafficRouting",
        without_routing(abortScaleDownDelaySeconds=30),
        f"{CANARY}.abortScaleDownDelaySeconds",
        NEEDS_ROUTING,
    ),
    (
        "canary.dynamicStableScale-without-trafficRouting",
        without_routing(dynamicStableScale=True),
        f"{CANARY}.dynamicStableScale",
        NEEDS_ROUTING,
    ),
    (
        "canary.steps.setCanaryScale-without-trafficRouting",
        without_routing(steps=[{"setCanaryScale": {"replicas": 1}}]),
        f"{CANARY}.steps[0].setCanaryScale",
        NEEDS_ROUTING,
    ),
    ("canary.steps.experiment", step(experiment={}), f"{CANARY}.steps[0].experiment", NOT_SUPPORTED),
    (
        "canary.steps.setMirrorRoute.match.method.regex",
        rollout_with(
            steps=[{"setMirrorRoute": {"name": "beta", "match": [{"method": {"regex": "G.*"}}]}}],
            trafficRouting=MANAGED,
        ),
        f"{CANARY}.steps[0].setMirrorRoute.match[0].method.regex",
        "Gateway API matches a method only exactly",
    ),
    (
        "canary.steps.setMirrorRoute.match.method.prefix",
        rollout_with(
            steps=[{"setMirrorRoute": {"name": "beta", "match": [{"method": {"prefix": "P"}}]}}], trafficRouting=MANAGED
        ),
        f"{CANARY}.steps[0].setMirrorRoute.match[0].method.prefix",
        "Gateway API matches a method only exactly",
    ),
    (
        "canary.steps.setMirrorRoute-on-grpcRoute-only",
        rollout_with(
            steps=[MIRROR_STEP],
            trafficRouting={"managedRoutes": [{"name": "beta"}], "plugins": {PLUGIN: {"grpcRoute": "web"}}},
        ),
        f"{CANARY}.trafficRouting",
        "KULTA mirrors on HTTPRoutes only",
    ),
    (
        "canary.steps.setMirrorRoute-without-trafficRouting",
        without_routing(steps=[MIRROR_STEP]),
        f"{CANARY}.steps[0].setMirrorRoute",
        NEEDS_ROUTING,
    ),
    ("canary.steps.plugin", step(plugin={}), f"{CANARY}.steps[0].plugin", NOT_SUPPORTED),
    (
        "canary.steps.analysis.dryRun",
        step(analysis={**ANALYSIS, "dryRun": [{"metricName": "m"}]}),
        f"{CANARY}.steps[0].analysis.dryRun",
        NOT_SUPPORTED,
    ),
    (
        "canary.steps.analysis.measurementRetention",
        step(analysis={**ANALYSIS, "measurementRetention": []}),
        f"{CANARY}.steps[0].analysis.measurementRetention",
        NOT_SUPPORTED,
    ),
    (
        "canary.steps.analysis.analysisRunMetadata",
        step(analysis={**ANALYSIS, "analysisRunMetadata": {}}),
        f"{CANARY}.steps[0].analysis.analysisRunMetadata",
        NOT_SUPPORTED,
    ),
    *[
        (
            f"canary.analysis.{key}",
            rollout_with(analysis={**ANALYSIS, key: value}),
            f"{CANARY}.analysis.{key}",
            NOT_SUPPORTED,
        )
        for key, value in (("dryRun", [{"metricName": "m"}]), ("measurementRetention", []), ("analysisRunMetadata", {}))
    ],
    *[
        (
            f"trafficRouting.{router}",
            rollout_with(trafficRouting={router: {}}),
            f"{CANARY}.trafficRouting.{router}",
            NOT_SUPPORTED,
        )
        for router in ("istio", "nginx", "alb", "smi", "ambassador", "appMesh", "traefik", "apisix")
    ],
    (
        "trafficRouting.maxTrafficWeight",
        rollout_with(trafficRouting={**gateway(), "maxTrafficWeight": 1000}),
        f"{CANARY}.trafficRouting.maxTrafficWeight",
        NOT_SUPPORTED,
    ),
    (
        "trafficRouting.plugins.other",
        rollout_with(trafficRouting={"plugins": {"argoproj-labs/contour": {}}}),
        f"{CANARY}.trafficRouting.plugins.argoproj-labs/contour",
        NOT_SUPPORTED,
    ),
    *[
        (
            f"trafficRouting.plugins.gatewayAPI.{key}",
            rollout_with(trafficRouting=gateway(**{key: value})),
            f"{CANARY}.trafficRouting.plugins.{PLUGIN}.{key}",
            NOT_SUPPORTED,
        )
        for key, value in (
            ("tcpRoute", "t"),
            ("tcpRoutes", []),
            ("tlsRoute", "t"),
            ("tlsRoutes", []),
            ("httpRouteSelector", {}),
            ("grpcRouteSelector", {}),
            ("tcpRouteSelector", {}),
            ("tlsRouteSelector", {}),
            ("inProgressLabelKey", "k"),
            ("inProgressLabelValue", "v"),
            ("disableInProgressLabel", True),
        )
    ],
    (
        "spec.workloadRef.scaleDown",
        rollout_with(
            {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": "never"}}
        ),
        "spec.workloadRef.scaleDown",
        NOT_SUPPORTED,
    ),
    (
        "template.spec.measurementRetention",
        template_spec(measurementRetention=[]),
        "spec.measurementRetention",
        NOT_SUPPORTED,
    ),
    ("template.spec.templates", template_spec(templates=[{"templateName": "x"}]), "spec.templates", NOT_SUPPORTED),
    (
        "template.metrics.consecutiveSuccessLimit",
        metric_with(consecutiveSuccessLimit=2),
        "spec.metrics[0].consecutiveSuccessLimit",
        NOT_SUPPORTED,
    ),
    *[
        (f"template.metrics.provider.{name}", provider(name), f"spec.metrics[0].provider.{name}", NOT_SUPPORTED)
        for name in (
            "kayenta",
            "datadog",
            "wavefront",
            "newRelic",
            "job",
            "cloudWatch",
            "graphite",
            "influxdb",
            "skywalking",
            "plugin",
        )
    ],
    *[
        (
            f"template.metrics.provider.prometheus.{key}",
            prometheus(**{key: value}),
            f"spec.metrics[0].provider.prometheus.{key}",
            NOT_SUPPORTED,
        )
        for key, value in (("authentication", {"sigv4": {}}), ("insecure", True), ("rangeQuery", {"step": "1m"}))
    ],
    (
        "template.metrics.provider.web.authentication",
        web_with(authentication={"oauth2": {"tokenUrl": "https://idp/token"}}),
        "spec.metrics[0].provider.web.authentication",
        NOT_SUPPORTED,
    ),
]


@pytest.mark.parametrize(("doc", "path", "fragment"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_field_is_refused(doc: Doc, path: str, fragment: str) -> None:
    result = load(doc)
    prefix = f"{FILE}#1 {path}: "
    matching = [line for line in error_lines(result) if line.startswith(prefix)]
    assert len(matching) == 1, error_lines(result)
    assert fragment in matching[0]
    assert result.rollouts == ()
    assert result.templates == ()


# Argo's docs/features/analysis.md "Dry-Run Mode": metricName is a regular expression
# (GetDryRunMetrics searches it in each metric name), ".*" marks every metric.
@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([".*"], [True, True, True]),
        (["total-5xx-errors"], [True, False, False]),
        (["test.*"], [False, True, True]),
        (["5xx"], [True, False, False]),
        (["^test-a$", "errors"], [True, True, False]),
        (["*"], [True, True, True]),
    ],
    ids=["all", "name", "regex", "unanchored", "two-rules", "kulta-star"],
)
def test_dry_run_metric_names_are_regular_expressions(rules: list[str], expected: list[bool]) -> None:
    names = ["total-5xx-errors", "test-a", "test-b"]
    doc = template_doc(
        metrics=[{"name": name, "provider": copy.deepcopy(PROM)} for name in names],
        dryRun=[{"metricName": rule} for rule in rules],
    )
    result = load(doc)
    assert error_lines(result) == []
    assert [metric.dry_run for metric in result.templates[0].metrics] == expected


def test_a_dry_run_rule_that_is_not_a_regular_expression_is_refused() -> None:
    doc = template_with(dryRun=[{"metricName": "(m"}])
    assert error_lines(load(doc)) == [
        f'{FILE}#1 spec.dryRun[0].metricName: "(m" is not a valid regular expression: '
        "missing ), unterminated subpattern at position 0"
    ]


def _node_ids_in_the_conformance_table() -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "spec.md").read_text()
    section = text.split("## Conformance with Argo Rollouts", 1)[1].split("\n## ", 1)[0]
    cells = [line.rstrip(" |").rsplit("|", 1)[1].strip() for line in section.splitlines() if line.startswith("| `")]
    return [cell.strip("`") for cell in cells if cell != "TBD-e2e"]


def _parametrize_ids(function: Any) -> list[str]:
    return [
        str(i)
        for mark in getattr(function, "pytestmark", [])
        if mark.name == "parametrize"
        for i in mark.kwargs.get("ids", [])
    ]


def test_every_test_in_the_conformance_table_exists() -> None:
    node_ids = _node_ids_in_the_conformance_table()
    assert len(node_ids) >= 80
    for node_id in node_ids:
        path, _, name = node_id.partition("::")
        function_name, _, param = name.partition("[")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        function = getattr(module, function_name, None)
        assert callable(function), node_id
        if param:
            assert param.removesuffix("]") in _parametrize_ids(function), node_id
