"""A throwaway PostgreSQL server for development and tests: the Pulumi state of shared replicas.

``start_postgres`` runs Debian's ``initdb`` and ``pg_ctl`` (``dev/toolchain
postgresql`` installs them) in a fresh directory under ``/tmp``, listening on a
free loopback port only (no Unix socket), with one superuser whose random
password is required (``scram-sha-256``). It never touches a system instance.
The returned ``DevPostgres.url`` is a ``postgres://`` URL for ``$PULUMI_BACKEND_URL``;
any number of processes may use it at once (``max_connections`` is raised for
that: every Pulumi CLI process opens its own pool). ``stop_postgres`` stops the
server and removes its directory.

initdb and the server refuse to run as root. As root (CI, containers) both
run as the unprivileged ``postgres`` account that Debian's package creates,
through ``runuser``; the data directory is created for that account outside
any root-only directory. Durability is switched off (``fsync``,
``synchronous_commit``): the data lives as long as one test session.
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kulta.devcluster import free_port
from kulta.errors import ConfigError, TemporaryError

__all__ = ["DevPostgres", "postgres_bindir", "start_postgres", "stop_postgres"]

log = logging.getLogger(__name__)

#: the account Debian's ``postgresql-common`` creates; the server runs as it when we are root
SERVICE_USER = "postgres"
SUPERUSER = "kulta"
DATABASE = "kulta"
#: three replicas x a few concurrent Pulumi processes x their pools, with room to spare
MAX_CONNECTIONS = 300
START_TIMEOUT_SECONDS = 60
_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")


@dataclass(frozen=True)
class DevPostgres:
    """A running throwaway server. ``url`` carries the password: never log it."""

    data_dir: str
    port: int
    user: str
    password: str
    database: str
    bindir: str

    @property
    def url(self) -> str:
        return f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}?sslmode=disable"


def postgres_bindir() -> Path:
    """Where ``initdb``/``pg_ctl``/``postgres`` are: ``$KULTA_POSTGRES_BINDIR``, the
    toolchain's links, PATH, else the newest Debian ``/usr/lib/postgresql/<major>/bin``."""
    candidates: list[Path] = []
    if os.environ.get("KULTA_POSTGRES_BINDIR"):
        candidates.append(Path(os.environ["KULTA_POSTGRES_BINDIR"]))
    if os.environ.get("KULTA_TOOLCHAIN_DIR"):
        candidates.append(Path(os.environ["KULTA_TOOLCHAIN_DIR"]) / "bin")
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    if _DEBIAN_ROOT.is_dir():
        majors = sorted((p for p in _DEBIAN_ROOT.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
        candidates.extend(p / "bin" for p in reversed(majors))
    for candidate in candidates:
        # the real directory, not the toolchain's links: those live under root's home,
        # which the 'postgres' account cannot enter
        directory = (candidate / "initdb").resolve().parent
        if all((directory / tool).exists() for tool in _SERVER_TOOLS):
            return directory
    raise ConfigError("PostgreSQL server tools (initdb, pg_ctl, postgres) not found: run dev/toolchain postgresql")


def _as_service_user() -> list[str]:
    """The command prefix that drops root to the ``postgres`` account (empty when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError as exc:
        raise ConfigError(
            f"running as root and there is no '{SERVICE_USER}' account for initdb: run dev/toolchain postgresql"
        ) from exc
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ConfigError("running as root and runuser is not installed: initdb refuses to run as root")
    return [runuser, "-u", SERVICE_USER, "--"]


def _run(args: Sequence[str], timeout: float, cwd: Path) -> str:
    """Run a server tool from ``cwd``: a directory the ``postgres`` account can enter (the
    caller's may be under root's home, and initdb and pg_ctl change back to it)."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    if proc.returncode != 0:
        tool = Path(args[len(_as_service_user())]).name
        raise TemporaryError(f"{tool} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def start_postgres() -> DevPostgres:
    """initdb a new cluster in a temporary directory and start it on a free loopback port."""
    bindir = postgres_bindir()
    prefix = _as_service_user()
    base = Path(tempfile.mkdtemp(prefix="kulta-pg-"))
    data = base / "data"
    password = secrets.token_hex(16)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if prefix:
        account = pwd.getpwnam(SERVICE_USER)
        for path in (base, pwfile):
            os.chown(path, account.pw_uid, account.pw_gid)
    pwfile.chmod(0o600)
    port = free_port()
    server = DevPostgres(
        data_dir=str(data), port=port, user=SUPERUSER, password=password, database=DATABASE, bindir=str(bindir)
    )
    try:
        _run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            timeout=120,
            cwd=base,
        )
        pwfile.unlink()
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            f"-c max_connections={MAX_CONNECTIONS} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                str(START_TIMEOUT_SECONDS),
                "start",
            ],
            timeout=START_TIMEOUT_SECONDS + 10,
            cwd=base,
        )
        _create_database(server)
    except (TemporaryError, ConfigError, OSError, subprocess.TimeoutExpired):
        stop_postgres(server)
        raise
    log.info("PostgreSQL started", extra={"port": port, "data_dir": str(data)})
    return server


def _create_database(server: DevPostgres) -> None:
    """``CREATE DATABASE kulta`` with ``psql`` on the ``postgres`` database (the password
    travels in the environment, never in argv, where ``ps`` would show it)."""
    psql = shutil.which("psql") or str(Path(server.bindir) / "psql")
    env = dict(os.environ, PGPASSWORD=server.password)
    proc = subprocess.run(
        [
            psql,
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            server.user,
            "-d",
            "postgres",
            "-c",
            f"CREATE DATABASE {server.database}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise TemporaryError(f"creating database {server.database} failed: {proc.stderr[-2000:]}")


def stop_postgres(server: DevPostgres) -> None:
    """Stop the server (fast shutdown: open connections are closed) and remove its directory."""
    base = Path(server.data_dir).parent
    if (Path(server.data_dir) / "postmaster.pid").exists():
        proc = subprocess.run(
            [
                *_as_service_user(),
                str(Path(server.bindir) / "pg_ctl"),
                "-D",
                server.data_dir,
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=base,
        )
        if proc.returncode != 0:
            log.warning("pg_ctl stop failed", extra={"data_dir": server.data_dir, "stderr": proc.stderr[-500:]})
    try:
        shutil.rmtree(base)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("could not remove the PostgreSQL directory", extra={"dir": str(base), "error": str(exc)})
