"""Reads from the Kubernetes API that the Pulumi program and the reconciler need.

Writes go through Pulumi (every change is an update with a diff and history);
this module reads the live HTTPRoute / GRPCRoute rules (``spec.rules`` is atomic, so the
program must start from them), whether Gateway parents accepted the current
generation, and live ReplicaSet replicas for drift detection. Its one write is
Argo's ephemeral pod metadata (``canaryMetadata`` / ``stableMetadata``) on
running pods, which are not Pulumi resources: new pods get the same labels
from their ReplicaSet's template, which Pulumi declares. API errors are
translated to KULTA's error tree here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kulta.adapters.token_file import TokenFileRefresher, token_file_of
from kulta.core.constants import GATEWAY_API_VERSION, GRPCROUTE_PLURAL, HTTPROUTE_PLURAL
from kulta.errors import ConfigError, Dependency, DependencyError
from kulta.model.rollout import PodMetadata, RouteKind

__all__ = ["KubeReader", "RouteAcceptance", "call_api", "new_api_client"]

log = logging.getLogger(__name__)

NOT_FOUND = 404
#: seconds to connect and to read one answer: an API server that does not answer
#: must fail the pass quickly (it is retried), never hang a worker
REQUEST_TIMEOUT = (5.0, 30.0)

_T = TypeVar("_T")

#: the resource plural of each route kind KULTA weights
_ROUTE_PLURALS = {RouteKind.HTTP: HTTPROUTE_PLURAL, RouteKind.GRPC: GRPCROUTE_PLURAL}


def _call(what: str, call: Callable[[], _T], *, missing: Callable[[], _T] | None = None) -> _T:
    """Run one API call; every failure becomes KULTA's error (404 → ``missing()`` when given)."""
    try:
        return call()
    except ApiException as exc:
        if exc.status == NOT_FOUND and missing is not None:
            return missing()
        raise DependencyError(Dependency.KUBERNETES, f"{what}: {exc.status} {exc.reason}") from exc
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        # connection refused, timeouts, TLS and protocol errors, undecodable answers
        raise DependencyError(Dependency.KUBERNETES, f"{what}: {type(exc).__name__}: {exc}") from exc


#: the same translation for the other adapters that call the API server (``leases``)
call_api = _call


def new_api_client(kubeconfig: str | None) -> client.ApiClient:
    """An API client for ``kubeconfig`` (the default one when None); a bad file is a ConfigError.

    A user with a ``tokenFile`` (a pod's ServiceAccount token) gets the token read
    again whenever the file is rotated (``kulta.adapters.token_file``).
    """
    try:
        api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as exc:
        raise ConfigError(f"cannot load kubeconfig {kubeconfig or '(default)'}: {exc}") from exc
    token_file = token_file_of(kubeconfig)
    if token_file is not None:
        api.configuration.refresh_api_key_hook = TokenFileRefresher(token_file)
    return api


@dataclass(frozen=True)
class RouteAcceptance:
    """Whether every Gateway parent reports the route Accepted at its current generation."""

    has_parent_status: bool
    accepted: bool
    detail: str


class KubeReader:
    def __init__(self, kubeconfig: str | None = None) -> None:
        self._kubeconfig = kubeconfig
        api_client = new_api_client(kubeconfig)
        self._custom = client.CustomObjectsApi(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)

    def get_route(self, namespace: str, name: str, kind: RouteKind = RouteKind.HTTP) -> dict[str, Any]:
        group, version = GATEWAY_API_VERSION.split("/")
        what = f"{kind.value} {namespace}/{name}"

        def missing() -> dict[str, Any]:
            raise ConfigError(f"{what} not found: create it (KULTA only changes its backendRef weights)")

        obj = _call(
            f"reading {what}",
            lambda: self._custom.get_namespaced_custom_object(
                group, version, namespace, _ROUTE_PLURALS[kind], name, _request_timeout=REQUEST_TIMEOUT
            ),
            missing=missing,
        )
        if not isinstance(obj, dict):
            raise DependencyError(Dependency.KUBERNETES, f"reading {what}: unexpected answer {type(obj).__name__}")
        return obj

    def route_rules(self, namespace: str, name: str, kind: RouteKind = RouteKind.HTTP) -> list[dict[str, Any]]:
        return list(self.get_route(namespace, name, kind).get("spec", {}).get("rules", []) or [])

    def route_acceptance(self, namespace: str, name: str, kind: RouteKind = RouteKind.HTTP) -> RouteAcceptance:
        route = self.get_route(namespace, name, kind)
        generation = route.get("metadata", {}).get("generation")
        parents = route.get("status", {}).get("parents", []) or []
        if not parents:
            return RouteAcceptance(False, True, "no Gateway reports status for this route; proceeding")
        pending = []
        for parent in parents:
            ref = parent.get("parentRef", {}).get("name", "?")
            ok = any(
                c.get("type") == "Accepted" and c.get("status") == "True" and c.get("observedGeneration") == generation
                for c in parent.get("conditions", []) or []
            )
            if not ok:
                pending.append(ref)
        if pending:
            return RouteAcceptance(
                True, False, f"waiting for Gateway(s) {', '.join(pending)} to accept generation {generation}"
            )
        return RouteAcceptance(True, True, f"accepted by {len(parents)} Gateway(s) at generation {generation}")

    def replicaset_replicas(self, namespace: str, names: Mapping[str, int]) -> dict[str, int | None]:
        """Live ``spec.replicas`` of the named ReplicaSets (None when missing)."""
        out: dict[str, int | None] = {}
        for name in names:
            rs = _call(
                f"reading ReplicaSet {namespace}/{name}",
                lambda name=name: self._apps.read_namespaced_replica_set(  # type: ignore[misc]
                    name, namespace, _request_timeout=REQUEST_TIMEOUT
                ),
                missing=lambda: None,
            )
            out[name] = None if rs is None else int(rs.spec.replicas or 0)
        return out

    def sync_pod_metadata(
        self, namespace: str, selector: Mapping[str, str], wanted: PodMetadata, managed: PodMetadata
    ) -> int:
        """Give the selected pods ``wanted``'s labels and annotations and drop the other
        keys of ``managed`` (both sides' metadata), as Argo's ephemeral metadata does
        when a canary becomes stable. Returns how many pods were patched."""
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = _call(
            f"listing pods {label_selector} in {namespace}",
            lambda: self._core.list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        patched = 0
        for pod in pods.items:
            meta = pod.metadata
            if meta is None or not meta.name:
                continue
            labels, annotations = dict(meta.labels or {}), dict(meta.annotations or {})
            patch_labels = _metadata_patch(labels, wanted.labels, managed.labels)
            patch_annotations = _metadata_patch(annotations, wanted.annotations, managed.annotations)
            if not patch_labels and not patch_annotations:
                continue
            body = {"metadata": {"labels": patch_labels, "annotations": patch_annotations}}
            pod_name = meta.name
            done = _call(
                f"patching pod {namespace}/{pod_name}",
                lambda pod_name=pod_name, body=body: self._core.patch_namespaced_pod(  # type: ignore[misc]
                    pod_name, namespace, body, _request_timeout=REQUEST_TIMEOUT
                ),
                missing=lambda: None,  # the pod went away meanwhile
            )
            patched += done is not None
        if patched:
            log.info("pod metadata synced", extra={"namespace": namespace, "selector": label_selector, "pods": patched})
        return patched


def _metadata_patch(
    live: Mapping[str, str], wanted: Mapping[str, str], managed: Mapping[str, str]
) -> dict[str, str | None]:
    """A JSON merge patch: set what ``wanted`` says, remove managed keys it does not name."""
    patch: dict[str, str | None] = {k: v for k, v in wanted.items() if live.get(k) != v}
    patch.update({k: None for k in managed if k not in wanted and k in live})
    return patch
