"""Suite-wide setup.

Hypothesis' settings module is imported here, at collection, rather than lazily at
session end: on CPython 3.11.7, pytest's assertion rewriting of that late import
(after the Pulumi engine's gRPC threads have run) can fail inside ``ast.parse``
with "AST constructor recursion depth mismatch" and turn a green run red.
"""

from __future__ import annotations

import hypothesis
import hypothesis.database  # imported for its side effect, see above

__all__ = ["hypothesis"]
