"""Untrusted text inside GitHub-flavoured markdown: a PR comment that nothing in a file can break.

Names, field paths and values in a preview come from the repository (anyone who can open
a pull request writes them) and from the live cluster. In a comment they must not end a
table cell (``|``), open a code span or a fence (backticks), inject HTML (``<``, ``&``),
make a link or mention someone (``@name`` pings a person), or start a new line.

- ``code`` puts text in a code span: markdown, HTML and mentions are inert there; the
  fence is one backtick longer than the longest run in the text (CommonMark 6.1), and
  ``|`` is written ``\\|``, which GFM tables read as a pipe even inside a code span
  (GFM spec, "Tables", example 200).
- ``html_text`` is text inside an HTML element (a ``<summary>``), where markdown is not
  read: ``&``, ``<``, ``>`` and ``"`` are written as entities, ``@`` as ``&#64;``.
- ``truncate`` caps a value's length and says how long it was.

Every function first writes non-printable characters escaped (``one_line``).
"""

from __future__ import annotations

import html
import re

from kulta.spec.escape import one_line

__all__ = ["code", "html_text", "truncate"]

_BACKTICKS = re.compile(r"`+")
#: what a long value ends with: the full length, so a reader knows how much is hidden
_ELLIPSIS = "… ({length} chars)"


def code(text: str) -> str:
    """``text`` as a code span safe in a table cell; ``""`` for empty text (an empty span is not one)."""
    line = one_line(text).replace("|", "\\|")
    if not line:
        return ""
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(line)), default=0) + 1)
    pad = " " if line.startswith(("`", " ")) or line.endswith(("`", " ")) else ""
    return f"{fence}{pad}{line}{pad}{fence}"


def html_text(text: str) -> str:
    """``text`` for the inside of an HTML element: no tag, no entity, no mention."""
    return html.escape(one_line(text), quote=True).replace("@", "&#64;")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (with its full length said), or whole when it fits."""
    if len(text) <= limit:
        return text
    return text[:limit] + _ELLIPSIS.format(length=len(text))
