"""Remove credentials from text before it reaches a log line, an error or a status.

KULTA talks to Git remotes, Prometheus and event sinks with tokens, and those
tokens travel in URLs (``https://user:token@host``), HTTP headers
(``Authorization: Basic ...``) and ``key=value`` pairs. Any of them can end up
in a library's error text. Every message that leaves the process goes through
``redact_text`` first (the logging filter in ``kulta.logging_setup`` does it
for log records; adapters do it for the errors they raise), so one leak-proof
function is the single place to get right.

The rules are deliberately greedy: a false positive costs a less readable log
line, a false negative leaks a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "UrlCredentials",
    "redact_text",
    "redact_url",
    "split_url_credentials",
]

REDACTED = "***"

# Characters that may appear in a URL's authority (userinfo@host:port) in free
# text. The class stops at the path, query, fragment, whitespace and quotes; the
# greedy ``*`` then backtracks to the LAST '@', so a password holding an
# unencoded '@' is still redacted whole.
_AUTHORITY_CHARS = r"[^\s/?#'\"<>\\]"
_URL_USERINFO = re.compile(rf"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://){_AUTHORITY_CHARS}*@")

# ``Authorization: Basic abc``, ``authorization=Bearer abc``, ``"Authorization": "token abc"``.
_AUTH_HEADER = re.compile(
    r"(?P<key>\bauthorization[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?P<scheme>basic|bearer|token|digest|negotiate)\s+)?"
    r"(?P<value>[^\s\"',;&]+)",
    re.IGNORECASE,
)

# ``token=abc``, ``access_token: abc``, ``password=abc``, ``X-Api-Key: abc`` ...:
# any key that ENDS in one of these words, followed by '=' or ':'.
_SECRET_KEY_WORDS = r"(?:token|password|passwd|pwd|secret|api[_\-]?key|apikey|credentials?)"  # noqa: S105 (a pattern)
_KEY_VALUE = re.compile(
    rf"(?P<key>\b[A-Za-z0-9_\-.]*{_SECRET_KEY_WORDS}[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>[^\s\"',;&]+)",
    re.IGNORECASE,
)

# Secrets shorter than this are not replaced literally: replacing "a" or "ab"
# everywhere would destroy the message and says nothing about the secret anyway.
_MIN_LITERAL_SECRET = 4


class UrlCredentials(NamedTuple):
    """A URL split into the part that may be shown and the credentials it carried."""

    url: str
    username: str | None
    password: str | None


def _replace_auth_header(match: re.Match[str]) -> str:
    scheme = match.group("scheme")
    prefix = match.group("key") + (f"{scheme} " if scheme else "")
    return prefix + REDACTED


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with URL userinfo, auth headers, secret-looking pairs and ``secrets`` masked.

    ``secrets`` are literal values the caller knows (a token read from an
    environment variable, its base64 form); they are masked wherever they
    appear, whatever surrounds them. The function is idempotent.
    """
    result = text
    for secret in sorted({s for s in secrets if len(s) >= _MIN_LITERAL_SECRET}, key=len, reverse=True):
        result = result.replace(secret, REDACTED)
    result = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", result)
    result = _AUTH_HEADER.sub(_replace_auth_header, result)
    return _KEY_VALUE.sub(lambda m: m.group("key") + REDACTED, result)


def split_url_credentials(url: str) -> UrlCredentials:
    """Split ``scheme://user:pass@host/path`` into the bare URL and its (decoded) credentials.

    Strings that are not ``scheme://`` URLs (local paths, scp-like
    ``git@host:org/repo.git``) come back unchanged with no credentials: the
    user part of an scp-like address is an account name, not a secret.
    """
    if "://" not in url:
        return UrlCredentials(url, None, None)
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return UrlCredentials(url, None, None)
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    bare = urlunsplit(SplitResult(parts.scheme, hostinfo, parts.path, parts.query, parts.fragment))
    return UrlCredentials(
        url=bare,
        username=unquote(user) if user else None,
        password=unquote(password) if has_password else None,
    )


def redact_url(url: str) -> str:
    """Return ``url`` fit for a log line: userinfo replaced by ``***`` and secret query values masked.

    Unlike ``redact_text`` this keeps the information that the URL carried
    credentials (``https://***@host/repo.git``), which helps when debugging
    "why is this remote authenticated?".
    """
    return redact_text(url)
