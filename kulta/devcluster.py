"""A local cluster for development and tests: real control plane, fake nodes, Prometheus.

``kulta dev up`` starts, on loopback only: etcd, kube-apiserver (enforcing
RBAC), kube-controller-manager and kube-scheduler (through kwokctl's binary
runtime, with the toolchain's binaries, so nothing is downloaded), kwok faking two
nodes so ReplicaSets get Pods that become Ready, the Gateway API CRDs with a
demo GatewayClass and Gateway, and a Prometheus of our own (not the system
service) whose scrape targets are a file the caller may rewrite. It writes
everything under one state directory, records what it started, and is safe to
run twice; ``kulta dev down`` stops only what it started.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import yaml

from kulta.errors import ConfigError, TemporaryError

__all__ = ["DevCluster", "cluster_down", "cluster_up", "default_state_dir", "free_port", "set_scrape_targets"]

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
NODE_COUNT = 2
GATEWAY_CLASS = "kulta-demo"
DEMO_GATEWAY = "demo-gateway"
DEMO_NAMESPACE = "demo"
READY_TIMEOUT_SECONDS = 180.0


def default_state_dir(name: str) -> Path:
    base = Path(os.environ.get("KULTA_CACHE_DIR", Path.home() / ".cache" / "kulta"))
    return base / "dev" / name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class DevCluster:
    name: str
    state_dir: str
    kubeconfig: str
    apiserver_port: int
    prometheus_port: int
    prometheus_pid: int
    targets_file: str

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"


def _tool(name: str) -> str:
    toolchain = os.environ.get("KULTA_TOOLCHAIN_DIR")
    if toolchain and (Path(toolchain) / "bin" / name).exists():
        return str(Path(toolchain) / "bin" / name)
    found = shutil.which(name)
    if not found:
        raise ConfigError(f"{name} not found: run dev/toolchain (or put {name} on PATH)")
    return found


def _run(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 300.0) -> str:
    log.debug("run", extra={"cmd": " ".join(args)})
    proc = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise TemporaryError(f"{' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _kwok_env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(state / "kwok")
    env["KWOK_RUNTIME"] = "binary"
    return env


def _kubectl(cluster: DevCluster, *args: str, stdin: str | None = None) -> str:
    cmd = [_tool("kubectl"), "--kubeconfig", cluster.kubeconfig, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=120, check=False)
    if proc.returncode != 0:
        raise TemporaryError(f"kubectl {' '.join(args[:2])} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _load(state: Path) -> DevCluster | None:
    f = state / STATE_FILE
    if not f.exists():
        return None
    return DevCluster(**json.loads(f.read_text()))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _apiserver_ready(kubeconfig: str) -> bool:
    proc = subprocess.run(
        [_tool("kubectl"), "--kubeconfig", kubeconfig, "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.returncode == 0 and proc.stdout.strip() == "ok"


def _log_progress(msg: str) -> None:
    log.info(msg)


def _create_kwok_cluster(name: str, state: Path, port: int) -> str:
    env = _kwok_env(state)
    args = [
        _tool("kwokctl"),
        "create",
        "cluster",
        "--name",
        name,
        "--runtime",
        "binary",
        "--kube-apiserver-port",
        str(port),
        "--etcd-binary",
        _tool("etcd"),
        "--kube-apiserver-binary",
        _tool("kube-apiserver"),
        "--kube-controller-manager-binary",
        _tool("kube-controller-manager"),
        "--kube-scheduler-binary",
        _tool("kube-scheduler"),
        "--kwok-controller-binary",
        _tool("kwok"),
        # kube-apiserver --authorization-mode=Node,RBAC (kwokctl's default, said
        # explicitly): deploy/'s RBAC is tested against it, and an AlwaysAllow
        # server would answer yes to every `kubectl auth can-i`; the admin
        # kubeconfig is system:masters, so nothing else is affected
        "--kube-authorization=true",
        "--wait",
        "3m",
    ]
    _run(args, env=env, timeout=600)
    kubeconfig = state / "kubeconfig.yaml"
    kubeconfig.write_text(_run([_tool("kwokctl"), "get", "kubeconfig", "--name", name], env=env))
    return str(kubeconfig)


def _nodes_yaml() -> str:
    docs = []
    for i in range(NODE_COUNT):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"kwok-node-{i}",
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-node-{i}"},
                },
                "status": {
                    # fake nodes: room for many test runs' Pods on a long-lived dev cluster
                    "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "2000"},
                    "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "2000"},
                },
            }
        )
    # YAML, not JSON documents joined by "---": some kubectl versions read a
    # stream that starts with "{" as JSON and stop at the separator
    return yaml.safe_dump_all(docs)


def _gateway_yaml() -> str:
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_NAMESPACE}},
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": "kulta.io/demo-gateway-controller"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": DEMO_GATEWAY, "namespace": DEMO_NAMESPACE},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}
                ],
            },
        },
    ]
    return yaml.safe_dump_all(objs)


_PORT_TAKEN = "address already in use"
#: a free port can be taken by another process between free_port() and the bind
_PORT_ATTEMPTS = 3


class _PortTakenError(TemporaryError):
    """The port picked for a server was bound by another process before the server started."""


def _start_prometheus_on_a_free_port(state: Path) -> tuple[int, int, str]:
    """Prometheus on a free port: (port, pid, targets file), another port if one is taken meanwhile."""
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_port()
        try:
            pid, targets = _start_prometheus(state, port)
        except _PortTakenError:
            if attempt == _PORT_ATTEMPTS:
                raise
            continue
        return port, pid, targets
    raise AssertionError("unreachable")


def _start_prometheus(state: Path, port: int) -> tuple[int, str]:
    prom_dir = state / "prometheus"
    (prom_dir / "data").mkdir(parents=True, exist_ok=True)
    targets = prom_dir / "targets.json"
    if not targets.exists():
        targets.write_text("[]")
    config = prom_dir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: kulta\n    file_sd_configs:\n"
        f"      - files: ['{targets}']\n        refresh_interval: 1s\n"
    )
    logf = (prom_dir / "prometheus.log").open("ab")
    proc = subprocess.Popen(
        [
            _tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={prom_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=2h",
        ],
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200:
                return proc.pid, str(targets)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            log_path = prom_dir / "prometheus.log"
            if _PORT_TAKEN in log_path.read_text(errors="replace")[-2000:]:
                raise _PortTakenError(f"prometheus: 127.0.0.1:{port} was taken meanwhile")
            raise TemporaryError(f"prometheus exited early; see {log_path}")
        time.sleep(0.5)
    raise TemporaryError("prometheus did not become ready within 60s")


def set_scrape_targets(cluster: DevCluster, targets: Sequence[str]) -> None:
    """Point the cluster's Prometheus at ``host:port`` targets (picked up within a second)."""
    tmp = Path(cluster.targets_file + ".tmp")
    tmp.write_text(json.dumps([{"targets": list(targets), "labels": {}}]))
    tmp.replace(cluster.targets_file)


def cluster_up(
    name: str = "kulta-dev",
    state_dir: Path | None = None,
    with_prometheus: bool = True,
    progress: Callable[[str], None] = _log_progress,
) -> DevCluster:
    """Start (or find running) the local cluster ``name``; return how to reach it.

    ``progress`` receives one line per stage (the CLI prints them).
    """
    _progress = progress
    state = state_dir or default_state_dir(name)
    state.mkdir(parents=True, exist_ok=True)
    existing = _load(state)
    if existing and Path(existing.kubeconfig).exists() and _apiserver_ready(existing.kubeconfig):
        if with_prometheus and not _pid_alive(existing.prometheus_pid):
            pid, targets = _start_prometheus(state, existing.prometheus_port)
            existing = DevCluster(**{**asdict(existing), "prometheus_pid": pid, "targets_file": targets})
            (state / STATE_FILE).write_text(json.dumps(asdict(existing)))
        _progress(f"cluster {name} already running (kubeconfig {existing.kubeconfig})")
        return existing
    if existing:
        cluster_down(name, state)
    start = time.monotonic()
    port = free_port()
    _progress(f"[1/4] starting control plane {name} on 127.0.0.1:{port} (etcd, kube-apiserver, controllers, kwok)")
    kubeconfig = _create_kwok_cluster(name, state, port)
    cluster = DevCluster(
        name=name,
        state_dir=str(state),
        kubeconfig=kubeconfig,
        apiserver_port=port,
        prometheus_port=0,
        prometheus_pid=0,
        targets_file="",
    )
    (state / STATE_FILE).write_text(json.dumps(asdict(cluster)))
    _progress(f"[2/4] adding {NODE_COUNT} kwok nodes")
    _kubectl(cluster, "apply", "-f", "-", stdin=_nodes_yaml())
    _progress("[3/4] applying Gateway API CRDs and a demo Gateway")
    crds = os.environ.get("KULTA_GATEWAY_API_CRDS") or str(Path(_tool("kubectl")).parent.parent / "gateway-api")
    if not Path(crds).is_dir():
        raise ConfigError(f"Gateway API CRDs not found at {crds}: run dev/toolchain gateway-api")
    _kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", crds)
    _kubectl(
        cluster, "wait", "--for=condition=Established", "--timeout=60s", "crd/httproutes.gateway.networking.k8s.io"
    )
    _kubectl(cluster, "apply", "--server-side", "-f", "-", stdin=_gateway_yaml())
    if with_prometheus:
        _progress("[4/4] starting Prometheus")
        prom_port, pid, targets = _start_prometheus_on_a_free_port(state)
        _progress(f"Prometheus on 127.0.0.1:{prom_port}")
        cluster = DevCluster(
            **{**asdict(cluster), "prometheus_port": prom_port, "prometheus_pid": pid, "targets_file": targets}
        )
        (state / STATE_FILE).write_text(json.dumps(asdict(cluster)))
    _progress(f"cluster {name} ready in {time.monotonic() - start:.1f}s; KUBECONFIG={kubeconfig}")
    return cluster


def cluster_down(name: str = "kulta-dev", state_dir: Path | None = None) -> bool:
    """Stop what ``cluster_up`` started for ``name``; True if anything was running."""
    state = state_dir or default_state_dir(name)
    cluster = _load(state)
    if cluster is None:
        return False
    if _pid_alive(cluster.prometheus_pid):
        os.killpg(cluster.prometheus_pid, signal.SIGTERM)
    env = _kwok_env(state)
    proc = subprocess.run(
        [_tool("kwokctl"), "delete", "cluster", "--name", name],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        log.warning("kwokctl delete failed", extra={"stderr": proc.stderr.strip()[-500:]})
    (state / STATE_FILE).unlink(missing_ok=True)
    return True
