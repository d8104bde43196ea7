"""Run the rollout program from stack config, for ``pulumi preview``/``pulumi up`` in CI.

The reconciler runs ``kulta.adapters.program.deploy`` inline; this module
feeds the very same function when the Pulumi CLI runs the repository's
``__main__.py``, after the very same observation and decision as ``kulta run``:

- config ``kulta:rollout`` (comma-separated files or directories, relative to the
  project; the Rollout whose namespace and name match the stack name
  ``<env>.<namespace>.<rollout>`` is used), optionally ``kulta:step``,
  ``kulta:environment`` and ``kulta:cluster``;
- the rollout's last status from the stack's own outputs, the manual command from
  the stack tag ``kulta-command`` (``kulta promote|abort|retry`` write it);
- analysis measurements that are due are taken now (Prometheus, web), recorded in
  the outputs and counted by the same rules; a ``pulumi up`` between two
  measurements records nothing new and moves nothing;
- the update's CDEvents are added to the output ``pendingEvents`` for
  ``kulta events`` to deliver (``kulta.core.pending_events``).

Without ``kulta:step`` the program makes the reconciler's next decision (one per
``pulumi up``); with it, that step of the current canary (``len(steps)`` =
promotion; no measurement, no command).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pulumi
from pulumi import automation as auto

from kulta.adapters.kube import KubeReader
from kulta.adapters.metric_providers import ProviderDispatcher
from kulta.adapters.program import deploy
from kulta.adapters.stacks import build_stack_manager
from kulta.app.reconciler import Reconciler, ReconcilerConfig, command_from_tag, records_nothing
from kulta.core.constants import (
    CONFIG_CLUSTER,
    CONFIG_ENVIRONMENT,
    CONFIG_NAMESPACE,
    CONFIG_ROLLOUT,
    CONFIG_STEP,
    OUTPUT_PENDING_EVENTS,
    TAG_COMMAND,
    TAG_EVENTS_ACKED,
)
from kulta.core.events import build_events, chain_id_for, record_events
from kulta.core.pending_events import carry_pending
from kulta.core.reconcile import decide, decide_step
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.errors import ConfigError
from kulta.model.rollout import Rollout
from kulta.model.status import RolloutStatus
from kulta.spec.loader import LoadResult, load_paths

__all__ = ["run_from_config"]

log = logging.getLogger(__name__)


def _stack_state(stack: str) -> tuple[dict[str, object], dict[str, str]]:
    """The stack's last outputs and its tags, read with the CLI in the project
    directory (the backend the running ``pulumi`` uses; reads need no lock)."""
    ws = auto.LocalWorkspace(work_dir=os.getcwd())
    try:
        outputs = {k: v.value for k, v in ws.stack_outputs(stack).items()}
        tags = {str(k): str(v) for k, v in ws.list_tags(stack).items()}
    except auto.errors.CommandError as exc:
        raise ConfigError(f"cannot read the outputs and tags of stack {stack}: {exc}") from exc
    return outputs, tags


def _the_rollout(paths: list[Path], loaded: LoadResult, stack_parts: list[str]) -> Rollout:
    rollouts = list(loaded.rollouts)
    if len(rollouts) > 1 and len(stack_parts) == 3:
        rollouts = [r for r in rollouts if (r.namespace, r.name) == (stack_parts[1], stack_parts[2])]
    if len(rollouts) != 1:
        raise ConfigError(
            f"kulta:rollout ({', '.join(map(str, paths))}) must hold exactly one Rollout, or one whose "
            f"namespace and name match the stack name <env>.<namespace>.<rollout>; found {len(rollouts)}"
        )
    return rollouts[0]


def run_from_config() -> None:
    cfg = pulumi.Config(CONFIG_NAMESPACE)
    paths = [Path(p.strip()) for p in cfg.require(CONFIG_ROLLOUT).split(",") if p.strip()]
    step = cfg.get_int(CONFIG_STEP)
    stack = pulumi.get_stack()
    stack_parts = stack.split(".")
    environment = cfg.get(CONFIG_ENVIRONMENT) or stack_parts[0]
    loaded = load_paths(paths)
    if loaded.errors:
        raise ConfigError("\n".join(str(e) for e in loaded.errors))
    rollout = _the_rollout(paths, loaded, stack_parts)
    template = resolve_template(rollout, loaded.others)
    revision = pod_template_hash(template)
    outputs, tags = _stack_state(stack)
    prev = RolloutStatus.from_outputs(outputs) if outputs.get("phase") else None
    now = datetime.now(UTC).replace(microsecond=0)
    chain = chain_id_for(environment, rollout.namespace, rollout.name, revision)
    kubeconfig = os.environ.get("KUBECONFIG")
    helper = Reconciler(
        ReconcilerConfig(environment=environment, cluster=cfg.get(CONFIG_CLUSTER) or "local", kubeconfig=kubeconfig),
        build_stack_manager(Path(os.environ.get("KULTA_STATE_DIR", ".kulta")), kubeconfig),
        KubeReader(kubeconfig),
        provider=ProviderDispatcher(),
    )
    if step is None:
        observation = helper.observe(rollout, loaded, prev, revision, now, drift=False)
        decision = decide(
            rollout,
            revision,
            template,
            prev,
            now,
            environment=environment,
            chain_id=chain,
            command=command_from_tag(tags.get(TAG_COMMAND), stack),
            observation=observation,
        )
    else:
        decision = decide_step(rollout, revision, template, prev, now, step, environment=environment, chain_id=chain)
    if prev is not None and records_nothing(prev, decision):
        # as `kulta run`, which makes no update then: the outputs stay as recorded
        decision = replace(decision, status=prev)
    events = build_events(prev, decision.status, helper.event_context(prev, decision))
    status = record_events(decision.status, events)
    pending, carried = carry_pending(outputs.get(OUTPUT_PENDING_EVENTS), tags.get(TAG_EVENTS_ACKED, ""), events)
    if carried.dropped or carried.unreadable:
        log.warning(
            "pendingEvents: %d oldest dropped (nobody ran `kulta events`), %d unreadable",
            carried.dropped,
            carried.unreadable,
            extra={"stack": stack},
        )
    inputs = helper.program_inputs(rollout, loaded, decision, status, prev)
    inputs = replace(inputs, outputs={**inputs.outputs, OUTPUT_PENDING_EVENTS: pending})
    log.info(
        "deploying from stack config",
        extra={"rollout": rollout.name, "revision": revision, "step": step, "reason": decision.reason},
    )
    deploy(inputs)
