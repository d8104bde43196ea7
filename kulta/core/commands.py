"""Manual commands: what ``kulta promote|abort|retry`` leave for the reconciler.

A command travels as the stack tag ``kulta-command`` (JSON). Its id is recorded
in the status (``lastCommandId``) by the update that applies it, so a command is
applied exactly once however often the tag is read.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

__all__ = ["CommandKind", "ManualCommand"]


class CommandKind(enum.Enum):
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ABORT = "abort"
    RETRY = "retry"


@dataclass(frozen=True)
class ManualCommand:
    """A person's command, stored as a stack tag by ``kulta promote|abort|retry``."""

    id: str
    kind: CommandKind
    issued_at: str = ""

    def to_config(self) -> str:
        return json.dumps({"id": self.id, "kind": self.kind.value, "issuedAt": self.issued_at})

    @classmethod
    def from_config(cls, raw: str) -> ManualCommand:
        data = json.loads(raw)
        return cls(id=str(data["id"]), kind=CommandKind(data["kind"]), issued_at=str(data.get("issuedAt", "")))
