"""Real processes for analysis tests: our own Prometheus and the traffic simulator.

Each Prometheus gets a free port on 127.0.0.1, a temporary TSDB directory and a
generated config scraping the given targets every second; ``start`` returns
once ``/-/ready`` answers 200 and ``stop`` always reaps the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from kulta.devcluster import free_port

PROMETHEUS_BINARY = "/usr/bin/prometheus"
LOOPBACK = "127.0.0.1"


def wait_until(check: object, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``check()`` until it returns true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)


@dataclass
class PromServer:
    """A running Prometheus; ``url`` is its base address."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def query(self, promql: str) -> list[float]:
        """The values of an instant vector query ([] when empty or on any failure)."""
        try:
            doc = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return []
        if doc.get("status") != "success" or doc["data"]["resultType"] != "vector":
            return []
        return [float(s["value"][1]) for s in doc["data"]["result"]]

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crashed Prometheus would."""
        self.process.kill()
        self.process.wait(timeout=10)


def _config(targets: Sequence[str], scrape_interval: str) -> str:
    # JSON is valid YAML: no YAML writer needed
    return json.dumps(
        {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {
                    "job_name": "trafficsim",
                    "scrape_interval": scrape_interval,
                    "scrape_timeout": scrape_interval,
                    "static_configs": [{"targets": list(targets)}],
                }
            ],
        },
        indent=2,
    )


@contextmanager
def running_prometheus(
    targets: Sequence[str], workdir: Path, *, scrape_interval: str = "1s", timeout: float = 30.0
) -> Iterator[PromServer]:
    """Start Prometheus scraping ``targets`` (``host:port``); stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(_config(targets, scrape_interval))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS_BINARY,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    server = PromServer(port=port, workdir=workdir, process=process)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited with {process.returncode}:\n{server.log_tail()}")
            try:
                return httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, f"prometheus on port {port} to be ready")
        yield server
    finally:
        _stop(process)
        log.close()


@dataclass
class TrafficSim:
    """The ``kulta.adapters.trafficsim`` process and the weights file it follows."""

    port: int
    weights_file: Path
    process: subprocess.Popen[bytes]

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def set_weights(self, backends: Mapping[str, Mapping[str, object]]) -> None:
        """Rewrite the weights file atomically (the simulator re-reads it every tick)."""
        tmp = self.weights_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(backends))
        os.replace(tmp, self.weights_file)


@contextmanager
def running_trafficsim(
    workdir: Path, backends: Mapping[str, Mapping[str, object]], *, rate: float = 100.0
) -> Iterator[TrafficSim]:
    """Start ``python -m kulta.adapters.trafficsim`` on a free port; stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    sim = TrafficSim(port=port, weights_file=workdir / "weights.json", process=None)  # type: ignore[arg-type]
    sim.set_weights(backends)
    log = (workdir / "trafficsim.log").open("wb")
    repo_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo_root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    sim.process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kulta.adapters.trafficsim",
            "--port",
            str(port),
            "--weights-file",
            str(sim.weights_file),
            "--rate",
            str(rate),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=repo_root,
    )
    try:

        def serving() -> bool:
            if sim.process.poll() is not None:
                text = (workdir / "trafficsim.log").read_text(errors="replace")
                raise AssertionError(f"trafficsim exited with {sim.process.returncode}:\n{text}")
            try:
                return httpx.get(f"http://{sim.target}/metrics", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(serving, 20, f"trafficsim on port {port}")
        yield sim
    finally:
        _stop(sim.process)
        log.close()
