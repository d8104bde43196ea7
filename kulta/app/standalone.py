"""Run the rollout program from stack config, for ``pulumi preview``/``pulumi up`` in CI.

The reconciler runs ``kulta.adapters.program.deploy`` inline; this module
feeds the very same function when the Pulumi CLI runs the repository's
``__main__.py``. It reads ``kulta:rollout`` (comma-separated files or directories,
relative to the project; the Rollout whose namespace and name match the stack
name ``<env>.<namespace>.<rollout>`` is used) and optionally ``kulta:step``
from stack config, and the rollout's
last status from the stack's own outputs, then makes the same decision the
reconciler would: without ``kulta:step`` the next reconcile step; with it,
that step of the current canary (``len(steps)`` = promotion).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pulumi
from pulumi import automation as auto

from kulta.adapters.kube import KubeReader
from kulta.adapters.program import deploy
from kulta.adapters.stacks import build_stack_manager
from kulta.app.reconciler import Reconciler, ReconcilerConfig
from kulta.core.constants import CONFIG_ENVIRONMENT, CONFIG_NAMESPACE, CONFIG_ROLLOUT, CONFIG_STEP
from kulta.core.events import chain_id_for
from kulta.core.reconcile import decide, decide_step
from kulta.core.revision import pod_template_hash, resolve_template
from kulta.errors import ConfigError
from kulta.model.status import RolloutStatus
from kulta.spec.loader import load_paths

__all__ = ["run_from_config"]

log = logging.getLogger(__name__)


def _previous_outputs(stack: str) -> dict[str, object]:
    """The stack's last outputs, read with the CLI (outputs need no lock)."""
    ws = auto.LocalWorkspace(work_dir=os.getcwd())
    try:
        return {k: v.value for k, v in ws.stack_outputs(stack).items()}
    except auto.errors.CommandError as exc:
        raise ConfigError(f"cannot read outputs of stack {stack}: {exc}") from exc


def run_from_config() -> None:
    cfg = pulumi.Config(CONFIG_NAMESPACE)
    paths = [Path(p.strip()) for p in cfg.require(CONFIG_ROLLOUT).split(",") if p.strip()]
    step = cfg.get_int(CONFIG_STEP)
    stack_parts = pulumi.get_stack().split(".")
    environment = cfg.get(CONFIG_ENVIRONMENT) or stack_parts[0]
    loaded = load_paths(paths)
    if loaded.errors:
        raise ConfigError("\n".join(str(e) for e in loaded.errors))
    rollouts = list(loaded.rollouts)
    if len(rollouts) > 1 and len(stack_parts) == 3:
        rollouts = [r for r in rollouts if (r.namespace, r.name) == (stack_parts[1], stack_parts[2])]
    if len(rollouts) != 1:
        raise ConfigError(
            f"kulta:rollout ({', '.join(map(str, paths))}) must hold exactly one Rollout, or one whose "
            f"namespace and name match the stack name <env>.<namespace>.<rollout>; found {len(rollouts)}"
        )
    rollout = rollouts[0]
    template = resolve_template(rollout, loaded.others)
    revision = pod_template_hash(template)
    outputs = _previous_outputs(pulumi.get_stack())
    prev = RolloutStatus.from_outputs(outputs) if outputs.get("phase") else None
    now = datetime.now(UTC).replace(microsecond=0)
    chain = chain_id_for(environment, rollout.namespace, rollout.name, revision)
    if step is None:
        decision = decide(rollout, revision, template, prev, now, environment=environment, chain_id=chain)
    else:
        decision = decide_step(rollout, revision, template, prev, now, step, environment=environment, chain_id=chain)
    kube = KubeReader(os.environ.get("KUBECONFIG"))
    state_dir = Path(os.environ.get("KULTA_STATE_DIR", ".kulta"))
    helper = Reconciler(
        ReconcilerConfig(environment=environment),
        build_stack_manager(state_dir, os.environ.get("KUBECONFIG")),
        kube,
        provider=None,
    )
    inputs = helper.program_inputs(rollout, loaded, decision, decision.status, prev)
    log.info("deploying from stack config", extra={"rollout": rollout.name, "revision": revision, "step": step})
    deploy(inputs)
