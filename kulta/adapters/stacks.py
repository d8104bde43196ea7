"""Pulumi stacks through the Automation API: one stack per (environment, namespace, rollout).

Why a manager: every step is a Pulumi update, so the cost of an update is the
cost of a step. One ``LocalWorkspace`` is created per stack and reused (its
program swapped per update), no refresh runs unless asked, and the update
message carries the step so ``pulumi stack history`` is readable on its own.

Errors are translated here: a stack locked by another process becomes
``StackLockedError`` (skip, retry later); any other engine failure becomes
``StepFailedError`` with the engine's own last lines. A lock left behind by a
dead KULTA process on this host (file and PostgreSQL backends) is removed
before an update; a lock held by a live process is never touched. A dead lock
means the update it guarded was killed; when that update had already recorded
its outputs (the ``updateMessage`` output) but not its history entry, ``up``
raises ``UnrecordedUpdateError`` so the caller records that state again first.

Two backends are read directly, without a CLI process per read: files
(``file_backend``) and PostgreSQL (``postgres_backend``, through ``psql``).
A PostgreSQL password never reaches the engine's URL (``backend_url``): the
Automation API would write it into the workspace's ``Pulumi.yaml``.
Every error text that leaves this module is redacted, the password included.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from pulumi import automation as auto
from pulumi.automation._server import LanguageServer
from pulumi.automation._stack import ExecKind, _cleanup
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import language_pb2_grpc

from kulta.adapters.backend_url import BackendKind, BackendUrl, parse_backend_url
from kulta.adapters.diy_state import lock_is_dead, lock_prefix
from kulta.adapters.file_backend import FileBackend, file_backend_root
from kulta.adapters.postgres_backend import PostgresBackend, find_psql
from kulta.core.constants import OUTPUT_UPDATE_MESSAGE, PULUMI_PROJECT
from kulta.errors import Dependency, DependencyError, StackLockedError, StepFailedError, UnrecordedUpdateError
from kulta.redact import redact_text

__all__ = [
    "HistoryEntry",
    "PreviewChange",
    "PreviewReport",
    "StackManager",
    "StackSettings",
    "UpdateReport",
    "build_stack_manager",
    "property_value",
    "stack_name_for",
]

log = logging.getLogger(__name__)

ENV_BACKEND_URL = "PULUMI_BACKEND_URL"
ENV_PASSPHRASE = "PULUMI_CONFIG_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
ENV_PASSPHRASE_FILE = "PULUMI_CONFIG_PASSPHRASE_FILE"  # noqa: S105
STACK_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]")
ERROR_TAIL_LINES = 12
#: the file backend keeps each blob's metadata beside it in ``<name>.attrs``
ATTRS_SUFFIX = ".attrs"
#: history entries read to find the last succeeded update after a killed one
#: (failed attempts in between keep the outputs of the last succeeded update)
UNRECORDED_LOOKBACK = 50
#: ``UpdateSummary.result`` of an update that succeeded
SUCCEEDED = "succeeded"


_T = TypeVar("_T")


def _backend(what: str, call: Callable[[], _T], secrets: tuple[str, ...] = ()) -> _T:
    """One read or tag write against the backend; every failure becomes a DependencyError."""
    try:
        return call()
    except auto.errors.ConcurrentUpdateError as exc:
        raise StackLockedError(f"{what}: the stack is being updated by another process") from exc
    except auto.errors.CommandError as exc:
        raise DependencyError(Dependency.PULUMI_BACKEND, f"{what}: {_tail(exc, secrets)}") from exc
    except (OSError, ValueError, RuntimeError) as exc:
        # the CLI could not start, its answer was not JSON, the backend directory is unreadable
        detail = redact_text(f"{type(exc).__name__}: {exc}", secrets)
        raise DependencyError(Dependency.PULUMI_BACKEND, f"{what}: {detail}") from exc


def build_stack_manager(state_dir: Path, kubeconfig: str | None) -> StackManager:
    """The stack manager of a state directory (what every command uses)."""
    return StackManager(StackSettings(state_dir=state_dir, kubeconfig=kubeconfig or ""))


def stack_name_for(environment: str, namespace: str, rollout: str) -> str:
    """``<env>.<namespace>.<rollout>`` with characters Pulumi refuses replaced by ``-``."""
    return ".".join(STACK_NAME_RE.sub("-", p) for p in (environment, namespace, rollout))


@dataclass(frozen=True)
class StackSettings:
    """Where stacks live and what the engine sees.

    ``backend_url`` defaults to ``$PULUMI_BACKEND_URL`` or ``file://<state_dir>/backend``;
    S3, GCS, Azure Blob and Pulumi Cloud URLs are passed through unchanged, a
    PostgreSQL URL without its password (given to the engine as ``PGPASSWORD``).
    """

    state_dir: Path
    backend_url: str = ""
    kubeconfig: str = ""
    pulumi_home: str = ""
    extra_env: Mapping[str, str] | None = None

    def backend(self) -> BackendUrl:
        """The backend: ``backend_url``, else ``$PULUMI_BACKEND_URL``, else the state dir's files."""
        if self.backend_url:
            return parse_backend_url(self.backend_url)
        if os.environ.get(ENV_BACKEND_URL):
            return parse_backend_url(os.environ[ENV_BACKEND_URL])
        return parse_backend_url(f"file://{_make_dir(self.state_dir / 'backend')}")

    def resolved_backend(self) -> str:
        """The URL the engine gets (no password: it would end up in ``Pulumi.yaml``)."""
        return self.backend().engine_url

    def env(self) -> dict[str, str]:
        backend = self.backend()
        env: dict[str, str] = {
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            ENV_BACKEND_URL: backend.engine_url,
            **backend.engine_env(),
        }
        if not os.environ.get(ENV_PASSPHRASE) and not os.environ.get(ENV_PASSPHRASE_FILE):
            # Stacks hold no secrets of their own unless a user adds them; an empty
            # passphrase keeps the default setup free of a secret to manage.
            env[ENV_PASSPHRASE] = ""
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        if self.pulumi_home:
            env["PULUMI_HOME"] = self.pulumi_home
        env.update(self.extra_env or {})
        return env


@dataclass(frozen=True)
class UpdateReport:
    outputs: dict[str, Any]
    changes: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class PreviewChange:
    """One resource's planned change: ``op`` is create/update/delete/same/replace."""

    urn_name: str
    type: str
    op: str
    diffs: tuple[str, ...]
    detailed: Mapping[str, tuple[Any, Any]]
    #: the planned inputs (for creates, where there is nothing to diff against)
    inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreviewReport:
    changes: tuple[PreviewChange, ...]
    summary: dict[str, int]


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    start_time: str
    end_time: str
    result: str
    message: str
    changes: dict[str, int]


class StackManager:
    """Creates, updates, previews and reads KULTA's stacks (thread-safe per stack)."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.backend = settings.backend()
        #: the backend read directly (no CLI process): files, or PostgreSQL through psql; None otherwise
        self.direct: FileBackend | PostgresBackend | None = _direct_reader(self.backend)
        self._stacks: dict[str, auto.Stack] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        #: with replicas on Kubernetes: whether the replica that wrote a lock (its hostname,
        #: the lock's time) is gone, so its lock is dead (``kulta.adapters.leases.ReplicaPods``)
        self.owner_gone: Callable[[str, datetime], bool] | None = None

    # -- workspace -----------------------------------------------------------------
    def stack_lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def _stack(self, name: str, program: Callable[[], None] | None = None) -> auto.Stack:
        with self._guard:
            stack = self._stacks.get(name)
        if stack is None:
            work_dir = _make_dir(self.settings.state_dir / "workspaces" / name)
            opts = auto.LocalWorkspaceOptions(
                work_dir=str(work_dir),
                pulumi_home=self.settings.pulumi_home or None,
                env_vars=self.settings.env(),
                project_settings=auto.ProjectSettings(
                    name=PULUMI_PROJECT,
                    runtime="python",
                    backend=auto.ProjectBackend(url=self.settings.resolved_backend()),
                ),
                secrets_provider="passphrase",
            )
            stack = _backend(
                f"opening Pulumi stack {name}",
                lambda: auto.create_or_select_stack(
                    stack_name=name, project_name=PULUMI_PROJECT, program=program or _no_program, opts=opts
                ),
                self.backend.secrets,
            )
            with self._guard:
                self._stacks[name] = stack
        if program is not None:
            stack.workspace.program = program
        return stack

    def open(self, name: str) -> None:
        """Create or select the stack's workspace now (once per process and stack)."""
        with self.stack_lock(f"open:{name}"):
            self._stack(name)

    def exists(self, name: str) -> bool:
        return name in self.list_stacks()

    def list_stacks(self) -> list[str]:
        if self.direct is not None:
            return self.direct.stack_names()
        ws = auto.LocalWorkspace(
            work_dir=str(_make_dir(self.settings.state_dir / "workspaces" / "_list")),
            pulumi_home=self.settings.pulumi_home or None,
            env_vars=self.settings.env(),
            project_settings=auto.ProjectSettings(
                name=PULUMI_PROJECT, runtime="python", backend=auto.ProjectBackend(url=self.settings.resolved_backend())
            ),
        )
        return sorted(s.name for s in _backend("listing stacks", ws.list_stacks, self.backend.secrets))

    # -- reads -----------------------------------------------------------------------
    def outputs(self, name: str) -> dict[str, Any]:
        """The last update's outputs (empty for a new stack).

        Read from one ``pulumi stack export`` (the root Stack resource's outputs)
        instead of the Automation API's two ``stack output`` calls: KULTA's
        outputs hold no secrets, and every CLI call costs ~0.3 s per step. A file
        backend is read directly, with no process at all.
        """
        if self.direct is not None:
            return self.direct.outputs(name)
        stack = self._stack(name)
        exported = _backend(f"reading the state of stack {name}", stack.export_stack, self.backend.secrets)
        deployment = exported.deployment or {}
        for resource in deployment.get("resources", []) or []:
            if resource.get("type") == "pulumi:pulumi:Stack":
                return dict(resource.get("outputs", {}) or {})
        return {}

    def outputs_of(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """The outputs of several stacks (``kulta status``): one ``psql`` on PostgreSQL."""
        if isinstance(self.direct, PostgresBackend):
            return self.direct.outputs_of(names)
        return {name: self.outputs(name) for name in names}

    def tags(self, name: str) -> dict[str, str]:
        """Every tag of a stack, in one read; tags live in the backend (DIY backends too,
        since Pulumi 3.211)."""
        if self.direct is not None:
            return self.direct.tags(name)
        stack = self._stack(name)
        tags = _backend(
            f"reading the tags of stack {name}", lambda: stack.workspace.list_tags(name), self.backend.secrets
        )
        return {str(k): str(v) for k, v in tags.items() if v is not None}

    def get_tag(self, name: str, key: str) -> str | None:
        return self.tags(name).get(key)

    def set_tag(self, name: str, key: str, value: str) -> None:
        stack = self._stack(name)
        _backend(
            f"setting tag {key} on stack {name}",
            lambda: stack.workspace.set_tag(name, key, value),
            self.backend.secrets,
        )

    def history(self, name: str, page_size: int = 100) -> list[HistoryEntry]:
        stack = self._stack(name)
        entries = []
        summaries = _backend(
            f"reading the history of stack {name}",
            lambda: stack.history(page_size=page_size, page=1),
            self.backend.secrets,
        )
        # (newest first)
        for index, h in enumerate(summaries):
            entries.append(
                HistoryEntry(
                    # file backends report no version: number updates oldest = 1
                    version=h.version or len(summaries) - index,
                    start_time=h.start_time.isoformat(),
                    end_time=h.end_time.isoformat() if h.end_time else "",
                    result=h.result,
                    message=h.message or "",
                    changes={str(k): int(v) for k, v in (h.resource_changes or {}).items()},
                )
            )
        return entries

    # -- writes ----------------------------------------------------------------------
    def up(
        self,
        name: str,
        program: Callable[[], None],
        message: str,
        on_output: Callable[[str], None] | None = None,
        refresh: bool = False,
    ) -> UpdateReport:
        """Run one update; the outputs returned are what the engine recorded.

        One CLI process: ``Stack.up`` of the Automation API runs ``stack output``
        twice and ``stack history`` once after every update (~0.9 s); here the
        resource changes come from the update's own event stream and the outputs
        from the file backend's checkpoint (or one ``stack export`` elsewhere).

        Dead locks: the file backend's lock directory is checked before the
        update (a directory listing). On PostgreSQL reading the lock rows costs a
        ``psql`` process, so they are read only when Pulumi reports the stack
        locked; a dead lock of this host is then deleted and the update run once
        more (Pulumi takes its lock before the engine changes anything).

        Raises ``UnrecordedUpdateError`` instead of updating when a dead lock's
        update recorded its outputs but no history entry (see ``unrecorded_update``).
        """
        stack = self._stack(name, program)
        on_lock_error = isinstance(self.direct, PostgresBackend)
        if not on_lock_error and self.recover_dead_lock(name):
            self._refuse_if_unrecorded(name)
        start = time.monotonic()
        events: list[auto.EngineEvent] = []

        def update() -> None:
            try:
                _up(stack, program, message, refresh=refresh, on_event=events.append, on_output=on_output)
            except auto.errors.ConcurrentUpdateError:
                if not (on_lock_error and self.recover_dead_lock(name)):
                    raise
                self._refuse_if_unrecorded(name)
                events.clear()
                _up(stack, program, message, refresh=refresh, on_event=events.append, on_output=on_output)

        self._engine("update", name, update)
        seconds = time.monotonic() - start
        changes: dict[str, int] = {}
        for event in events:
            if event.summary_event is not None:
                changes = {str(getattr(k, "value", k)): int(v) for k, v in event.summary_event.resource_changes.items()}
        return UpdateReport(outputs=self.outputs(name), changes=changes, seconds=seconds)

    def _engine(self, verb: str, name: str, call: Callable[[], _T]) -> _T:
        """One engine operation with its failures in KULTA's terms: another process's lock
        is ``StackLockedError`` (retry), the engine's own failure ``StepFailedError``
        with its last lines, a CLI or backend that cannot run ``DependencyError``."""
        try:
            return call()
        except auto.errors.ConcurrentUpdateError as exc:
            raise StackLockedError(f"stack {name} is being updated by another process; retrying later") from exc
        except auto.errors.CommandError as exc:
            raise StepFailedError(f"Pulumi {verb} of stack {name} failed: {_tail(exc, self.backend.secrets)}") from exc
        except (OSError, ValueError, RuntimeError) as exc:
            detail = redact_text(f"{type(exc).__name__}: {exc}", self.backend.secrets)
            raise DependencyError(Dependency.PULUMI_BACKEND, f"Pulumi {verb} of stack {name}: {detail}") from exc

    def unrecorded_update(self, name: str) -> str:
        """The message of the update that recorded the current outputs, when the
        stack's history has no succeeded entry for it ("" when it has, or when the
        outputs do not say which update recorded them).

        Pulumi checkpoints an update's outputs as the program registers them and
        writes the history entry only after the engine has shut its plugins down
        (``diy`` backend ``apply``): a ``kill -9`` in that last ~0.1 s leaves the
        state applied and recorded with no entry in ``pulumi stack history``.
        """
        message = self.outputs(name).get(OUTPUT_UPDATE_MESSAGE)
        if not isinstance(message, str) or not message:
            return ""
        entries = self.history(name, page_size=UNRECORDED_LOOKBACK)
        for entry in entries:
            if entry.result == SUCCEEDED:
                return "" if entry.message == message else message
        # no succeeded update at all: the outputs' update is the one missing; more
        # failed attempts than were read: undecided, and a step is never recorded twice
        return message if len(entries) < UNRECORDED_LOOKBACK else ""

    def _refuse_if_unrecorded(self, name: str) -> None:
        message = self.unrecorded_update(name)
        if message:
            log.warning(
                "the last update was killed after recording its outputs and before its history entry",
                extra={"stack": name, "update": message},
            )
            raise UnrecordedUpdateError(name, message)

    def preview(self, name: str, program: Callable[[], None]) -> PreviewReport:
        stack = self._stack(name, program)
        events: list[auto.EngineEvent] = []
        result = self._engine("preview", name, lambda: stack.preview(on_event=events.append, color="never", diff=True))
        changes = []
        for ev in events:
            pre = ev.resource_pre_event
            if pre is None:
                continue
            md = pre.metadata
            if md.type == "pulumi:pulumi:Stack" or md.type.startswith("pulumi:providers:"):
                continue
            detailed: dict[str, tuple[Any, Any]] = {}
            old = (md.old.inputs if md.old else None) or {}
            new = (md.new.inputs if md.new else None) or {}
            for path in list(md.detailed_diff or {}) or list(md.diffs or []):
                detailed[path] = (property_value(old, path), property_value(new, path))
            changes.append(
                PreviewChange(
                    urn_name=md.urn.split("::")[-1],
                    type=md.type,
                    op=md.op.value if hasattr(md.op, "value") else str(md.op),
                    diffs=tuple(md.diffs or ()),
                    detailed=detailed,
                    inputs=dict(new),
                )
            )
        summary = {str(getattr(k, "value", k)): int(v) for k, v in result.change_summary.items()}
        return PreviewReport(changes=tuple(changes), summary=summary)

    def destroy(self, name: str, remove: bool = True) -> None:
        stack = self._stack(name)

        def destroy() -> None:
            stack.destroy(color="never", suppress_progress=True)
            if remove:
                stack.workspace.remove_stack(name)

        self._engine("destroy", name, destroy)
        with self._guard:
            self._stacks.pop(name, None)

    # -- locks -----------------------------------------------------------------------
    def lock_dir(self, name: str) -> Path | None:
        """The file backend's lock directory of a stack (``None`` for other backends).

        Resolved anew each time: the default backend directory is (re)created here,
        so one replaced by a file is reported before an update."""
        root = file_backend_root(self.settings.resolved_backend())
        if root is None:
            return None
        return root / lock_prefix(PULUMI_PROJECT, name)

    def recover_dead_lock(self, name: str) -> bool:
        """Remove this stack's lock when its owner was a process of this host that is gone.

        A backend directory that cannot be read (replaced by a file, unmounted, no
        permission) is a DependencyError like any other backend outage. On
        PostgreSQL the lock rows are read and deleted through ``psql``; without
        ``psql`` nothing is recovered (the update then reports the lock).
        """
        if isinstance(self.direct, PostgresBackend):
            return self.direct.recover_dead_locks(name, socket.gethostname(), _alive, self.owner_gone)
        try:
            return self._recover_dead_lock(name)
        except OSError as exc:
            raise DependencyError(
                Dependency.PULUMI_BACKEND, f"checking the lock of stack {name}: {type(exc).__name__}: {exc}"
            ) from exc

    def _recover_dead_lock(self, name: str) -> bool:
        directory = self.lock_dir(name)
        if directory is None or not directory.is_dir():
            return False
        removed = False
        host = socket.gethostname()
        for lock in directory.glob("*.json"):
            try:
                info = json.loads(lock.read_text())
            except (OSError, ValueError):
                continue
            if not lock_is_dead(info, host, _alive, self.owner_gone):
                continue
            pid = info.get("pid")
            log.warning(
                "removing stale Pulumi lock left by dead process",
                extra={"stack": name, "pid": pid, "lock": lock.name},
            )
            lock.unlink(missing_ok=True)
            lock.with_name(lock.name + ATTRS_SUFFIX).unlink(missing_ok=True)
            removed = True
        for attrs in directory.glob(f"*.json{ATTRS_SUFFIX}"):
            # the blob library's metadata file of a lock already gone (left by a kill -9)
            if not attrs.with_name(attrs.name.removesuffix(ATTRS_SUFFIX)).exists():
                attrs.unlink(missing_ok=True)
        return removed


def _direct_reader(backend: BackendUrl) -> FileBackend | PostgresBackend | None:
    """The direct reader of ``backend``: files, or PostgreSQL when ``psql`` is installed."""
    if backend.kind is BackendKind.FILE:
        root = file_backend_root(backend.engine_url)
        return FileBackend(root, PULUMI_PROJECT) if root is not None else None
    if backend.kind is BackendKind.POSTGRES:
        psql = find_psql()
        if psql is None:
            log.info("psql not found: the PostgreSQL backend is read through the Pulumi CLI (slower)")
            return None
        return PostgresBackend(backend, PULUMI_PROJECT, psql)
    return None


def _make_dir(path: Path) -> Path:
    """Create a state directory; a failure (a file in its place, no permission, a
    full disk) is an outage of the backend, never a traceback."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DependencyError(Dependency.PULUMI_BACKEND, f"creating {path}: {type(exc).__name__}: {exc}") from exc
    return path


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process. A zombie (killed, not yet reaped: where
    PID 1 is no real init, that can last) holds no lock, so it counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


#: one step of a Pulumi property path: ``["a.b/c"]`` (a key with dots or slashes), ``[0]`` or ``name``
_PROPERTY_STEP = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.\[\]]+)')


def property_value(data: Any, path: str) -> Any:
    """The value at a Pulumi detailed-diff ``path`` in ``data``, or None where there is none.

    ``metadata.annotations["pulumi.com/waitFor"]`` is the key ``pulumi.com/waitFor`` of
    ``metadata.annotations`` (a quoted key keeps its dots and slashes);
    ``spec.rules[0].backendRefs[1].weight`` indexes lists.
    """
    cur = data
    for quoted, index, name in _PROPERTY_STEP.findall(path):
        part = re.sub(r"\\(.)", r"\1", quoted) if quoted else (index or name)
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        elif isinstance(cur, list) and index and int(index) < len(cur):
            cur = cur[int(index)]
        else:
            return None
    return cur


def _tail(exc: auto.errors.CommandError, secrets: tuple[str, ...] = ()) -> str:
    """The engine's Diagnostics section (what failed and why), else the last lines; redacted."""
    text = redact_text(str(exc), secrets)
    if "Diagnostics:" in text:
        section = text.split("Diagnostics:", 1)[1]
        for end in ("\nOutputs:", "\nResources:"):
            section = section.split(end, 1)[0]
        lines = [ln.rstrip() for ln in section.splitlines() if ln.strip()]
        if lines:
            return "\n".join(lines[: ERROR_TAIL_LINES * 3])
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[-ERROR_TAIL_LINES:])


def _up(
    stack: auto.Stack,
    program: Callable[[], None],
    message: str,
    *,
    refresh: bool,
    on_event: Callable[[auto.EngineEvent], None],
    on_output: Callable[[str], None] | None,
) -> None:
    """``Stack.up`` without its follow-up calls: the inline program served over gRPC,
    one ``pulumi up`` process, its engine events collected.

    Uses the Automation API's own pieces (``LanguageServer``, the event-log
    server, ``_run_pulumi_cmd_sync``), so the CLI sees exactly what ``Stack.up``
    gives it; they are private, so a Pulumi SDK upgrade must be checked against
    them (as for ``kulta/langhost.py``, ADR 0004).
    """
    args = ["up", "--yes", "--skip-preview", "--message", message, "--color", "never", "--suppress-progress"]
    if refresh:
        args.append("--refresh")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=_GRPC_CHANNEL_OPTIONS)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(program), server)
    port = server.add_insecure_port(address="127.0.0.1:0")
    server.start()
    args += [f"--client=127.0.0.1:{port}", "--exec-kind", ExecKind.INLINE.value]
    log_file, watcher, stop_event, temp_dir, events_server = stack._setup_event_log(
        "up", on_event, stack.workspace.pulumi_version
    )
    args += ["--event-log", log_file]
    try:
        stack._run_pulumi_cmd_sync(args, on_output)
    finally:
        _cleanup(temp_dir, watcher, stop_event, lambda: server.stop(0), events_server)


def _no_program() -> None:
    """Placeholder program for stacks opened only to read outputs, config or history."""
