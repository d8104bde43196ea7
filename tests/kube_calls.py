"""Every Kubernetes API call KULTA makes, written down by reading the code.

The RBAC in ``deploy/`` must grant exactly these rows and nothing else: the
unit test ``tests/unit/test_deploy_rbac.py`` compares them with the manifests
and with every Kubernetes client call in ``kulta/`` (all in
``kulta/adapters/kube.py`` today) and the resources constructed in
``kulta/adapters/program.py`` (a new call or module without a row fails);
the integration test ``tests/integration/test_deploy_manifests.py`` asks the
API server (``kubectl auth can-i``) for each row as KULTA's ServiceAccount.

Sources read:
- ``kulta/adapters/kube.py``: the direct client calls (``KUBE_CLIENT_METHODS``);
- ``kulta/adapters/program.py``: the resources the Pulumi program declares;
  the calls are pulumi-kubernetes' (provider/pkg/await/await.go: ``Creation``
  is a server-side-apply PATCH, which the API server also authorizes as
  ``create`` when it creates the object; ``Read`` and ``Update`` GET the live
  object, ``Update`` PATCHes; ``Deletion`` DELETEs, then waits with an informer
  (condition/deleted.go: LIST + WATCH in the namespace, then a GET); the
  ``pulumi.com/waitFor`` await is an informer too). Services carry
  ``pulumi.com/skipAwait`` (no informer after an apply, but one after a delete);
  route patches are retained on delete (no delete call). A prune as the
  ServiceAccount without ``list`` on services hangs in that informer (seen);
- the Lease-based work sharing of ``kulta run --lease-namespace``: get, list,
  create, update on ``leases`` in KULTA's own namespace, and get on ``pods``
  there (``ReplicaPods``: is the replica that left a Pulumi lock gone).
Discovery (``/api``, ``/apis``, ``/openapi``, ``/version``) is allowed to every
authenticated user by the built-in ``system:discovery`` role.

Measured on 2026-12-01 with an API server audit log (every request of the
ServiceAccount during the walk-and-prune test of test_deploy_manifests.py):
exactly the rows above for replicasets, services, pods and httproutes, with
creates arriving as server-side-apply PATCHes answered 201 (a ServiceAccount
with patch but not create gets "cannot create resource" from such an apply);
plus ``list events`` in the rollout's namespace, answered 403: the provider's
optional observer of Warning events, not granted on purpose (the updates do not
need it and nothing is logged when it is denied).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "FORBIDDEN",
    "KUBE_CLIENT_METHODS",
    "KULTA_CALLS",
    "LEASE_CLIENT_METHODS",
    "PROGRAM_RESOURCES",
    "KubeCall",
    "Scope",
]


class Scope(enum.Enum):
    """Where a call happens: a namespace holding Rollouts, or KULTA's own namespace."""

    TARGET = "target"
    OWN = "own"


@dataclass(frozen=True)
class KubeCall:
    group: str  # "" is the core group
    resource: str
    verb: str
    scope: Scope
    why: str

    @property
    def resource_ref(self) -> str:
        """``resource.group`` as ``kubectl auth can-i`` takes it."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


_APPS, _CORE, _GATEWAY, _COORD = "apps", "", "gateway.networking.k8s.io", "coordination.k8s.io"
_PULUMI_RS = "pulumi-kubernetes ReplicaSet"
_PULUMI_SVC = "pulumi-kubernetes Service"
_PULUMI_ROUTE = "pulumi-kubernetes CustomResourcePatch"
_LEASE = "lease work sharing (--lease-namespace)"

KULTA_CALLS: tuple[KubeCall, ...] = (
    # kulta/adapters/kube.py
    KubeCall(_GATEWAY, "httproutes", "get", Scope.TARGET, "KubeReader.get_route"),
    KubeCall(_GATEWAY, "grpcroutes", "get", Scope.TARGET, "KubeReader.get_route"),
    KubeCall(_APPS, "replicasets", "get", Scope.TARGET, "KubeReader.replicaset_replicas"),
    KubeCall(_CORE, "pods", "list", Scope.TARGET, "KubeReader.sync_pod_metadata"),
    KubeCall(_CORE, "pods", "patch", Scope.TARGET, "KubeReader.sync_pod_metadata"),
    # kulta/adapters/program.py through pulumi-kubernetes
    KubeCall(_APPS, "replicasets", "create", Scope.TARGET, f"{_PULUMI_RS}: first server-side apply"),
    KubeCall(_APPS, "replicasets", "patch", Scope.TARGET, f"{_PULUMI_RS}: server-side apply"),
    KubeCall(_APPS, "replicasets", "list", Scope.TARGET, f"{_PULUMI_RS}: waitFor informer"),
    KubeCall(_APPS, "replicasets", "watch", Scope.TARGET, f"{_PULUMI_RS}: waitFor and deletion informers"),
    KubeCall(_APPS, "replicasets", "delete", Scope.TARGET, f"{_PULUMI_RS}: removed revision, replace, prune"),
    KubeCall(_CORE, "services", "get", Scope.TARGET, f"{_PULUMI_SVC}: refresh, update"),
    KubeCall(_CORE, "services", "create", Scope.TARGET, f"{_PULUMI_SVC}: first server-side apply"),
    KubeCall(_CORE, "services", "patch", Scope.TARGET, f"{_PULUMI_SVC}: server-side apply"),
    KubeCall(_CORE, "services", "list", Scope.TARGET, f"{_PULUMI_SVC}: deletion informer"),
    KubeCall(_CORE, "services", "watch", Scope.TARGET, f"{_PULUMI_SVC}: deletion informer"),
    KubeCall(_CORE, "services", "delete", Scope.TARGET, f"{_PULUMI_SVC}: prune"),
    KubeCall(_GATEWAY, "httproutes", "patch", Scope.TARGET, f"{_PULUMI_ROUTE}: server-side apply of weights"),
    KubeCall(_GATEWAY, "grpcroutes", "patch", Scope.TARGET, f"{_PULUMI_ROUTE}: server-side apply of weights"),
    # the lease code, in KULTA's own namespace only
    KubeCall(_COORD, "leases", "get", Scope.OWN, _LEASE),
    KubeCall(_COORD, "leases", "list", Scope.OWN, _LEASE),
    KubeCall(_COORD, "leases", "create", Scope.OWN, _LEASE),
    KubeCall(_COORD, "leases", "update", Scope.OWN, _LEASE),
    KubeCall(_CORE, "pods", "get", Scope.OWN, f"{_LEASE}: is a lock's replica gone (ReplicaPods)"),
)

#: each kubernetes client method kulta/adapters/kube.py calls -> (group, resource, verb)
KUBE_CLIENT_METHODS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "get_namespaced_custom_object": ((_GATEWAY, "httproutes", "get"), (_GATEWAY, "grpcroutes", "get")),
    "read_namespaced_replica_set": ((_APPS, "replicasets", "get"),),
    "list_namespaced_pod": ((_CORE, "pods", "list"),),
    "patch_namespaced_pod": ((_CORE, "pods", "patch"),),
}

#: each kubernetes client method kulta/adapters/leases.py calls -> (group, resource, verb),
#: all in KULTA's own namespace (``--lease-namespace``)
LEASE_CLIENT_METHODS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "read_namespaced_lease": ((_COORD, "leases", "get"),),
    "list_namespaced_lease": ((_COORD, "leases", "list"),),
    "create_namespaced_lease": ((_COORD, "leases", "create"),),
    "replace_namespaced_lease": ((_COORD, "leases", "update"),),
    "read_namespaced_pod": ((_CORE, "pods", "get"),),
}

#: each pulumi-kubernetes resource class kulta/adapters/program.py constructs -> the
#: resources it acts on (a CustomResourcePatch acts on every route kind KULTA weights)
PROGRAM_RESOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "apps.v1.ReplicaSet": ((_APPS, "replicasets"),),
    "core.v1.Service": ((_CORE, "services"),),
    "apiextensions.CustomResourcePatch": ((_GATEWAY, "httproutes"), (_GATEWAY, "grpcroutes")),
}

#: calls KULTA never makes and must not be able to make: (group, resource, verb, scope);
#: Scope.TARGET rows are also checked in kube-system, where KULTA has no binding
FORBIDDEN: tuple[tuple[str, str, str, Scope], ...] = (
    (_CORE, "secrets", "get", Scope.TARGET),
    (_CORE, "secrets", "list", Scope.OWN),
    (_CORE, "pods", "delete", Scope.TARGET),
    (_CORE, "pods", "create", Scope.TARGET),
    (_APPS, "deployments", "delete", Scope.TARGET),
    (_APPS, "deployments", "patch", Scope.TARGET),
    (_APPS, "replicasets", "update", Scope.TARGET),
    (_CORE, "services", "update", Scope.TARGET),
    (_GATEWAY, "httproutes", "create", Scope.TARGET),
    (_GATEWAY, "httproutes", "delete", Scope.TARGET),
    (_GATEWAY, "gateways", "patch", Scope.TARGET),
    (_COORD, "leases", "delete", Scope.OWN),
    (_COORD, "leases", "patch", Scope.OWN),
    (_COORD, "leases", "get", Scope.TARGET),
    (_APPS, "replicasets", "create", Scope.OWN),
    ("rbac.authorization.k8s.io", "rolebindings", "create", Scope.OWN),
)
