"""The dashboard's view, rendering and door: pure functions, and the real HTTP server on loopback."""

from __future__ import annotations

import json
from http import HTTPStatus

import httpx
import pytest

from kulta.adapters.dashboard_server import (
    HEADER_TOKEN,
    DashboardServer,
    HttpMethod,
    HttpRequest,
    HttpResponse,
    is_loopback,
)
from kulta.adapters.stacks import HistoryEntry, StackManager, StackSettings
from kulta.app.commands import StackRef, allowed_commands
from kulta.app.dashboard import DashboardApp
from kulta.app.dashboard_html import detail_fragment, overview_fragment, page
from kulta.app.dashboard_svg import metric_chart, weight_chart
from kulta.app.dashboard_view import StepState, Threshold, detail_view, overview_rows, threshold_of
from kulta.core.commands import CommandKind
from kulta.model.rollout import AnalysisRef, AnalysisTemplateRef
from kulta.model.status import (
    AnalysisPhase,
    AnalysisRunStatus,
    Measurement,
    MeasurementPhase,
    Phase,
    RolloutStatus,
    RouteWeight,
)
from kulta.spec.loader import load_text

REF = StackRef("prod.shop.web", "prod", "shop", "web")
HOSTILE = '<script>alert("x")</script>'
TEMPLATE = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: errors, namespace: shop}
spec:
  metrics:
    - name: error-ratio
      interval: 30s
      successCondition: result[0] < 0.05
      provider:
        prometheus:
          address: http://prometheus:9090
          query: sum(rate(errors[1m]))
"""


def status(**changes: object) -> RolloutStatus:
    base = RolloutStatus(
        rollout="web",
        namespace="shop",
        environment="prod",
        phase=Phase.PAUSED,
        current_step_index=1,
        step_count=3,
        stable_revision="aaa111",
        canary_revision="bbb222",
        weights=(RouteWeight(route="web", namespace="shop", stable=75, canary=25),),
        message="step 1: pausing until promoted",
    )
    return base.with_changes(**changes) if changes else base


def entry(version: int, minute: int, step: str, canary: int, phase: str = "Progressing", why: str = "") -> HistoryEntry:
    message = f"kulta step={step} canary={canary}% phase={phase} commit=abc :: {why or f'to {step}'}"
    return HistoryEntry(version, f"2026-12-01T12:{minute:02d}:00+00:00", "", "succeeded", message, {"update": 1})


HISTORY = [
    entry(1, 0, "3/3", 0, "Healthy", "first revision aaa111 deployed as stable"),
    entry(2, 1, "0/3", 20),
    entry(3, 2, "1/3", 20),
]


# -- view ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("result[0] < 0.05", Threshold("<", 0.05)),
        ("result >= 0.95", Threshold(">=", 0.95)),
        ("0.95 <= result[0]", Threshold(">=", 0.95)),  # the number on the left: the side flips
        ("100 > result", Threshold("<", 100.0)),
        ("result[1] < 0.05", None),  # another element: not the plotted one
        ("result[0] < 0.05 && result[0] > 0", None),
        ("len(result) > 0", None),
        ("result == 1", None),
        ("result <", None),  # does not parse
    ],
)
def test_threshold_of_a_plain_comparison_only(condition, expected):
    assert threshold_of(condition) == expected


def test_overview_row_carries_phase_step_weight_and_failure():
    health = {"prod.shop.web": {"dependency": "kubernetes", "error": "connection refused"}}
    rows = overview_rows([(REF, status()), (StackRef("prod.shop.new", "prod", "shop", "new"), None)], health)
    assert rows[0].to_json() == {
        "namespace": "shop",
        "rollout": "web",
        "phase": "Paused",
        "step": 1,
        "stepCount": 3,
        "canaryWeight": 25,
        "stableRevision": "aaa111",
        "canaryRevision": "bbb222",
        "message": "step 1: pausing until promoted",
        "failing": "kubernetes: connection refused",
    }
    assert rows[1].phase is None and rows[1].message == "no update yet"


def test_detail_has_one_weight_point_per_update_and_the_timeline_of_the_current_run():
    view = detail_view(REF, status(), list(reversed(HISTORY)), {})
    assert [(p.step, p.canary) for p in view.weights] == [("3/3", 0), ("0/3", 20), ("1/3", 20)]
    assert [(t.index, t.state, t.reached_at[11:16]) for t in view.timeline] == [
        (0, StepState.DONE, "12:01"),
        (1, StepState.CURRENT, "12:02"),
        (2, StepState.PENDING, ""),
        (3, StepState.PENDING, ""),  # the promotion
    ]
    assert [e.text for e in view.events] == ["to 1/3", "to 0/3", "first revision aaa111 deployed as stable"]
    assert (view.can_promote, view.can_abort, view.can_retry) == (True, True, False)


def test_a_retry_starts_the_timeline_again():
    history = [*HISTORY, entry(4, 3, "1/3", 0, "Aborted"), entry(5, 4, "0/3", 20), entry(6, 5, "1/3", 20)]
    view = detail_view(REF, status(), history, {})
    assert view.timeline[0].reached_at[11:16] == "12:04"
    assert view.timeline[1].reached_at[11:16] == "12:05"
    assert len(view.weights) == 6


def test_commands_allowed_follow_the_cli_rules():
    assert allowed_commands(status()) == {CommandKind.PROMOTE, CommandKind.PROMOTE_FULL, CommandKind.ABORT}
    assert allowed_commands(status(aborted=True, phase=Phase.ABORTED)) == {CommandKind.RETRY}
    assert allowed_commands(status(canary_revision="", phase=Phase.HEALTHY)) == frozenset()
    assert allowed_commands(None) == frozenset()


def test_analysis_series_take_the_success_condition_from_the_templates():
    loaded = load_text(TEMPLATE, "errors.yaml")
    assert not loaded.errors
    run = AnalysisRunStatus(
        name="bbb222-2-errors",
        phase=AnalysisPhase.RUNNING,
        step_index=2,
        measurements=(
            Measurement("error-ratio", MeasurementPhase.SUCCESSFUL, "", "2026-12-01T12:03:00Z", "[0.01]"),
            Measurement("error-ratio", MeasurementPhase.FAILED, "", "2026-12-01T12:03:30Z", "[0.2,0.1]"),
            Measurement("error-ratio", MeasurementPhase.ERROR, "", "2026-12-01T12:04:00Z", "", "timeout"),
        ),
        ref=AnalysisRef(templates=(AnalysisTemplateRef("errors"),)),
    )
    view = detail_view(REF, status(analysis_runs=(run,)), HISTORY, {}, loaded.templates)
    (series,) = view.analysis
    assert series.condition == "result[0] < 0.05" and series.threshold == Threshold("<", 0.05)
    assert [v for _, v, _, _ in series.points] == [0.01, 0.2, None]
    svg = metric_chart(series)
    assert svg.count('class="measurement ok"') == 1 and svg.count('class="measurement bad"') == 1
    assert svg.count('class="threshold"') == 1 and "success: result &lt; 0.05" in svg
    # without the templates the chart has no threshold and the page says where to get it
    bare = detail_view(REF, status(analysis_runs=(run,)), HISTORY, {})
    assert bare.analysis[0].threshold is None and "--file" in detail_fragment(bare)


# -- rendering -------------------------------------------------------------------------------


def test_weight_chart_draws_one_point_per_update_on_a_0_to_100_axis():
    svg = weight_chart(detail_view(REF, status(), HISTORY, {}).weights)
    assert svg.count('<circle class="point"') == 3
    assert 'data-canary="20"' in svg and ">100%</text>" in svg


def test_every_string_from_the_backend_is_escaped():
    hostile = status(message=HOSTILE, stable_revision=HOSTILE)
    history = [entry(1, 0, "0/3", 20, why=HOSTILE)]
    health = {REF.name: {"dependency": HOSTILE, "error": HOSTILE}}
    texts = [
        overview_fragment(HOSTILE, overview_rows([(REF, hostile)], health)),
        detail_fragment(detail_view(REF, hostile, history, health)),
        page(HOSTILE, "", HOSTILE),
    ]
    for text in texts:
        assert "<script>" not in text.replace('<script src="/static/dashboard.js" defer></script>', "")
        assert "&lt;script&gt;" in text


def test_buttons_are_enabled_only_where_the_cli_would_accept_the_command():
    html = detail_fragment(detail_view(REF, status(aborted=True, phase=Phase.ABORTED), HISTORY, {}))
    assert 'data-command="retry" title="restart the aborted canary from step 0">' in html
    assert 'data-command="promote" title="skip the current pause or analysis" disabled>' in html
    assert 'data-action="/api/rollouts/shop/web"' in html


# -- the HTTP door ---------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(HTTPStatus.OK, b"ok", "text/plain")


@pytest.fixture
def loopback():
    app = Recorder()
    server = DashboardServer("127.0.0.1", 0, "s3cret", app)
    server.start()
    yield f"http://127.0.0.1:{server.port}", app
    server.close()


def test_loopback_reads_need_no_token_but_commands_do(loopback):
    base, app = loopback
    answer = httpx.get(base + "/rollouts/shop/web?fragment=1")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert app.requests == [HttpRequest(HttpMethod.GET, "/rollouts/shop/web", {"fragment": "1"})]
    assert httpx.post(base + "/api/rollouts/shop/web/promote").status_code == 403
    assert httpx.post(base + "/api/rollouts/shop/web/promote", headers={HEADER_TOKEN: "wrong"}).status_code == 403
    # a cookie is never enough for a command (a cross-site form would carry it)
    assert httpx.post(base + "/api/x", headers={"Cookie": "kulta_token=s3cret"}).status_code == 403
    assert len(app.requests) == 1
    assert httpx.post(base + "/api/x", headers={HEADER_TOKEN: "s3cret"}).status_code == 200
    assert app.requests[-1].method is HttpMethod.POST


def test_loopback_refuses_a_foreign_host_name(loopback):
    base, app = loopback
    # DNS rebinding: a page on evil.example whose name now points at 127.0.0.1
    answer = httpx.get(base + "/", headers={"Host": "evil.example:8080"})
    assert answer.status_code == 403 and not app.requests
    assert httpx.get(base + "/", headers={"Host": "localhost:8080"}).status_code == 200


def test_oversized_requests_are_refused_unread(loopback):
    base, app = loopback
    assert httpx.post(base + "/api/x", headers={HEADER_TOKEN: "s3cret"}, content=b"x" * 5000).status_code == 413
    assert httpx.get(base + "/" + "a" * 3000).status_code == 414
    assert not app.requests


def test_a_failing_page_is_a_500_and_too_many_query_fields_a_400():
    """A bug in a page answers 500 (the client is not left without an answer); the
    server goes on serving."""

    def broken(request: HttpRequest) -> HttpResponse:
        if request.path == "/broken":
            raise ValueError("a bug")
        return HttpResponse(HTTPStatus.OK, b"ok", "text/plain")

    server = DashboardServer("127.0.0.1", 0, "s3cret", broken)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(base + "/broken").status_code == 500
        many = "&".join(f"a{i}=1" for i in range(25))
        assert httpx.get(f"{base}/?{many}").status_code == 400
        assert httpx.get(base + "/").status_code == 200
    finally:
        server.close()


def test_bound_elsewhere_every_request_needs_the_token():
    app = Recorder()
    server = DashboardServer("0.0.0.0", 0, "s3cret", app)  # every address: not loopback
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(base + "/").status_code == 403
        assert httpx.get(base + "/?token=nope").status_code == 403
        opened = httpx.get(base + "/?token=s3cret")
        assert opened.status_code == 200
        cookie = opened.headers["Set-Cookie"]
        assert cookie.startswith("kulta_token=s3cret;") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert httpx.get(base + "/", headers={"Cookie": "kulta_token=s3cret"}).status_code == 200
        assert httpx.get(base + "/", headers={HEADER_TOKEN: "s3cret"}).status_code == 200
        assert httpx.post(base + "/api/x", headers={"Cookie": "kulta_token=s3cret"}).status_code == 403
        assert httpx.post(base + "/api/x", headers={HEADER_TOKEN: "s3cret"}).status_code == 200
    finally:
        server.close()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_app_answers_unknown_pages_rollouts_and_commands_without_writing(tmp_path):
    """A real (empty) file backend: nothing to show, every route says so."""
    stacks = StackManager(StackSettings(state_dir=tmp_path))
    app = DashboardApp(stacks, "prod", tmp_path, "s3cret")
    overview = app(HttpRequest(HttpMethod.GET, "/api/rollouts"))
    assert overview.status == HTTPStatus.OK and json.loads(overview.body) == {"environment": "prod", "rollouts": []}
    missing = app(HttpRequest(HttpMethod.GET, "/rollouts/shop/web"))
    assert missing.status == HTTPStatus.NOT_FOUND and b"no rollout &#x27;shop/web&#x27;" in missing.body
    unknown = app(HttpRequest(HttpMethod.POST, "/api/rollouts/shop/web/deploy"))
    assert unknown.status == HTTPStatus.NOT_FOUND and "no command 'deploy'" in json.loads(unknown.body)["message"]
    assert app(HttpRequest(HttpMethod.GET, "/nowhere")).status == HTTPStatus.NOT_FOUND
    script = app(HttpRequest(HttpMethod.GET, "/static/dashboard.js"))
    assert script.content_type.startswith("text/javascript") and b"X-Kulta-Token" in script.body
    assert stacks.list_stacks() == []
