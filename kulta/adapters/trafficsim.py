"""A synthetic traffic source for testing analysis against a real Prometheus.

Canary analysis is only believable when tested against the real query engine:
``rate()`` windows, scrape timing, counters that start mid-window. This small
process exports ``http_requests_total{revision, code}`` as if a service were
taking ``--rate`` requests per second, split between revisions by weights it
reads every tick from a pluggable ``WeightSource``:

* ``FileWeightSource``: a JSON file a test rewrites at will::

      {"stable": {"hash": "aaa", "weight": 80, "errorRate": 0.0},
       "canary": {"hash": "bbb", "weight": 20, "errorRate": 0.2}}

* ``KubernetesWeightSource``: the ``backendRefs`` weights of a named Gateway API
  ``HTTPRoute`` (so cluster tests see KULTA's own weight changes), with the
  hashes and error rates still taken from a file.

No real request is sent: counts are added arithmetically (fractional increments
keep ratios exact). ``trafficsim_backend_weight{role, revision}`` exports the
weights in use so tests can check what the simulator saw.

Run it with ``python -m kulta.adapters.trafficsim --port 9101 --weights-file w.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from kulta.core.constants import GATEWAY_API_VERSION, HTTPROUTE_PLURAL
from kulta.errors import ConfigError

__all__ = [
    "CODE_ERROR",
    "CODE_OK",
    "REQUESTS_METRIC",
    "WEIGHT_METRIC",
    "Backend",
    "FileWeightSource",
    "KubernetesWeightSource",
    "TrafficSimulator",
    "WeightSource",
    "backends_from_document",
    "main",
    "weights_from_route",
]

log = logging.getLogger(__name__)

REQUESTS_METRIC = "http_requests_total"
WEIGHT_METRIC = "trafficsim_backend_weight"
LABEL_REVISION = "revision"
LABEL_CODE = "code"
LABEL_ROLE = "role"
CODE_OK = "200"
CODE_ERROR = "500"
DEFAULT_RATE = 100.0
DEFAULT_TICK_SECONDS = 0.1
ROUTE_GROUP, ROUTE_VERSION = GATEWAY_API_VERSION.split("/")
SERVICE_KIND = "Service"


@dataclass(frozen=True)
class Backend:
    """One revision taking a share of the traffic."""

    role: str
    revision: str
    weight: int
    error_rate: float = 0.0


class WeightSource(Protocol):
    """Where the simulator learns the current split; called every tick."""

    def backends(self) -> tuple[Backend, ...]: ...


def backends_from_document(document: object, origin: str) -> tuple[Backend, ...]:
    """Backends from the JSON document described in the module docstring."""
    if not isinstance(document, dict) or not document:
        raise ConfigError(f"{origin}: expected an object of roles, e.g. {{'stable': {{...}}, 'canary': {{...}}}}")
    result: list[Backend] = []
    for role, spec in document.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{origin}: {role} must be an object with hash, weight and errorRate")
        revision = spec.get("hash")
        weight = spec.get("weight", 0)
        error_rate = spec.get("errorRate", 0.0)
        if not isinstance(revision, str) or not revision:
            raise ConfigError(f"{origin}: {role}.hash must be a non-empty string")
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise ConfigError(f"{origin}: {role}.weight must be a whole number >= 0, got {weight!r}")
        if isinstance(error_rate, bool) or not isinstance(error_rate, int | float) or not 0 <= error_rate <= 1:
            raise ConfigError(f"{origin}: {role}.errorRate must be between 0 and 1, got {error_rate!r}")
        result.append(Backend(role=str(role), revision=revision, weight=weight, error_rate=float(error_rate)))
    return tuple(result)


class FileWeightSource:
    """Reads the JSON weights file on every call (tests rewrite it atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def backends(self) -> tuple[Backend, ...]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{self.path}: cannot read the weights file: {err}") from None
        return backends_from_document(document, str(self.path))


def weights_from_route(route: Mapping[str, Any], services: Mapping[str, str]) -> dict[str, int]:
    """Weight per role from an HTTPRoute object: ``services`` maps role -> Service name.

    Weights of the same Service are summed over all rules; a backendRef without
    ``weight`` weighs 1 (the Gateway API default); a role whose Service is not
    referenced weighs 0.
    """
    by_service: dict[str, int] = {}
    rules = route.get("spec", {}).get("rules", []) or []
    for rule in rules:
        for ref in rule.get("backendRefs", []) or []:
            if ref.get("kind", SERVICE_KIND) != SERVICE_KIND or ref.get("group", "") not in ("", "core"):
                continue
            name = str(ref.get("name", ""))
            by_service[name] = by_service.get(name, 0) + int(ref.get("weight", 1))
    return {role: by_service.get(service, 0) for role, service in services.items()}


class KubernetesWeightSource:
    """Weights from an HTTPRoute's backendRefs; hashes and error rates from ``profile``."""

    def __init__(
        self,
        *,
        kubeconfig: str,
        namespace: str,
        route: str,
        services: Mapping[str, str],
        profile: WeightSource,
    ) -> None:
        self._api = client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig))  # type: ignore[no-untyped-call]
        self.namespace = namespace
        self.route = route
        self.services = dict(services)
        self.profile = profile

    def backends(self) -> tuple[Backend, ...]:
        try:
            route = self._api.get_namespaced_custom_object(
                ROUTE_GROUP, ROUTE_VERSION, self.namespace, HTTPROUTE_PLURAL, self.route
            )
        except ApiException as err:
            raise ConfigError(
                f"cannot read HTTPRoute {self.namespace}/{self.route}: {err.status} {err.reason}"
            ) from None
        if not isinstance(route, dict):
            raise ConfigError(f"HTTPRoute {self.namespace}/{self.route}: unexpected answer {type(route).__name__}")
        weights = weights_from_route(route, self.services)
        return tuple(replace(b, weight=weights.get(b.role, 0)) for b in self.profile.backends())


class TrafficSimulator:
    """Adds synthetic request counts to its registry according to a WeightSource."""

    def __init__(
        self, source: WeightSource, *, rate: float = DEFAULT_RATE, registry: CollectorRegistry | None = None
    ) -> None:
        self.source = source
        self.rate = rate
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            REQUESTS_METRIC,
            "Synthetic requests by revision and status code",
            [LABEL_REVISION, LABEL_CODE],
            registry=self.registry,
        )
        self.weights = Gauge(
            WEIGHT_METRIC,
            "Weight the simulator applies per backend",
            [LABEL_ROLE, LABEL_REVISION],
            registry=self.registry,
        )
        self._current: tuple[Backend, ...] = ()

    def tick(self, seconds: float) -> None:
        """Account ``seconds`` of traffic with the source's current split.

        When the source cannot be read the previous split is kept (and logged):
        a test rewriting the file must not make the traffic stop.
        """
        try:
            backends = self.source.backends()
        except ConfigError as err:
            log.warning("keeping the previous weights: %s", err)
            backends = self._current
        if backends != self._current:
            log.info("weights now %s", ", ".join(f"{b.role}={b.revision}:{b.weight}" for b in backends))
            self._publish_weights(backends)
        total = sum(b.weight for b in backends)
        if total <= 0:
            return
        for b in backends:
            requests = self.rate * seconds * b.weight / total
            errors = requests * b.error_rate
            self.requests.labels(b.revision, CODE_ERROR).inc(errors)
            self.requests.labels(b.revision, CODE_OK).inc(requests - errors)

    def _publish_weights(self, backends: Sequence[Backend]) -> None:
        for old in self._current:
            self.weights.remove(old.role, old.revision)
        for b in backends:
            self.weights.labels(b.role, b.revision).set(b.weight)
            # both series exist from the start, so error ratios are 0, not "no data"
            self.requests.labels(b.revision, CODE_ERROR).inc(0)
            self.requests.labels(b.revision, CODE_OK).inc(0)
        self._current = tuple(backends)

    def run(self, stop: threading.Event, tick_seconds: float = DEFAULT_TICK_SECONDS) -> None:
        """Tick until ``stop`` is set, using the real elapsed time between ticks."""
        last = time.monotonic()
        self.tick(0.0)
        while not stop.wait(tick_seconds):
            now = time.monotonic()
            self.tick(now - last)
            last = now


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kulta.adapters.trafficsim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="port of the /metrics endpoint")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--weights-file", type=Path, required=True, help="JSON file with hash, weight and errorRate per role"
    )
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="synthetic requests per second (default 100)")
    parser.add_argument("--tick", type=float, default=DEFAULT_TICK_SECONDS, help="seconds between updates")
    parser.add_argument("--kubeconfig", help="read weights from an HTTPRoute through this kubeconfig")
    parser.add_argument("--namespace", default="default", help="the HTTPRoute's namespace")
    parser.add_argument("--route", help="the HTTPRoute's name")
    parser.add_argument("--stable-service", help="Service name of the stable backend in the route")
    parser.add_argument("--canary-service", help="Service name of the canary backend in the route")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve /metrics and simulate traffic until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parse_args(argv)
    source: WeightSource = FileWeightSource(args.weights_file)
    if args.kubeconfig:
        if not (args.route and args.stable_service and args.canary_service):
            raise ConfigError("--kubeconfig needs --route, --stable-service and --canary-service")
        source = KubernetesWeightSource(
            kubeconfig=args.kubeconfig,
            namespace=args.namespace,
            route=args.route,
            services={"stable": args.stable_service, "canary": args.canary_service},
            profile=source,
        )
    sim = TrafficSimulator(source, rate=args.rate)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server, thread = start_http_server(args.port, addr=args.host, registry=sim.registry)
    log.info("serving http://%s:%d/metrics at %.0f requests/s", args.host, args.port, args.rate)
    try:
        sim.run(stop, args.tick)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
