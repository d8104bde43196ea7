"""A Pulumi backend URL split into what the engine may see and the secret it must not.

KULTA passes the backend URL to the Pulumi CLI (``$PULUMI_BACKEND_URL``) and
to the Automation API, which writes it into the workspace's ``Pulumi.yaml``
(``backend.url``), a file on local disk (Pulumi 3.260 records only
``"pulumi.env.PULUMI_BACKEND_URL": "set"`` in an update's history). A
PostgreSQL URL usually carries a password (``postgres://user:pass@host:5432/db``),
so the password is taken out here and handed to the engine as ``PGPASSWORD``
(which Pulumi's ``lib/pq`` driver and ``psql`` both read) while the URL itself
goes on without it: no file, log line or error text of the engine can hold it.

Pulumi's DIY PostgreSQL backend (``pkg/backend/diy/postgres``, Pulumi ≥ 3.176)
registers the scheme ``postgres`` only; ``postgresql://`` is refused by name
here instead of failing inside the engine. Its ``table`` query parameter
(default ``pulumi_state``) names the table, and every key in it starts with
the URL's path (the database name): ``<db>/.pulumi/stacks/<project>/<stack>.json``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from kulta.errors import ConfigError
from kulta.redact import redact_text

__all__ = [
    "DEFAULT_TABLE",
    "ENV_PGPASSWORD",
    "BackendKind",
    "BackendUrl",
    "parse_backend_url",
]

ENV_PGPASSWORD = "PGPASSWORD"
DEFAULT_TABLE = "pulumi_state"
_TABLE_PARAM = "table"
_PASSWORD_PARAM = "password"  # noqa: S105 (a parameter name)
#: Pulumi puts the table name into its SQL unquoted; KULTA accepts what that can mean
_TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_POSTGRES_SCHEME = "postgres"
_REFUSED_POSTGRES_SCHEME = "postgresql"


class BackendKind(enum.Enum):
    FILE = "file"
    POSTGRES = "postgres"
    #: S3, GCS, Azure Blob, Pulumi Cloud: passed through, read through the CLI
    OTHER = "other"


@dataclass(frozen=True)
class BackendUrl:
    """One backend URL. ``engine_url`` and ``display`` hold no password; ``password`` does."""

    kind: BackendKind
    #: the URL given to Pulumi (``$PULUMI_BACKEND_URL``, ``Pulumi.yaml``): password removed
    engine_url: str
    #: the PostgreSQL password taken out of the URL (``None``: none was there)
    password: str | None = None
    #: PostgreSQL only: the table Pulumi keeps its blobs in
    table: str = DEFAULT_TABLE
    #: PostgreSQL only: what every key starts with (``<db>/``; empty without a path)
    key_prefix: str = ""
    #: PostgreSQL only: a libpq URI for ``psql`` (no password, no ``table`` parameter)
    libpq_uri: str = ""

    @property
    def display(self) -> str:
        """The URL for a log line or an error (userinfo and secret parameters masked)."""
        return redact_text(self.engine_url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Literal secrets to mask in any text that came back from the engine."""
        return (self.password,) if self.password else ()

    def engine_env(self) -> dict[str, str]:
        """What the engine's environment needs beside the URL: the password, when there is one."""
        return {ENV_PGPASSWORD: self.password} if self.password else {}


def parse_backend_url(url: str) -> BackendUrl:
    """Classify ``url`` and, for PostgreSQL, take the password out of it.

    >>> b = parse_backend_url("postgres://kulta:s3cret@db:5432/state?sslmode=require&table=rollouts")
    >>> (b.engine_url, b.password, b.table, b.key_prefix)
    ('postgres://kulta@db:5432/state?sslmode=require&table=rollouts', 's3cret', 'rollouts', 'state/')
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed '['
        raise ConfigError(f"backend URL {redact_text(url)}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme == "file":
        return BackendUrl(kind=BackendKind.FILE, engine_url=url)
    if scheme == _REFUSED_POSTGRES_SCHEME:
        raise ConfigError(
            f"backend URL {redact_text(url)}: Pulumi's PostgreSQL backend registers the scheme "
            f"'{_POSTGRES_SCHEME}://' only; write {_POSTGRES_SCHEME}://..."
        )
    if scheme != _POSTGRES_SCHEME:
        return BackendUrl(kind=BackendKind.OTHER, engine_url=url)
    return _postgres(parts)


def _join(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    """``urlunsplit`` that keeps ``//`` with an empty authority (``postgres://`` + ``PG*`` variables)."""
    url = f"{scheme}://{netloc}{path}"
    if query:
        url += f"?{query}"
    return f"{url}#{fragment}" if fragment else url


def _postgres(parts: tuple[str, str, str, str, str]) -> BackendUrl:
    scheme, netloc, path, query, fragment = parts
    userinfo, at, hostinfo = netloc.rpartition("@")
    user, has_password, raw_password = userinfo.partition(":")
    password = unquote(raw_password) if has_password and raw_password else None
    params = parse_qsl(query, keep_blank_values=True)
    kept: list[tuple[str, str]] = []
    table = DEFAULT_TABLE
    for key, value in params:
        if key == _PASSWORD_PARAM:
            password = value or password
            continue
        if key == _TABLE_PARAM:
            table = value or DEFAULT_TABLE
        kept.append((key, value))
    if not _TABLE_RE.fullmatch(table):
        raise ConfigError(f"backend URL: table {table!r} is not a plain SQL name (letters, digits, '_')")
    engine_netloc = f"{user}@{hostinfo}" if at and user else hostinfo
    engine_url = _join(scheme, engine_netloc, path, urlencode(kept), fragment)
    libpq_query = urlencode([(k, v) for k, v in kept if k != _TABLE_PARAM])
    libpq_uri = _join("postgresql", engine_netloc, path, libpq_query, "")
    database = unquote(path.lstrip("/"))
    return BackendUrl(
        kind=BackendKind.POSTGRES,
        engine_url=engine_url,
        password=password,
        table=table,
        key_prefix=f"{database}/" if database else "",
        libpq_uri=libpq_uri,
    )
