"""``kulta dashboard`` in a real headless Chromium, over a real rollout on the local cluster.

Given a rollout paused at step 1 (``pause: 1h``) after three real Pulumi updates,
the overview lists it with its phase, step and weight; its page charts one point
per update; and clicking Promote writes the same ``kulta-command`` tag as
``kulta promote``, so the next reconcile pass moves the rollout on to Healthy.

Chromium is Debian's (``dev/toolchain chromium``), driven by the Playwright
wheel's own driver; Playwright's browser download is never used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from kulta.adapters.dashboard_server import HEADER_TOKEN, DashboardServer
from kulta.app.dashboard import DashboardApp
from kulta.core.commands import CommandKind, ManualCommand
from kulta.core.constants import TAG_COMMAND
from kulta.model.status import MeasurementPhase, Phase, RolloutStatus
from tests.integration.test_analysis_rollout import drive, start_canary, world  # noqa: F401 (world is a fixture)
from tests.integration.test_rollout_steps import env, load  # noqa: F401 (env is a fixture)

pytestmark = pytest.mark.cluster

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: with KULTA_UPDATE_SCREENSHOT=1 the tests refresh the docs' pictures (else they stay in tmp_path)
DOCS = Path(__file__).resolve().parents[2] / "docs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOKEN = "test-token-not-secret"


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1100, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    shot = (DOCS if os.environ.get("KULTA_UPDATE_SCREENSHOT") == "1" else tmp_path) / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(PNG_MAGIC)


def test_dashboard_lists_a_paused_rollout_charts_its_steps_and_promotes_it(env, browser_page, tmp_path):  # noqa: F811
    ns, _api, stacks, _clock, rec, seen, _checks = env
    v1 = load(ns, "v1")
    rec.reconcile_rollout(v1.rollouts[0], v1)
    v2 = load(ns, "v2")
    rollout = v2.rollouts[0]
    out = rec.reconcile_rollout(rollout, v2)
    assert out.step == 1, out  # step 0 (setWeight 25) applied, step 1 (pause 1h) holds
    stack = rec.stack_name(rollout)
    updates = len(seen)
    assert updates == len(stacks.history(stack)) == 3, (updates, [s.current_step_index for s in seen])

    server = DashboardServer("127.0.0.1", 0, TOKEN, DashboardApp(stacks, "test", tmp_path / "state", TOKEN))
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        page = browser_page

        # the overview lists the live rollout with phase, step and weight
        page.goto(base + "/")
        row = page.locator(f'tr.rollout[data-rollout="{ns}/web"]')
        expect(row).to_have_count(1)
        paused = RolloutStatus.from_outputs(stacks.outputs(stack))
        # a timed pause (`pause: {duration: 1h}`) is Progressing in KULTA (docs/reconciler.md)
        assert paused.phase is Phase.PROGRESSING and paused.pause_started_at
        expect(row.locator(".phase")).to_have_text("Progressing")
        expect(row.locator("td.step")).to_have_text("1/5")
        expect(row.locator("td.weight .num")).to_have_text("25%")

        # its page: one chart point per update so far, the last at step 1 and 25%
        row.locator("a").click()
        expect(page.locator("h1")).to_contain_text(f"{ns}/web")
        points = page.locator("svg.chart circle.point")
        expect(points).to_have_count(updates)
        assert [points.nth(i).get_attribute("data-canary") for i in range(updates)] == ["0", "25", "25"]
        assert points.nth(updates - 1).get_attribute("data-step") == "1/5"
        # the timeline: step 0 done, step 1 current, steps 2-4 and the promotion to come
        expect(page.locator("ol.steps li.done")).to_have_count(1)
        expect(page.locator("ol.steps li.current")).to_have_attribute("data-step", "1")
        expect(page.locator("ol.steps li.pending")).to_have_count(4)

        # a POST without the token header writes nothing
        refused = httpx.post(f"{base}/api/rollouts/{ns}/web/promote")
        assert refused.status_code == 403 and stacks.get_tag(stack, TAG_COMMAND) is None

        # clicking Promote writes the manual command, as `kulta promote` does
        page.get_by_role("button", name="Promote", exact=True).click()
        expect(page.locator("#notice")).to_contain_text(f"promote requested for {ns}/web")
        command = ManualCommand.from_config(stacks.get_tag(stack, TAG_COMMAND) or "")
        assert command.kind is CommandKind.PROMOTE

        # the next pass applies it: the pause is skipped and the rest of the steps run to Healthy
        out = rec.reconcile_rollout(rollout, v2)
        final = RolloutStatus.from_outputs(stacks.outputs(stack))
        assert out.phase is Phase.HEALTHY and final.phase is Phase.HEALTHY, out
        assert final.last_command_id == command.id and final.current_step_index == 5
        assert final.stable_revision == paused.canary_revision

        # the page refreshes on its own: Healthy, one more point per update, the buttons off
        expect(page.locator(".summary .phase")).to_have_text("Healthy", timeout=15_000)
        expect(points).to_have_count(len(seen))
        expect(page.get_by_role("button", name="Promote", exact=True)).to_be_disabled()
        expect(page.locator("ol.steps li.done")).to_have_count(6)
        data = json.loads(httpx.get(f"{base}/api/rollouts/{ns}/web").text)
        assert data["phase"] == "Healthy" and len(data["weights"]) == len(seen)
        # a command the CLI would refuse is refused with the CLI's words, and nothing is written
        again = httpx.post(f"{base}/api/rollouts/{ns}/web/abort", headers={HEADER_TOKEN: TOKEN})
        assert again.status_code == 409, again.text
        assert again.json()["message"] == f"{ns}/web has no canary in flight (Healthy): nothing to abort"
        assert ManualCommand.from_config(stacks.get_tag(stack, TAG_COMMAND) or "").id == command.id
        screenshot(page, tmp_path, "dashboard.png")
    finally:
        server.close()


@pytest.mark.prometheus
def test_dashboard_plots_a_failed_analysis_against_its_success_condition_and_retries(
    world,  # noqa: F811
    browser_page,
    tmp_path,
):
    """A canary with 20% errors, aborted by ``result[0] <= 0.05``: its measurements on the chart."""
    _ns, _prom, _profile, rec, stacks, _receiver, _api = world
    v2, r2, _h1, _h2 = start_canary(world, 0.2)
    aborted = drive(rec, v2, r2, lambda s: s.phase is Phase.ABORTED)
    run = next(r for r in aborted.analysis_runs if r.step_index == 1)
    judged = [m for m in run.measurements if m.phase is not MeasurementPhase.ERROR]
    failed = [m for m in run.measurements if m.phase is MeasurementPhase.FAILED]
    stack = rec.stack_name(r2)
    app = DashboardApp(stacks, "e2e", tmp_path / "state", TOKEN, v2.templates)
    server = DashboardServer("127.0.0.1", 0, TOKEN, app)
    server.start()
    try:
        page = browser_page
        page.goto(f"http://127.0.0.1:{server.port}/rollouts/{r2.namespace}/{r2.name}")
        expect(page.locator(".summary .phase")).to_have_text("Aborted")
        metric = page.locator("div.metric")
        expect(metric.locator("h3")).to_contain_text("error-ratio")
        expect(metric.locator("p code")).to_have_text("result[0] <= 0.05")
        # one dot per judged measurement (an Error has no value), the two failures in red, the line at 0.05
        expect(metric.locator("circle.measurement")).to_have_count(len(judged))
        expect(metric.locator("circle.measurement.bad")).to_have_count(len(failed))
        assert len(failed) == 2  # failureLimit 1: the second failure ends the run
        expect(metric.locator("line.threshold")).to_have_count(1)
        expect(metric.locator("svg")).to_contain_text("success: result <= 0.05")
        expect(page.locator("ol.steps li.aborted")).to_have_attribute("data-step", "1")
        screenshot(page, tmp_path, "dashboard-analysis.png")

        # only Retry is offered; clicking it writes the command `kulta retry` writes
        expect(page.get_by_role("button", name="Promote", exact=True)).to_be_disabled()
        page.get_by_role("button", name="Retry").click()
        expect(page.locator("#notice")).to_contain_text("retry requested")
        assert ManualCommand.from_config(stacks.get_tag(stack, TAG_COMMAND) or "").kind is CommandKind.RETRY
    finally:
        server.close()
