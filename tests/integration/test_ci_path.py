"""The CI path: `pulumi preview --diff` and repeated `pulumi up --yes` + `kulta events`.

The same command sequence a CI workflow runs (examples/ci/rollout.yml), with the
real `pulumi` CLI on the repository's own Pulumi project, the local cluster,
real Prometheus scraping the traffic simulator, and a real CloudEvents receiver.
A good revision reaches Healthy through its analysis, a bad one is aborted by
it, manual commands written by `kulta promote|abort` are honoured, and the
events are those `kulta run` sends for the same history
(tests/integration/test_analysis_rollout.py asserts the same sequences).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kulta.core.revision import pod_template_hash, resolve_template
from kulta.model.status import AnalysisPhase, MeasurementPhase, Phase, RolloutStatus
from kulta.spec.loader import load_text
from tests.integration.conftest import ROOT, kubectl, route_yaml, unique
from tests.integration.eventsink import EventReceiver
from tests.integration.promserver import running_prometheus
from tests.integration.test_analysis_rollout import DOCS, event_types, set_profile, simulator

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

ENV = "ci"

ANALYSIS_STEPS = """        - setWeight: 50
        - analysis: {{templates: [{{templateName: errors}}]}}
        - setWeight: 80
"""
#: the Rollout of DOCS with a pause instead of the analysis
PAUSED_DOCS = DOCS.split("---\n", 1)[1].replace(
    ANALYSIS_STEPS, "        - setWeight: 25\n        - pause: {{}}\n        - setWeight: 75\n"
)
assert "pause" in PAUSED_DOCS and "errors" not in PAUSED_DOCS


class Project:
    """A copy of the repository's Pulumi project with one stack, driven by the CLIs."""

    def __init__(self, cluster, tmp_path: Path, ns: str, receiver: EventReceiver) -> None:
        self.dir = tmp_path / "project"
        self.dir.mkdir()
        for name in ("Pulumi.yaml", "__main__.py"):
            shutil.copy(ROOT / name, self.dir / name)
        (self.dir / "stacks").mkdir()
        (self.dir / "rollouts").mkdir()
        (tmp_path / "backend").mkdir()
        self.state = tmp_path / "state"
        self.ns = ns
        self.stack = f"{ENV}.{ns}.pay"
        self.receiver = receiver
        self.env = {
            **os.environ,
            "PULUMI_BACKEND_URL": f"file://{tmp_path / 'backend'}",
            "PULUMI_CONFIG_PASSPHRASE": "",
            "KUBECONFIG": cluster.kubeconfig,
            "PYTHONPATH": str(ROOT),
            "KULTA_STATE_DIR": str(self.state),
        }
        self.outputs_seen: list[str] = []
        self.run("pulumi", "stack", "init", self.stack)
        self.pulumi("config", "set", "kulta:rollout", "rollouts")
        self.pulumi("config", "set", "kulta:cluster", "kwok")

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(argv), cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        self.outputs_seen.append(proc.stdout + proc.stderr)
        if check:
            assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
        return proc

    def pulumi(self, *args: str) -> str:
        return self.run("pulumi", *args, "--stack", self.stack, "--non-interactive", "--color", "never").stdout

    def kulta(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(
            sys.executable, "-m", "kulta.cli", *args, "--env", ENV, "--state-dir", str(self.state), check=check
        )

    def commit(self, text: str) -> None:
        (self.dir / "rollouts" / "pay.yaml").write_text(text)

    def up_and_events(self) -> RolloutStatus:
        """One CI job on merge: `pulumi up --yes`, then `kulta events`."""
        self.pulumi("up", "--yes", "--skip-preview")
        self.kulta("events", "--sink-url", self.receiver.url)
        return self.status()

    def status(self) -> RolloutStatus:
        raw = self.pulumi("stack", "output", "--json", "--show-secrets")
        return RolloutStatus.from_outputs(json.loads(raw))

    def walk(self, until, limit: int = 40) -> RolloutStatus:
        status = None
        for _ in range(limit):
            status = self.up_and_events()
            if until(status):
                return status
        raise AssertionError(f"not reached in {limit} `pulumi up`: {status}")


@pytest.fixture
def ci(cluster, tmp_path):
    ns = unique("ci")
    kubectl(cluster, "create", "namespace", ns)
    kubectl(cluster, "apply", "-f", "-", stdin=route_yaml(ns, name="pay", stable="pay-stable", canary="pay-canary"))
    receiver = EventReceiver()
    receiver.start()
    try:
        yield Project(cluster, tmp_path, ns, receiver), tmp_path, cluster
    finally:
        receiver.stop()


def revision_of(text: str, name: str) -> str:
    loaded = load_text(text, name)
    assert not loaded.errors, loaded.errors
    return pod_template_hash(resolve_template(loaded.rollouts[0], loaded.others))


def test_analysis_decides_on_the_ci_path_and_events_match_kulta_run(ci):
    project, tmp_path, cluster = ci
    with (
        simulator(cluster, project.ns, tmp_path / "sim") as (target, profile),
        running_prometheus([target], tmp_path / "prom") as prom,
    ):
        v1 = DOCS.format(ns=project.ns, prom=prom.url, tag="v1")
        project.commit(v1)
        preview = project.pulumi("preview", "--diff")
        assert "kubernetes:apps/v1:ReplicaSet" in preview
        st = project.walk(lambda s: s.phase is Phase.HEALTHY)
        h1 = st.stable_revision
        assert h1 == revision_of(v1, "v1.yaml")

        # a good revision: Healthy through its analysis, measured by `pulumi up`
        v2 = DOCS.format(ns=project.ns, prom=prom.url, tag="v2")
        h2 = revision_of(v2, "v2.yaml")
        set_profile(profile, h1, h2, 0.0)
        project.commit(v2)
        st = project.walk(lambda s: s.phase is Phase.HEALTHY and s.stable_revision == h2)
        run = next(r for r in st.analysis_runs if r.step_index == 1)
        assert run.phase is AnalysisPhase.SUCCESSFUL
        assert [m.phase for m in run.measurements].count(MeasurementPhase.SUCCESSFUL) == 4
        types = event_types(project.receiver)
        # the same sequences test_analysis_rollout.py asserts for `kulta run`
        assert types[:3] == ["pipelinerun.started", "service.deployed", "pipelinerun.finished"], types
        rest = types[3:]
        assert rest[0] == "pipelinerun.started" and rest[-2:] == ["service.upgraded", "pipelinerun.finished"], rest
        assert "incident.detected" not in rest
        assert project.receiver.accepted()[-1].json()["subject"]["content"]["outcome"] == "success"
        ids = [r.json()["context"]["id"] for r in project.receiver.accepted()]
        assert len(ids) == len(set(ids)), ids

        # the same CI step retried: nothing is sent twice
        sent = len(project.receiver.accepted())
        again = project.kulta("events", "--sink-url", project.receiver.url)
        assert again.stdout.splitlines()[0] == f"{project.stack}: nothing new to send", again.stdout
        assert len(project.receiver.accepted()) == sent

        # a bad revision: aborted by the analysis, traffic back on stable
        v3 = DOCS.format(ns=project.ns, prom=prom.url, tag="v3")
        h3 = revision_of(v3, "v3.yaml")
        set_profile(profile, h2, h3, 0.2)
        project.commit(v3)
        st = project.walk(lambda s: s.phase is Phase.ABORTED)
        assert st.stable_revision == h2 and st.canary_revision == h3
        run = next(r for r in st.analysis_runs if r.step_index == 1)
        assert run.phase is AnalysisPhase.FAILED
        types = event_types(project.receiver)
        assert types[-3:] == ["incident.detected", "service.rolledback", "pipelinerun.finished"], types
        assert project.receiver.accepted()[-1].json()["subject"]["content"]["outcome"] == "failure"
        ids = [r.json()["context"]["id"] for r in project.receiver.accepted()]
        assert len(ids) == len(set(ids)), ids
    logs = "\n".join(project.outputs_seen)
    # the language host exits quietly when the engine stops it (no KeyboardInterrupt trace)
    assert "Traceback" not in logs, logs[logs.find("Traceback") - 500 :][:3000]


def test_manual_commands_are_honoured_and_an_up_between_changes_moves_nothing(ci):
    project, _, _ = ci
    project.commit(PAUSED_DOCS.format(ns=project.ns, tag="v1"))
    project.walk(lambda s: s.phase is Phase.HEALTHY)
    project.commit(PAUSED_DOCS.format(ns=project.ns, tag="v2"))
    paused = project.walk(lambda s: s.phase is Phase.PAUSED)
    assert paused.current_step_index == 1
    # nothing due: another `pulumi up` records the same status and moves nothing
    again = project.up_and_events()
    assert again.to_outputs() == paused.to_outputs()
    project.kulta("promote", "pay")
    moved = project.walk(lambda s: s.current_step_index > 1 or s.phase is Phase.HEALTHY, limit=3)
    assert moved.current_step_index >= 2 and moved.last_command_id
    healthy = project.walk(lambda s: s.phase is Phase.HEALTHY)
    assert healthy.stable_revision == moved.canary_revision
    # an abort during the next canary
    project.commit(PAUSED_DOCS.format(ns=project.ns, tag="v3"))
    project.walk(lambda s: s.phase is Phase.PAUSED)
    project.kulta("abort", "pay")
    aborted = project.walk(lambda s: s.phase is Phase.ABORTED, limit=3)
    assert aborted.stable_revision == healthy.stable_revision
    types = event_types(project.receiver)
    assert types[-2:] == ["service.rolledback", "pipelinerun.finished"], types
