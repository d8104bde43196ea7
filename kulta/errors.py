"""KULTA's error tree, split by what the caller does next.

    KultaError                      base of every error KULTA raises on purpose
    ├── SpecError                   a user's file is wrong: file, document, field path, fix
    │   (SpecErrors)                several SpecErrors of one file, reported together
    ├── ConfigError                 a command-line flag, env var or stack config is wrong
    ├── TemporaryError              retry later; state is unchanged (Git unreachable,
    │   │                           stack locked by another KULTA, sink down)
    │   ├── StackLockedError        another process holds the Pulumi stack's lock
    │   ├── LeaseLostError          another replica holds the rollout's lease (fenced)
    │   ├── UnrecordedUpdateError   the last update was killed after it recorded its
    │   │                           outputs but before Pulumi wrote its history entry
    │   └── DependencyError         a dependency did not answer (API server, Pulumi
    │                               backend, Prometheus, sink, Git, the local state
    │                               directory): names it
    └── PermanentError              retrying will not help without a human
        ├── StepFailedError         a Pulumi update for a step failed
        └── OutboxFullError         the durable event outbox reached its size bound

Library errors are translated where the library is called (in ``adapters``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "Dependency",
    "DependencyError",
    "KultaError",
    "LeaseLostError",
    "OutboxFullError",
    "PermanentError",
    "SpecError",
    "SpecErrors",
    "StackLockedError",
    "StepFailedError",
    "TemporaryError",
    "UnrecordedUpdateError",
]


class KultaError(Exception):
    """Base class of every error KULTA raises on purpose."""


@dataclass(frozen=True)
class SpecLocation:
    """Where in the user's files a problem is: ``file#doc field.path``."""

    file: str
    document: int
    path: str

    def __str__(self) -> str:
        where = f"{self.file}#{self.document}"
        return f"{where} {self.path}" if self.path else where


class SpecError(KultaError):
    """One problem in a user's file, with where it is and what to do.

    ``str(err)`` reads like ``rollouts/web.yaml#1 spec.strategy.canary.steps[2].setWeight:
    120 is outside 0..100``. ``document`` counts from 1 (the first YAML document).
    """

    def __init__(self, file: str, document: int, path: str, message: str) -> None:
        self.location = SpecLocation(file=file, document=document, path=path)
        self.message = message
        super().__init__(f"{self.location}: {message}")

    @property
    def file(self) -> str:
        return self.location.file

    @property
    def document(self) -> int:
        return self.location.document

    @property
    def path(self) -> str:
        return self.location.path


class SpecErrors(KultaError):  # noqa: N818 (a collection of SpecError, named for what it holds)
    """Every SpecError found in one run, reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class ConfigError(KultaError):
    """A flag, environment variable or stack config value is wrong; the message says which."""


class TemporaryError(KultaError):
    """Nothing changed; the same call may succeed later."""


class StackLockedError(TemporaryError):
    """Another process is updating this Pulumi stack; skip it and retry later."""


class UnrecordedUpdateError(TemporaryError):
    """The stack's outputs come from an update that has no entry in the stack's history.

    A process killed in the last instant of ``pulumi up`` (outputs checkpointed, the
    history entry not yet written) leaves its lock behind; the update that finds and
    removes that lock raises this instead of running, so the caller first records the
    same state again (an update with no changes) and the step keeps its history entry.
    """

    def __init__(self, stack: str, message: str) -> None:
        super().__init__(f"the last update of stack {stack} was interrupted before its history entry: {message}")
        self.stack = stack
        #: the message of the update whose history entry is missing
        self.message = message


class PermanentError(KultaError):
    """Retrying will not help until a human changes something."""


class StepFailedError(PermanentError):
    """The Pulumi update that applies a rollout step failed."""


class OutboxFullError(PermanentError):
    """The durable CDEvents outbox is full; the sink must drain it first."""


class Dependency(enum.Enum):
    """What KULTA depends on at run time; the value is how messages name it."""

    KUBERNETES = "Kubernetes API server"
    PULUMI_BACKEND = "Pulumi backend"
    PROMETHEUS = "Prometheus"
    EVENT_SINK = "event sink"
    GIT = "Git remote"
    #: the local ``--state-dir`` (the event outbox, workspaces): full, read-only or replaced
    STATE_DIR = "state directory"


class DependencyError(TemporaryError):
    """A dependency did not answer or answered nonsense; the same call may work later."""

    def __init__(self, dependency: Dependency, message: str) -> None:
        super().__init__(f"{dependency.value} unreachable: {message}")
        self.dependency = dependency


class LeaseLostError(TemporaryError):
    """This replica no longer holds the rollout's lease: another replica drives it now."""
