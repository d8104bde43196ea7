"""Remove credentials from text before it reaches a log line, an error or a status.

KULTA talks to Git remotes, Prometheus and event sinks with tokens, and those
tokens travel in URLs (``https://user:token@host``, ``?sig=...``), HTTP headers
(``Authorization: Basic ...``, ``Cookie: ...``), ``key=value`` pairs and PEM
blocks. Any of them can end up in a library's error text. Every message that
leaves the process goes through ``redact_text`` first (the logging filter in
``kulta.logging_setup`` does it for log records; adapters do it for the errors
they raise), so one leak-proof function is the single place to get right.
``cap`` bounds the length of whatever is stored or logged; ``safe_text`` does
both, in the only safe order (redact, then cut: a cut could split a secret from
the context that identifies it).

The rules are deliberately greedy: a false positive costs a less readable log
line, a false negative leaks a credential.

Every rule runs in time linear in the length of the text, whatever the text
(``bench/redact_speed.py`` measures 1 MB of adversarial input): each regular
expression starts with a literal keyword, and its variable parts cannot be
re-scanned from another start position. URL userinfo is found by splitting the
text into whitespace/quote-separated runs, not by a backtracking pattern.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import SplitResult, quote, quote_plus, unquote, urlsplit, urlunsplit

__all__ = [
    "MESSAGE_LIMIT",
    "REDACTED",
    "TRACEBACK_LIMIT",
    "UrlCredentials",
    "cap",
    "is_secret_key",
    "redact_text",
    "redact_url",
    "redact_value",
    "safe_text",
    "split_url_credentials",
]

REDACTED = "***"

#: Longest status / lastError / log message kept, marker included (``cap``).
MESSAGE_LIMIT = 2000
#: Longest traceback kept on a log record.
TRACEBACK_LIMIT = 20000
#: ``cap`` refuses limits below this: the marker alone takes ~30 characters.
_MIN_CAP = 64

# Secrets shorter than this are not replaced literally: replacing "a" or "ab"
# everywhere would destroy the message and says nothing about the secret anyway.
_MIN_LITERAL_SECRET = 4

#: Authorization schemes whose word is kept (``Authorization: Bearer ***``).
_AUTH_SCHEMES = ("basic", "bearer", "token", "digest", "negotiate")
_AUTH_SCHEME = "|".join(_AUTH_SCHEMES)
#: What separates a scheme from its credentials, also URL-encoded (``Bearer%20x``, ``Bearer+x``).
_SCHEME_SEPARATOR = r"(?:[ \t]+|%20|\+)"

# A value after ``key:`` / ``key=``: a JSON array, a double- or single-quoted
# string (backslash escapes honoured, one line), or a bare word. Each
# alternative has exactly one way to consume each character, and a scan stops
# at the next opening character of its kind (an array holds no '['; a quote
# closes at the next same quote), so failed attempts never re-scan the same
# stretch twice.
_ARRAY = r"\[(?P<arr>[^\[\]\r\n]*)\]"
_DQ = r"\"(?P<dq>(?:[^\"\\\r\n]|\\.)*)\""
_SQ = r"'(?P<sq>(?:[^'\\\r\n]|\\.)*)'"
_BARE = r"(?P<bare>[^\s\"',;&]+)"
_SEP = r"[\"']?\s*[:=]\s*"

# ``Authorization: Basic abc``, ``authorization=Bearer abc``, ``"Authorization": "token abc"``,
# ``"Authorization": ["Bearer abc"]``, ``Proxy-Authorization: ...``.
_AUTH_HEADER = re.compile(
    rf"(?P<key>authorization{_SEP})"
    rf"(?:{_ARRAY}|{_DQ}|{_SQ}|(?:(?P<scheme>{_AUTH_SCHEME}){_SCHEME_SEPARATOR})?{_BARE})",
    re.IGNORECASE,
)

# ``Cookie: a=b; c=d`` and ``Set-Cookie: s=1; Path=/``: the value runs to the end of the line.
_COOKIE = re.compile(
    rf"(?P<key>(?:set-)?cookie[\"']?[ \t]*[:=][ \t]*)(?:{_ARRAY}|{_DQ}|{_SQ}|(?P<line>[^\r\n\"']+))",
    re.IGNORECASE,
)

# ``token=abc``, ``access_token: abc``, ``PULUMI_CONFIG_PASSPHRASE=abc``, ``X-Api-Key: abc``,
# ``aws_secret_access_key = abc``, ``?sig=abc``, ``X-Amz-Signature=abc``, ``X-Amz-Credential=abc``:
# any key that ENDS in one of these words, followed by '=' or ':'. Only the word is
# matched (whatever precedes it is left as it is), which keeps the search linear.
_SECRET_KEY_WORDS = (
    r"(?:token|password|passwd|passphrase|pwd|secret|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key"  # noqa: S105 (a pattern)
    r"|credentials?|signature|(?<![A-Za-z0-9])sig)"
)
_KEY_VALUE = re.compile(rf"(?P<key>{_SECRET_KEY_WORDS}{_SEP})(?:{_ARRAY}|{_DQ}|{_SQ}|{_BARE})", re.IGNORECASE)

# A bearer token outside an Authorization header: ``sent Bearer abc``, ``Bearer%20abc``.
_BEARER = re.compile(rf"(?P<key>\bbearer{_SCHEME_SEPARATOR}){_BARE}", re.IGNORECASE)

# A mapping key whose value is a secret as a whole (log extras, JSON documents).
_SECRET_KEY_NAME = re.compile(rf"(?:{_SECRET_KEY_WORDS}|authorization|cookie)$", re.IGNORECASE)

# ``-----BEGIN RSA PRIVATE KEY-----`` (also OPENSSH, EC, ENCRYPTED, PGP ... BLOCK).
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY[A-Z0-9 ]{0,20}-----")
_PEM_END = "-----END"

# A run of characters a URL can span in free text (stops at whitespace, quotes, <>, backslash).
_RUN = re.compile(r"[^\s'\"<>\\]+")
_SCHEME_MARK = "://"

#: Deepest nesting ``redact_value`` walks into; deeper values are rendered as text.
_MAX_DEPTH = 8


class UrlCredentials(NamedTuple):
    """A URL split into the part that may be shown and the credentials it carried."""

    url: str
    username: str | None
    password: str | None


def _quoted_value(quote_char: str, content: str, keep_scheme: bool) -> str:
    scheme, sep, _ = content.partition(" ")
    if keep_scheme and sep and scheme.lower() in _AUTH_SCHEMES:
        return f"{quote_char}{scheme} {REDACTED}{quote_char}"
    return f"{quote_char}{REDACTED}{quote_char}"


def _replace_value(match: re.Match[str], keep_scheme: bool = False) -> str:
    groups = match.groupdict()
    key = groups["key"]
    if groups.get("arr") is not None:
        return f'{key}["{REDACTED}"]' if groups["arr"].strip() else match.group(0)
    if groups.get("dq") is not None:
        return key + _quoted_value('"', groups["dq"], keep_scheme)
    if groups.get("sq") is not None:
        return key + _quoted_value("'", groups["sq"], keep_scheme)
    if groups.get("scheme"):
        # keep the scheme and its separator as written ("Bearer ", "Bearer%20", "Bearer+")
        return match.group(0)[: match.start("bare") - match.start()] + REDACTED
    return key + REDACTED


def _replace_auth(match: re.Match[str]) -> str:
    return _replace_value(match, keep_scheme=True)


def _secret_forms(secret: str) -> set[str]:
    """``secret`` as it may be echoed: raw, URL-encoded, JSON-escaped; and the credentials of ``Bearer x``."""
    forms = {secret}
    scheme, sep, credentials = secret.strip().partition(" ")
    if sep and scheme.lower() in _AUTH_SCHEMES and credentials.strip():
        forms.add(credentials.strip())
    for form in list(forms):
        forms.update({quote(form, safe=""), quote(form), quote_plus(form), json.dumps(form)[1:-1]})
    return {f for f in forms if len(f) >= _MIN_LITERAL_SECRET}


def _mask_literals(text: str, secrets: Iterable[str]) -> str:
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= _MIN_LITERAL_SECRET:
            forms.update(_secret_forms(secret))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def _mask_private_keys(text: str) -> str:
    """``-----BEGIN ... PRIVATE KEY-----***-----END ...``; an unterminated block is masked to the end."""
    if "-----BEGIN" not in text:
        return text
    parts: list[str] = []
    pos = 0
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        parts.append(text[pos : begin.end()])
        parts.append(REDACTED)
        end = text.find(_PEM_END, begin.end())
        if end < 0:
            return "".join(parts)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _mask_run_userinfo(match: re.Match[str]) -> str:
    run = match.group(0)
    start = run.find(_SCHEME_MARK)
    if start < 0:
        return run
    at = run.rfind("@")
    if at <= start + len(_SCHEME_MARK):
        return run
    return run[: start + len(_SCHEME_MARK)] + REDACTED + run[at:]


def _mask_url_userinfo(text: str) -> str:
    """``scheme://<anything>@`` -> ``scheme://***@``, up to the LAST '@' of the run.

    Userinfo may hold unencoded '/', '@', '?' or '#' (``https://u:p/ss@host``);
    the run ends only at whitespace, a quote, '<', '>' or a backslash. A URL
    with an '@' in its path or query loses its host too: greedy on purpose.
    """
    if _SCHEME_MARK not in text or "@" not in text:
        return text
    return _RUN.sub(_mask_run_userinfo, text)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with credentials masked as ``***``; linear time, idempotent.

    Masked: ``secrets`` (literal values the caller knows, such as a token read
    from an environment variable or a whole ``Authorization`` header value)
    wherever they appear, also URL-encoded (``Bearer%20abc``, ``Bearer+abc``)
    or JSON-escaped, and for ``Bearer abc`` the bare ``abc`` too; URL userinfo;
    PEM private key blocks; ``Authorization``/``Cookie``/``Set-Cookie`` values
    (bare, quoted, or a JSON array); values of keys ending in a secret word
    (``token``, ``password``, ``passphrase``, ``secret``, ``api_key``,
    ``access_key``, ``private_key``, ``credential``, ``signature``, ``sig``,
    ...) after ``:`` or ``=`` (query strings included); ``Bearer`` tokens.
    """
    result = _mask_literals(text, secrets)
    result = _mask_private_keys(result)
    result = _mask_url_userinfo(result)
    result = _AUTH_HEADER.sub(_replace_auth, result)
    result = _COOKIE.sub(_replace_value, result)
    result = _KEY_VALUE.sub(_replace_value, result)
    return _BEARER.sub(_replace_value, result)


def cap(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters, ending ``… (N more characters)`` when cut.

    Cut AFTER redacting (``safe_text``): a cut made first could leave half a
    secret without the context (``://``, ``token=``) that identifies it.
    """
    if limit < _MIN_CAP:
        raise ValueError(f"cap limit must be at least {_MIN_CAP}, got {limit}")
    if len(text) <= limit:
        return text
    keep = limit
    while True:
        marker = f"… ({len(text) - keep} more characters)"
        if keep + len(marker) <= limit:
            return text[:keep] + marker
        keep = limit - len(marker)


def safe_text(text: str, secrets: Iterable[str] = (), limit: int = MESSAGE_LIMIT) -> str:
    """``text`` redacted, then capped: what a status, an outbox ``lastError`` or a log line may hold."""
    return cap(redact_text(text, secrets), limit)


def is_secret_key(name: str) -> bool:
    """True when a mapping key names a secret as a whole (``token``, ``Authorization``, ``db_password``)."""
    return _SECRET_KEY_NAME.search(name[-64:]) is not None


def redact_value(value: Any, secrets: Iterable[str] = (), limit: int = MESSAGE_LIMIT) -> Any:
    """A JSON-friendly copy of ``value`` with every string redacted and capped.

    Mappings and sequences are walked (to a fixed depth); the value of a key
    that names a secret (``is_secret_key``) is replaced whole, whatever its
    type. Numbers, booleans and ``None`` are kept; anything else becomes its
    redacted ``str()``.
    """
    known = tuple(secrets)
    return _redact_value(value, known, limit, 0)


def _redact_value(value: Any, secrets: tuple[str, ...], limit: int, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return safe_text(value, secrets, limit)
    if depth < _MAX_DEPTH and isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = safe_text(str(key), secrets, limit)
            out[name] = REDACTED if is_secret_key(str(key)) else _redact_value(item, secrets, limit, depth + 1)
        return out
    if depth < _MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item, secrets, limit, depth + 1) for item in value]
    return safe_text(str(value), secrets, limit)


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
