"""The Pulumi program of this repository: ``pulumi preview --diff`` / ``pulumi up`` from CI.

Runs the same code as the reconciler (kulta.adapters.program.deploy) with the
rollout file and step taken from stack config (``kulta:rollout``,
``kulta:step``). See stacks/README.md.
"""

from kulta.app.standalone import run_from_config

run_from_config()
