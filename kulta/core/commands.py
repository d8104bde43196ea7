"""Manual commands: what ``kulta promote|abort|retry`` leave for the reconciler.

A command travels as the stack tag ``kulta-command`` (JSON). Its id is recorded
in the status (``lastCommandId``) by the update that applies it, so a command is
applied exactly once however often the tag is read.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from kulta.errors import PermanentError

__all__ = ["CommandKind", "InvalidCommandError", "ManualCommand"]

#: a command tag is a few dozen bytes; anything much larger is not one of ours
MAX_COMMAND_BYTES = 4096


class InvalidCommandError(PermanentError):
    """The ``kulta-command`` stack tag is not a command KULTA wrote."""


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
        """Parse a command tag; anything else raises ``InvalidCommandError`` (never a library error)."""
        if len(raw) > MAX_COMMAND_BYTES:
            raise InvalidCommandError(f"{len(raw)} characters long; a command is under {MAX_COMMAND_BYTES}")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InvalidCommandError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidCommandError(f"not a JSON object but {type(data).__name__}")
        kinds = ", ".join(k.value for k in CommandKind)
        try:
            kind = CommandKind(data.get("kind"))
        except ValueError as exc:
            raise InvalidCommandError(f"kind {data.get('kind')!r} is not one of {kinds}") from exc
        command_id = data.get("id")
        if not isinstance(command_id, str) or not command_id:
            raise InvalidCommandError("has no id")
        return cls(id=command_id, kind=kind, issued_at=str(data.get("issuedAt", "")))
