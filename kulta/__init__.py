"""KULTA: progressive delivery as code.

Reads Argo Rollouts-style ``Rollout`` documents from Git and drives each canary
step as a Pulumi update. Layers (each may import only the ones below it):

    cli -> app (reconciler, commands) -> adapters (pulumi, git, prometheus,
    sinks, kube) -> core (plan, conditions, assessment, events) -> model (specs)

``core`` and ``model`` import no pulumi, httpx, git or kubernetes client.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
