"""The whole product in one run: what `dev/demo` executes after setup.

1. start the local cluster (control plane on kwok, Gateway API, Prometheus);
2. make a Git repository from examples/ (the demo Rollout and its analysis);
3. apply the user's HTTPRoute, as their GitOps tool would;
4. start a traffic simulator that follows the HTTPRoute weights KULTA writes
   (good canaries answer 0% errors, the bad one 20%) and let Prometheus scrape it;
5. run `kulta run` (the loop) with CDEvents going to a JSON-lines file, and
   commit v1, then v2 (walked through every step to Healthy), then v3 (rolled
   back by analysis);
6. show `kulta status`, `kulta history` and the CDEvents that were emitted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kulta.adapters.stacks import StackManager, StackSettings, stack_name_for
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.devcluster import cluster_up, default_state_dir, free_port, set_scrape_targets
from kulta.model.status import Phase, RolloutStatus
from kulta.spec.loader import load_paths

CLUSTER = "kulta-demo"
ENV = "demo"
STACK = stack_name_for(ENV, "demo", "demo")
IMAGES = {"v1": "registry.local/demo:v1", "v2": "registry.local/demo:v2", "v3": "registry.local/demo:v3-bad"}
ERRORS = {"v1": 0.0, "v2": 0.0, "v3": 0.2}
HTTPROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: demo, namespace: demo}
spec:
  parentRefs: [{name: demo-gateway, namespace: demo}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs:
        - {name: demo-stable, port: 8080, weight: 100}
        - {name: demo-canary, port: 8080, weight: 0}
"""


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def write_version(work: Path, version: str, prometheus: str) -> str:
    rollout = (ROOT / "examples" / "demo-rollout.yaml").read_text().replace(IMAGES["v1"], IMAGES[version])
    analysis = (
        (ROOT / "examples" / "analysis-success-rate.yaml").read_text().replace("http://127.0.0.1:9090", prometheus)
    )
    (work / "rollouts").mkdir(exist_ok=True)
    (work / "rollouts" / "demo.yaml").write_text(rollout)
    (work / "rollouts" / "analysis.yaml").write_text(analysis)
    loaded = load_paths([work / "rollouts"])
    if loaded.errors:
        raise SystemExit("\n".join(map(str, loaded.errors)))
    return pod_template_hash(resolve_template(loaded.rollouts[0], loaded.others))


def commit(work: Path, message: str) -> None:
    run("git", "add", "-A", cwd=work)
    run("git", "commit", "-qm", message, cwd=work)
    run("git", "push", "-q", "origin", "HEAD:main", cwd=work)


def profile(path: Path, stable: tuple[str, str], canary: tuple[str, str]) -> None:
    doc = {
        "stable": {"hash": stable[0], "weight": 100, "errorRate": ERRORS[stable[1]]},
        "canary": {"hash": canary[0], "weight": 0, "errorRate": ERRORS[canary[1]]},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def wait_for(stacks: StackManager, predicate, what: str, timeout: float = 300.0) -> RolloutStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outputs = stacks.outputs(STACK) if stacks.exists(STACK) else {}
        if outputs.get("phase"):
            status = RolloutStatus.from_outputs(outputs)
            if predicate(status):
                return status
        time.sleep(1.0)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    demo = default_state_dir(CLUSTER).parent / "demo-run"
    say("1/6 local cluster: etcd, kube-apiserver, controller-manager, scheduler, kwok nodes, Gateway API, Prometheus")
    cluster = cluster_up(CLUSTER, progress=lambda line: print("  " + line, flush=True))
    kube_env = {**os.environ, "KUBECONFIG": cluster.kubeconfig}
    print(f"KUBECONFIG={cluster.kubeconfig}  Prometheus={cluster.prometheus_url}")
    # a fresh demo each time: forget the previous run's stacks and objects
    if demo.exists():
        shutil.rmtree(demo)
    run("kubectl", "delete", "replicasets,services", "--all", "-n", "demo", "--wait=true", env=kube_env, check=False)
    demo.mkdir(parents=True)

    say("2/6 a Git repository made from examples/ (the demo Rollout and its AnalysisTemplate)")
    bare, work = demo / "remote.git", demo / "work"
    run("git", "init", "-q", "--bare", "-b", "main", str(bare))
    run("git", "clone", "-q", str(bare), str(work))
    run("git", "config", "user.email", "demo@kulta.local", cwd=work)
    run("git", "config", "user.name", "KULTA demo", cwd=work)
    hashes = {v: write_version(work, v, cluster.prometheus_url) for v in ("v3", "v2", "v1")}
    write_version(work, "v1", cluster.prometheus_url)
    commit(work, "demo v1")
    print(f"revisions: v1={hashes['v1']} v2={hashes['v2']} v3(bad)={hashes['v3']}")

    say("3/6 the user's HTTPRoute (applied by their GitOps tool; KULTA only changes its weights)")
    subprocess.run(["kubectl", "apply", "-f", "-"], input=HTTPROUTE, text=True, env=kube_env, check=True)

    say("4/6 traffic simulator following the HTTPRoute weights; Prometheus scrapes it")
    weights = demo / "profile.json"
    profile(weights, (hashes["v1"], "v1"), (hashes["v2"], "v2"))
    sim_port = free_port()
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kulta.adapters.trafficsim",
            "--port",
            str(sim_port),
            "--weights-file",
            str(weights),
            "--kubeconfig",
            cluster.kubeconfig,
            "--namespace",
            "demo",
            "--route",
            "demo",
            "--stable-service",
            "demo-stable",
            "--canary-service",
            "demo-canary",
            "--tick",
            "0.5",
        ],
        stdout=(demo / "trafficsim.log").open("wb"),
        stderr=subprocess.STDOUT,
        env={**kube_env, "PYTHONPATH": str(ROOT)},
    )
    set_scrape_targets(cluster, [f"127.0.0.1:{sim_port}"])

    say("5/6 kulta run: the GitOps loop (events to a JSON-lines file)")
    events = demo / "events.jsonl"
    state = demo / "state"
    loop = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kulta.cli",
            "run",
            "--repo",
            f"file://{bare}",
            "--path",
            "rollouts",
            "--env",
            ENV,
            "--state-dir",
            str(state),
            "--interval",
            "2",
            "--events-file",
            str(events),
        ],
        env={**kube_env, "PYTHONPATH": str(ROOT)},
    )
    stacks = StackManager(StackSettings(state_dir=state, kubeconfig=cluster.kubeconfig))
    try:
        wait_for(stacks, lambda s: s.phase is Phase.HEALTHY and s.stable_revision == hashes["v1"], "v1 deployed")
        say("commit v2: a good canary, walked through every step")
        write_version(work, "v2", cluster.prometheus_url)
        commit(work, "demo v2")
        wait_for(stacks, lambda s: s.phase is Phase.HEALTHY and s.stable_revision == hashes["v2"], "v2 promoted")
        say("commit v3: a bad canary (20% errors) — analysis rolls it back")
        profile(weights, (hashes["v2"], "v2"), (hashes["v3"], "v3"))
        write_version(work, "v3", cluster.prometheus_url)
        commit(work, "demo v3 (bad)")
        wait_for(stacks, lambda s: s.phase is Phase.ABORTED and s.canary_revision == hashes["v3"], "v3 aborted")
        time.sleep(3)  # let the loop deliver the last events
    finally:
        loop.send_signal(signal.SIGTERM)
        loop.wait(timeout=120)
        sim.terminate()
        sim.wait(timeout=10)

    say("6/6 what happened")
    cli = [sys.executable, "-m", "kulta.cli"]
    common = ["--env", ENV, "--state-dir", str(state)]
    env = {**kube_env, "PYTHONPATH": str(ROOT)}
    print(run(*cli, "status", *common, env=env))
    print(run(*cli, "status", "demo/demo", "--file", str(work / "rollouts" / "demo.yaml"), *common, env=env))
    print(run(*cli, "history", "demo/demo", *common, env=env))
    print("CDEvents written to", events)
    for line in events.read_text().splitlines():
        ev = json.loads(line)
        data = ev.get("data", ev)
        print(f"  {data['context']['timestamp']}  {data['context']['type']}")
    print(
        f"\nThe cluster keeps running: export KUBECONFIG={cluster.kubeconfig}; stop it with "
        f"`python -m kulta.cli dev down --name {CLUSTER}`."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
