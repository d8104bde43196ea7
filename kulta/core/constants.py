"""Names KULTA writes into Kubernetes and Pulumi: one place, so they never drift.

The pod-template-hash label keeps Argo Rollouts' name so dashboards and
selectors written for Argo keep working after a migration.
"""

from __future__ import annotations

from kulta.model.rollout import RouteKind

__all__ = [
    "ANNOTATION_PATCH_FIELD_MANAGER",
    "ANNOTATION_PATCH_FORCE",
    "ANNOTATION_SKIP_AWAIT",
    "ANNOTATION_WAIT_FOR",
    "CONFIG_CLUSTER",
    "CONFIG_ENVIRONMENT",
    "CONFIG_NAMESPACE",
    "CONFIG_ROLLOUT",
    "CONFIG_STEP",
    "FIELD_MANAGER",
    "GATEWAY_API_VERSION",
    "GRPCROUTE_KIND",
    "GRPCROUTE_PLURAL",
    "HTTPROUTE_KIND",
    "HTTPROUTE_PLURAL",
    "LABEL_CANARY_IN_FLIGHT",
    "LABEL_MANAGED_BY",
    "LABEL_POD_TEMPLATE_HASH",
    "LABEL_ROLLOUT",
    "MANAGED_BY_VALUE",
    "OUTPUT_PENDING_EVENTS",
    "OUTPUT_UPDATE_MESSAGE",
    "PULUMI_PROJECT",
    "TAG_COMMAND",
    "TAG_EVENTS_ACKED",
]

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kulta"
LABEL_ROLLOUT = "kulta.io/rollout"
LABEL_POD_TEMPLATE_HASH = "rollouts-pod-template-hash"
#: on an HTTPRoute while a canary is in flight (for Argo CD / Flux ignoreDifferences)
LABEL_CANARY_IN_FLIGHT = "kulta.io/canary-in-flight"

FIELD_MANAGER = "kulta"
ANNOTATION_PATCH_FIELD_MANAGER = "pulumi.com/patchFieldManager"
ANNOTATION_PATCH_FORCE = "pulumi.com/patchForce"
ANNOTATION_WAIT_FOR = "pulumi.com/waitFor"
ANNOTATION_SKIP_AWAIT = "pulumi.com/skipAwait"

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
HTTPROUTE_KIND = RouteKind.HTTP.value
HTTPROUTE_PLURAL = "httproutes"
GRPCROUTE_KIND = RouteKind.GRPC.value
GRPCROUTE_PLURAL = "grpcroutes"

PULUMI_PROJECT = "kulta"
#: stack config read by the repository's Pulumi program (``kulta:<key>``)
CONFIG_NAMESPACE = "kulta"
CONFIG_ROLLOUT = "rollout"
CONFIG_STEP = "step"
CONFIG_ENVIRONMENT = "environment"
CONFIG_CLUSTER = "cluster"
#: manual commands travel as a stack tag: tags are stored in the backend itself
#: (config files are local to a workspace), so any machine reaching it can send one
TAG_COMMAND = "kulta-command"
#: the CI path (``pulumi up``) keeps the CDEvents of its updates in this output
#: until ``kulta events`` has delivered them and set this tag to the last id sent
OUTPUT_PENDING_EVENTS = "pendingEvents"
#: the message of the update that recorded the outputs (found again in the stack's history)
OUTPUT_UPDATE_MESSAGE = "updateMessage"
TAG_EVENTS_ACKED = "kulta-events-acked"
