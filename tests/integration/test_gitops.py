"""From a commit in Git to a promoted or rolled-back rollout: real git, engine and cluster.

The walk-through runs the reconciler in-process (to check the API server after
every update); the rest drive the real `kulta` command line as a user's CI or
loop would, including kill -9 and two reconcilers on one backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from kubernetes import client, config

from kulta.adapters.git_source import GitSource, GitSourceConfig
from kulta.adapters.kube import KubeReader
from kulta.adapters.stacks import StackManager, StackSettings, stack_name_for
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.core.routes import route_weights
from kulta.core.times import parse_time
from kulta.devcluster import free_port
from kulta.model.status import Phase, RolloutStatus
from kulta.spec.loader import load_paths
from tests.integration.conftest import ROOT, kubectl, route_yaml, unique

pytestmark = pytest.mark.cluster

ROLLOUT = """apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: shop, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec:
      containers:
        - {{name: shop, image: "registry.local/shop:{tag}", ports: [{{containerPort: 8080}}]}}
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      scaleDownDelaySeconds: 0
      abortScaleDownDelaySeconds: 0
      trafficRouting: {{gatewayAPI: {{httpRoute: shop}}}}
      steps:
{steps}
"""

WALK_STEPS = """        - setWeight: 20
        - setWeight: 50
        - setWeight: 80"""
#: long enough that the second ``--once`` process surely starts inside it on a loaded
#: 2-core machine (a start-up takes a few seconds: an order of magnitude of margin)
PAUSE_SECONDS = 30
PAUSE_STEPS = f"""        - setWeight: 50
        - pause: {{duration: {PAUSE_SECONDS}s}}
        - setWeight: 80"""
HOLD_STEPS = """        - setWeight: 50
        - pause: {}
        - setWeight: 80"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--bare", "-b", "main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "clone", str(bare), str(work))
    git(work, "config", "user.email", "ci@example.test")
    git(work, "config", "user.name", "CI")
    return bare, work


def commit(work: Path, ns: str, tag: str, steps: str, message: str) -> str:
    (work / "rollouts").mkdir(exist_ok=True)
    (work / "rollouts" / "shop.yaml").write_text(ROLLOUT.format(ns=ns, tag=tag, steps=steps))
    git(work, "add", "-A")
    git(work, "commit", "-m", message)
    git(work, "push", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD").strip()


def namespace(cluster, prefix: str) -> str:
    name = unique(prefix)
    kubectl(cluster, "create", "namespace", name)
    kubectl(
        cluster, "apply", "-f", "-", stdin=route_yaml(name, name="shop", stable="shop-stable", canary="shop-canary")
    )
    return name


def kulta(
    cluster, state: Path, *args: str, backend: Path | str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The `kulta` command line; ``backend``: a file backend's directory, or a whole URL."""
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PYTHONPATH": str(ROOT)}
    if backend is not None:
        env["PULUMI_BACKEND_URL"] = backend if isinstance(backend, str) else f"file://{backend}"
    return subprocess.run(
        [sys.executable, "-m", "kulta.cli", *args, "--state-dir", str(state), "--env", "e2e"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def status_of(stacks: StackManager, ns: str) -> RolloutStatus:
    return RolloutStatus.from_outputs(stacks.outputs(stack_name_for("e2e", ns, "shop")))


def live_weights(api, ns: str) -> tuple[int, int] | None:
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "shop"
    )
    return route_weights(route["spec"]["rules"], "shop-stable", "shop-canary")


def test_commit_walks_every_step_and_a_new_commit_restarts_the_canary(cluster, repo, tmp_path):
    bare, work = repo
    ns = namespace(cluster, "gitops-walk")
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
    seen: list[tuple[int, int, dict[str, int]]] = []

    def check(st: RolloutStatus) -> None:
        apps = client.AppsV1Api(api)
        live = {rs: apps.read_namespaced_replica_set(rs, ns).spec.replicas for rs in st.replicas}
        assert live == dict(st.replicas)
        assert live_weights(api, ns) == (st.weights[0].stable, st.weights[0].canary)
        seen.append((st.current_step_index, st.weights[0].canary, live))

    rec = Reconciler(
        ReconcilerConfig(environment="e2e"), stacks, KubeReader(cluster.kubeconfig), provider=None, on_update=check
    )  # type: ignore[arg-type]
    source = GitSource(GitSourceConfig(f"file://{bare}", branch="main", path="rollouts", cache_dir=tmp_path / "git"))

    def one_pass():
        snap = source.sync()
        loaded = load_paths(list(snap.files), base=snap.workdir)
        assert not loaded.errors
        report = rec.reconcile_pass(loaded, snap.commit)
        assert not [o.error for o in report.outcomes if o.error], report.outcomes
        return snap.commit, report

    c1 = commit(work, ns, "v1", WALK_STEPS, "v1")
    _, report = one_pass()
    assert report.outcomes[0].phase is Phase.HEALTHY
    assert status_of(stacks, ns).git_commit == c1

    c2 = commit(work, ns, "v2", WALK_STEPS, "v2")
    _, report = one_pass()
    st = status_of(stacks, ns)
    assert st.phase is Phase.HEALTHY and st.git_commit == c2 and st.stable_revision != seen[0]
    canary_weights = [w for (_i, w, _l) in seen[1:]]
    assert canary_weights == [20, 50, 80, 0], seen  # every step, then promoted (stable carries 100)

    # v3 with an indefinite pause, then v4 while v3 is mid-rollout: restart from step 0
    commit(work, ns, "v3", HOLD_STEPS, "v3")
    one_pass()
    st3 = status_of(stacks, ns)
    assert st3.phase is Phase.PAUSED and st3.current_step_index == 1
    commit(work, ns, "v4", HOLD_STEPS, "v4")
    one_pass()
    st4 = status_of(stacks, ns)
    assert st4.canary_revision != st3.canary_revision and st4.current_step_index == 1
    assert st4.stable_revision == st.stable_revision
    assert client.AppsV1Api(api).read_namespaced_replica_set(f"shop-{st3.canary_revision}", ns).spec.replicas == 0

    # `kulta abort` from the command line of "another machine" (its own state dir,
    # the same backend), applied by the next pass
    done = kulta(cluster, tmp_path / "elsewhere", "abort", f"{ns}/shop", backend=tmp_path / "state" / "backend")
    assert done.returncode == 0, done.stderr
    one_pass()
    ab = status_of(stacks, ns)
    assert ab.phase is Phase.ABORTED and live_weights(api, ns) == (100, 0)


def test_once_runs_across_a_timed_pause_honour_it_exactly_once(cluster, repo, tmp_path):
    bare, work = repo
    ns = namespace(cluster, "gitops-once")
    state = tmp_path / "state"
    commit(work, ns, "v1", PAUSE_STEPS, "v1")
    args = ("run", "--once", "--repo", f"file://{bare}", "--path", "rollouts")
    first = kulta(cluster, state, *args)
    assert first.returncode == 0, first.stdout + first.stderr
    commit(work, ns, "v2", PAUSE_STEPS, "v2")
    r1 = kulta(cluster, state, *args)
    assert r1.returncode == 0, r1.stdout + r1.stderr
    stacks = StackManager(StackSettings(state_dir=state, kubeconfig=cluster.kubeconfig))
    st = status_of(stacks, ns)
    assert st.current_step_index == 1 and st.pause_started_at
    n_before = len(stacks.history(stack_name_for("e2e", ns, "shop")))
    r2 = kulta(cluster, state, *args)  # still pausing: no update at all
    assert r2.returncode == 0 and "pausing" in r2.stdout, r2.stdout
    assert len(stacks.history(stack_name_for("e2e", ns, "shop"))) == n_before
    # wait for the pause's end as recorded in the status, not a guess of how long the runs took
    pause_end = parse_time(st.pause_started_at) + timedelta(seconds=PAUSE_SECONDS)
    time.sleep(max(0.0, (pause_end - datetime.now(UTC)).total_seconds()) + 1.0)
    r3 = kulta(cluster, state, *args)
    assert r3.returncode == 0, r3.stdout + r3.stderr
    st = status_of(stacks, ns)
    assert st.phase is Phase.HEALTHY
    messages = [h.message for h in stacks.history(stack_name_for("e2e", ns, "shop"))]
    assert sum("step=1/3" in m and "Progressing" in m for m in messages) == 1, messages


def test_kill_9_during_an_update_resumes_the_same_step(cluster, repo, tmp_path):
    bare, work = repo
    ns = namespace(cluster, "gitops-kill")
    state = tmp_path / "state"
    commit(work, ns, "v1", WALK_STEPS, "v1")
    args = ("run", "--once", "--repo", f"file://{bare}", "--path", "rollouts")
    assert kulta(cluster, state, *args).returncode == 0
    commit(work, ns, "v2", WALK_STEPS, "v2")
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kulta.cli",
            "run",
            "--repo",
            f"file://{bare}",
            "--path",
            "rollouts",
            "--state-dir",
            str(state),
            "--env",
            "e2e",
            "--interval",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "step=1/3" in line:  # the update of step 1 has just started
            time.sleep(1.0)
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    stacks = StackManager(StackSettings(state_dir=state, kubeconfig=cluster.kubeconfig))
    resumed = kulta(cluster, state, *args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    st = status_of(stacks, ns)
    assert st.phase is Phase.HEALTHY, (st.current_step_index, st.message, resumed.stdout, resumed.stderr[-3000:])
    succeeded = [h for h in stacks.history(stack_name_for("e2e", ns, "shop")) if h.result == "succeeded"]
    steps = [h.message.split("step=")[1].split("/")[0] for h in sorted(succeeded, key=lambda h: h.version)]
    progressing = [
        s for s, h in zip(steps, sorted(succeeded, key=lambda h: h.version), strict=True) if "Progressing" in h.message
    ]
    assert progressing == sorted(set(progressing)), steps  # no step applied twice, none skipped
    assert progressing == ["0", "1", "2"], steps
    lock_dir = stacks.lock_dir(stack_name_for("e2e", ns, "shop"))
    assert lock_dir is None or not list(lock_dir.glob("*.json"))


def test_two_reconcilers_on_one_backend_drive_each_rollout_once(cluster, repo, tmp_path):
    bare, work = repo
    ns = namespace(cluster, "gitops-two")
    backend = tmp_path / "backend"
    backend.mkdir()
    commit(work, ns, "v1", WALK_STEPS, "v1")
    args = ("run", "--once", "--repo", f"file://{bare}", "--path", "rollouts")
    assert kulta(cluster, tmp_path / "a", *args, backend=backend).returncode == 0
    commit(work, ns, "v2", WALK_STEPS, "v2")
    env = {
        **os.environ,
        "KUBECONFIG": cluster.kubeconfig,
        "PYTHONPATH": str(ROOT),
        "PULUMI_BACKEND_URL": f"file://{backend}",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kulta.cli",
                "run",
                "--once",
                "--repo",
                f"file://{bare}",
                "--path",
                "rollouts",
                "--state-dir",
                str(tmp_path / d),
                "--env",
                "e2e",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for d in ("a", "b")
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert any("skipped" in o or "updates 0" in o for o in outs) or all(p.returncode == 0 for p in procs), outs
    # whichever lost the lock race finishes the job on its next run
    final = kulta(cluster, tmp_path / "b", *args, backend=backend)
    assert final.returncode == 0, final.stdout
    stacks = StackManager(
        StackSettings(state_dir=tmp_path / "a", kubeconfig=cluster.kubeconfig, backend_url=f"file://{backend}")
    )
    st = status_of(stacks, ns)
    assert st.phase is Phase.HEALTHY
    succeeded = sorted(
        (h for h in stacks.history(stack_name_for("e2e", ns, "shop")) if h.result == "succeeded"),
        key=lambda h: h.version,
    )
    applied = [h.message.split("step=")[1].split(" ")[0] for h in succeeded if "Progressing" in h.message]
    assert applied == ["0/3", "1/3", "2/3"], [h.message for h in succeeded]


def deployed_then_deleted(cluster, repo, tmp_path, prefix: str):
    """Deploy v1 of the rollout with `kulta run --once`, then delete its file in Git."""
    bare, work = repo
    ns = namespace(cluster, prefix)
    state = tmp_path / "state"
    commit(work, ns, "v1", WALK_STEPS, "v1")
    args = ("run", "--once", "--repo", f"file://{bare}", "--path", "rollouts")
    assert kulta(cluster, state, *args).returncode == 0
    (work / "rollouts" / "shop.yaml").unlink()
    (work / "rollouts" / "README").write_text("nothing here\n")
    git(work, "add", "-A")
    git(work, "commit", "-m", "remove shop")
    git(work, "push", "origin", "HEAD:main")
    return bare, ns, state, args


def test_deleted_rollout_file_is_reported_not_destroyed(cluster, repo, tmp_path):
    bare, ns, state, args = deployed_then_deleted(cluster, repo, tmp_path, "gitops-orphan")
    out = kulta(cluster, state, *args)
    assert "orphaned" in out.stdout, out.stdout
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    assert client.AppsV1Api(api).list_namespaced_replica_set(ns).items
    # an unreachable remote is not a deletion either
    moved = bare.with_name("moved.git")
    bare.rename(moved)
    out = kulta(cluster, state, *args)
    assert out.returncode == 2 and "keeping the current state" in out.stdout
    assert client.AppsV1Api(api).list_namespaced_replica_set(ns).items


def test_loop_serves_metrics_and_stops_cleanly_on_sigterm(cluster, repo, tmp_path):
    bare, work = repo
    ns = namespace(cluster, "gitops-loop")
    commit(work, ns, "v1", HOLD_STEPS, "v1")
    port = free_port()
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kulta.cli",
            "--log-json",
            "--log-level",
            "INFO",
            "run",
            "--repo",
            f"file://{bare}",
            "--path",
            "rollouts",
            "--state-dir",
            str(tmp_path / "state"),
            "--env",
            "e2e",
            "--interval",
            "1",
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        text = ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                text = ""
            if 'kulta_rollouts{phase="Healthy"} 1.0' in text:
                break
            time.sleep(0.5)
        assert 'kulta_rollouts{phase="Healthy"} 1.0' in text, text[-2000:]
        assert "kulta_pulumi_update_duration_seconds_count" in text
        commit(work, ns, "v2", HOLD_STEPS, "v2")  # step 0, then paused at step 1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and 'kulta_rollouts{phase="Paused"} 1.0' not in text:
            time.sleep(0.5)
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert 'kulta_rollouts{phase="Paused"} 1.0' in text, text[-2000:]
        assert "kulta_step_duration_seconds_count 1.0" in text, text[-3000:]
        assert "kulta_git_last_sync_timestamp_seconds" in text
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    json_lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any("signal" in line.get("message", "") for line in json_lines), err[-2000:]
    stacks = StackManager(StackSettings(state_dir=tmp_path / "state", kubeconfig=cluster.kubeconfig))
    lock_dir = stacks.lock_dir(stack_name_for("e2e", ns, "shop"))
    assert lock_dir is None or not list(lock_dir.glob("*.json"))


def test_prune_destroys_the_stack_of_a_deleted_rollout_but_keeps_the_users_route(cluster, repo, tmp_path):
    bare, ns, state, args = deployed_then_deleted(cluster, repo, tmp_path, "gitops-prune")
    out = kulta(cluster, state, *args, "--prune")
    assert "destroying its stack" in out.stdout, out.stdout + out.stderr
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and apps.list_namespaced_replica_set(ns).items:
        time.sleep(0.5)
    assert not apps.list_namespaced_replica_set(ns).items
    assert not [s for s in core.list_namespaced_service(ns).items if s.metadata.name.startswith("shop-")]
    # the user's HTTPRoute keeps its rules and its Git-declared weights
    assert live_weights(api, ns) == (100, 0)
    stacks = StackManager(StackSettings(state_dir=state, kubeconfig=cluster.kubeconfig))
    assert stack_name_for("e2e", ns, "shop") not in stacks.list_stacks()


def test_the_first_concurrent_pass_of_many_rollouts_in_a_fresh_process(cluster, repo, tmp_path):
    """Issue 11: pulumi-kubernetes loads its modules lazily, and worker threads raced on them."""
    bare, work = repo
    ns = unique("gitops-many")
    kubectl(cluster, "create", "namespace", ns)
    (work / "rollouts").mkdir(exist_ok=True)
    for i in range(6):
        name = f"shop{i}"
        kubectl(
            cluster,
            "apply",
            "-f",
            "-",
            stdin=route_yaml(ns, name=name, stable=f"{name}-stable", canary=f"{name}-canary"),
        )
        text = ROLLOUT.format(ns=ns, tag="v1", steps=WALK_STEPS).replace("shop", name)
        (work / "rollouts" / f"{name}.yaml").write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-m", "six rollouts")
    git(work, "push", "origin", "HEAD:main")
    out = kulta(
        cluster,
        tmp_path / "state",
        "run",
        "--once",
        "--concurrency",
        "6",
        "--repo",
        f"file://{bare}",
        "--path",
        "rollouts",
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "has no attribute" not in text and "Traceback" not in text, text
    assert text.count(": Healthy step 3/3") == 6, text
