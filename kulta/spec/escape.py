"""One line of untrusted text, for a terminal or a CI log.

File names, field paths and values in ``kulta validate`` and ``kulta plan`` output come
from the repository, which anyone who can push writes. A newline in a YAML key would
start a line of its own (``::error::`` forges a GitHub Actions annotation), an ESC
would drive the terminal, a U+202E would reorder what is shown. ``one_line`` writes
every character Python does not call printable (``str.isprintable``: control and
format characters, line and paragraph separators, surrogates, unassigned code points,
spaces other than U+0020) as an escape: ``\\n``, ``\\r``, ``\\t``, ``\\x1b``,
``\\u202e``. Other characters, backslashes included, are kept, so ordinary text reads
as written. Every printer of these commands writes its lines through it.
"""

from __future__ import annotations

__all__ = ["one_line"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def one_line(text: str) -> str:
    """``text`` with every non-printable character escaped: never a line break, never a control character."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)
