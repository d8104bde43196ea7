"""Read Rollout files from a Git branch into a local cache checkout, safely.

The reconciler's desired state lives in Git, so this adapter decides what
"desired" means. Three rules shape it:

* A failure to *read* Git is never a change of desired state. An unreachable
  remote, a 401 or a timeout raises ``TemporaryError`` and the last good
  snapshot stays as it was; the caller keeps running rollouts untouched.
* The cache checkout is ours. It is cloned once and then only fetched and
  hard-reset to ``origin/<branch>``, so a force-push simply moves the snapshot
  to the new head and stray local edits are discarded.
* Credentials never reach a log line, an error, a process argument list or
  ``.git/config``. HTTPS tokens are handed to git per command through
  ``GIT_CONFIG_*`` environment variables (an ``http.extraHeader``), and every
  message built from git's output goes through ``kulta.redact``.

The repository itself is untrusted input: which files a snapshot holds is
decided by ``kulta.adapters.repo_tree`` (symbolic links confined to the work
tree before anything behind them is looked at, regular files only, bounded
work per sync). Every exception git, GitPython or the OS raises here is
translated into KULTA's error tree where the call is made.
"""

from __future__ import annotations

import base64
import enum
import errno
import hashlib
import logging
import os
import random
import re
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import git

from kulta.adapters.repo_tree import (
    MAX_TOTAL_BYTES,
    MAX_WALK_ENTRIES,
    TreeError,
    TreeLimits,
    TreeProblem,
    printable,
    select_files,
)
from kulta.errors import ConfigError, KultaError, PermanentError, TemporaryError
from kulta.redact import UrlCredentials, redact_text, split_url_credentials

__all__ = [
    "DEFAULT_USERNAME",
    "RepoKind",
    "GitSnapshot",
    "GitSource",
    "GitSourceConfig",
    "next_retry_delay",
]

log = logging.getLogger(__name__)

DEFAULT_USERNAME = "x-access-token"
REMOTE_NAME = "origin"
DEFAULT_TIMEOUT_SECONDS = 120.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0

_COMMIT_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
_FULL_COMMIT_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_RFC3339_UTC = "%Y-%m-%dT%H:%M:%SZ"
_TIMEOUT_MARKER = "Timeout:"
# What a failing GitPython call raises: its own errors (GitCommandError, GitCommandNotFound,
# InvalidGitRepositoryError, ...), OSError from the process or the file system, and ValueError
# (a NUL in an argument, an unexpected repository state; UnicodeDecodeError is one too).
_GIT_FAILURES = (git.GitError, OSError, ValueError)
#: a full commit id as the stacks record it (``gitCommit``)
_SHA = re.compile(r"[0-9a-f]{40}")
# File-system errors that will not go away without a human (a read-only or misplaced cache).
_NEEDS_A_HUMAN = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG})
# git check-ref-format forbids these in a branch name; a leading '-' would
# also be read as an option.
_BAD_BRANCH_RE = re.compile(r"(^[-/.])|(\.\.)|([\x00-\x20~^:?*\[\\\x7f])|(@\{)|(/$)|(\.lock$)|(//)")
_MISSING_BRANCH_MARKERS = ("couldn't find remote ref", "not found in upstream")
_PROGRESS_PREFIXES = ("Cloning into", "warning: You appear to have cloned")
_HTTP_SCHEMES = frozenset({"http", "https"})
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
_SCP_LIKE_RE = re.compile(r"^[A-Za-z0-9._\-]+@[A-Za-z0-9.\-\[\]:]+:[^/].*$|^[A-Za-z0-9.\-]+:[^/].*$")


class RepoKind(enum.Enum):
    """How git reaches the remote, which decides how credentials are passed."""

    LOCAL = "local"
    HTTP = "http"
    SSH = "ssh"


def _classify(repo: str) -> RepoKind:
    if "://" in repo:
        try:
            scheme = urlsplit(repo).scheme.lower()
        except ValueError as exc:  # e.g. an unbalanced [ in an IPv6 host
            raise ConfigError(f"--repo {redact_text(repo)!r} is not a valid URL: {exc}") from None
        if scheme == "file":
            return RepoKind.LOCAL
        if scheme in _HTTP_SCHEMES:
            return RepoKind.HTTP
        if scheme in _SSH_SCHEMES:
            return RepoKind.SSH
        raise ConfigError(f"--repo: scheme {scheme!r} is not supported; use a path, file://, https:// or ssh://")
    if "::" in repo:
        # git's remote-helper syntax (ext::, fd::) can run arbitrary commands.
        raise ConfigError("--repo: remote-helper URLs (<transport>::<address>) are not supported")
    if _SCP_LIKE_RE.match(repo):
        try:
            local = Path(repo).exists()
        except OSError as exc:
            raise ConfigError(f"--repo: cannot tell whether {repo!r} is a local path: {exc.strerror or exc}") from None
        if not local:
            return RepoKind.SSH
    return RepoKind.LOCAL


def _quoted(text: str) -> str:
    """``text`` in single quotes for a message, with control and undecodable characters escaped."""
    return f"'{printable(text)}'"


def _check_text(flag: str, value: str | None, shown: str) -> None:
    """Refuse a flag value with control or invisible characters (a NUL would crash git's argv)."""
    if value is not None and printable(value) != value:
        raise ConfigError(f"{flag}: {shown} holds control or invisible characters")


@dataclass(frozen=True)
class GitSourceConfig:
    """Where the Rollout files live and how to authenticate.

    ``token_env`` names the environment variable holding an HTTPS token; the
    token itself is read at each sync and never stored here, so this object
    is safe to log.
    """

    repo: str
    _: KW_ONLY
    branch: str = "main"
    path: str = "."
    cache_dir: Path
    token_env: str | None = None
    username: str = DEFAULT_USERNAME
    ssh_key_path: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_entries: int = MAX_WALK_ENTRIES
    max_total_bytes: int = MAX_TOTAL_BYTES
    kind: RepoKind = field(init=False)

    def __post_init__(self) -> None:
        shown_repo = _quoted(redact_text(self.repo))
        _check_text("--repo", self.repo, shown_repo)
        _check_text("--branch", self.branch, _quoted(self.branch))
        _check_text("--path", self.path, _quoted(self.path))
        _check_text("--ssh-key", self.ssh_key_path, _quoted(self.ssh_key_path or ""))
        _check_text("--token-env", self.token_env, _quoted(self.token_env or ""))
        _check_text("username", self.username, "the user name")
        if not self.repo or self.repo.startswith("-"):
            raise ConfigError(f"--repo: {shown_repo} is not a repository URL or path")
        if _BAD_BRANCH_RE.search(self.branch) or not self.branch:
            raise ConfigError(f"--branch: {self.branch!r} is not a valid branch name")
        pure = PurePosixPath(self.path)
        if pure.is_absolute() or ".." in pure.parts or self.path.startswith("-"):
            raise ConfigError(f"--path: {self.path!r} must be relative to the repository root, without '..'")
        if self.timeout_seconds <= 0:
            raise ConfigError(f"git timeout must be positive, got {self.timeout_seconds}")
        if self.max_entries <= 0 or self.max_total_bytes <= 0:
            raise ConfigError(
                f"git walk limits must be positive, got {self.max_entries} entries and {self.max_total_bytes} bytes"
            )
        kind = _classify(self.repo)
        object.__setattr__(self, "kind", kind)
        if self.token_env is not None and kind is not RepoKind.HTTP:
            raise ConfigError(f"--repo: a token ({self.token_env}) only applies to http(s) URLs")
        if self.ssh_key_path is not None and kind is not RepoKind.SSH:
            raise ConfigError("--repo: an ssh key only applies to ssh URLs")
        if kind is RepoKind.SSH and split_url_credentials(self.repo).password is not None:
            # git would store it in .git/config and show it in process lists; ssh never uses it.
            raise ConfigError(f"--repo {redact_text(self.repo)}: an ssh URL cannot carry a password; use --ssh-key")
        if kind is RepoKind.HTTP:
            creds = split_url_credentials(self.repo)
            if creds.password is not None and self.token_env is not None:
                raise ConfigError(
                    f"--repo {redact_text(self.repo)}: give the token either in the URL "
                    f"or in {self.token_env}, not both"
                )

    @property
    def limits(self) -> TreeLimits:
        """The bounds on one sync's walk of the checkout."""
        return TreeLimits(max_entries=self.max_entries, max_total_bytes=self.max_total_bytes)


@dataclass(frozen=True)
class GitSnapshot:
    """One synced commit and the Rollout files it holds.

    ``files`` are absolute paths inside the shared cache checkout at
    ``workdir``: they describe this commit until the next successful sync.
    ``changed`` is False when the previous successful sync of the same source
    returned the same commit: the files, and so anything parsed from them,
    are the same as then. It does not take part in equality (a snapshot is
    its commit and files).
    """

    commit: str
    commit_time: str
    branch: str
    workdir: Path
    files: tuple[Path, ...]
    changed: bool = field(default=True, compare=False)

    def relative(self, file: Path) -> str:
        """``file`` as a POSIX path relative to the repository root (how Git and the user name it)."""
        return file.relative_to(self.workdir).as_posix()


def next_retry_delay(
    failures: int,
    *,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_CAP_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after ``failures`` consecutive failed syncs: base * 2^(failures-1), capped.

    With ``rng`` the delay is jittered into ``[delay/2, delay]`` so many
    reconcilers do not hammer a recovering Git server in step.
    """
    if failures <= 0:
        return 0.0
    exponent = min(failures - 1, 64)
    delay = min(cap, base * float(2**exponent))
    if rng is not None:
        delay = delay / 2 + rng.random() * delay / 2
    return delay


def _cache_key(display_url: str, branch: str) -> str:
    return hashlib.sha256(f"{display_url}\n{branch}".encode()).hexdigest()[:16]


def _rfc3339_utc(timestamp: str) -> str | None:
    """A committer timestamp (seconds since the epoch, as git prints ``%ct``) in RFC 3339 UTC, or None."""
    try:
        return datetime.fromtimestamp(int(timestamp), UTC).strftime(_RFC3339_UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _os_detail(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class GitSource:
    """A branch of a Git repository, mirrored into ``cache_dir`` and read as snapshots."""

    def __init__(self, config: GitSourceConfig) -> None:
        self._config = config
        creds = (
            split_url_credentials(config.repo)
            if config.kind is RepoKind.HTTP
            else UrlCredentials(config.repo, None, None)
        )
        self._url_username = creds.username
        self._url_password = creds.password
        if config.kind is RepoKind.LOCAL and "://" not in config.repo:
            try:
                self._url = str(Path(config.repo).expanduser().resolve())
            except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop or no home directory
                raise ConfigError(f"--repo {config.repo!r}: cannot resolve the local path: {exc}") from None
        else:
            self._url = creds.url
        self._display_url = redact_text(self._url)
        self._workdir = config.cache_dir / _cache_key(self._display_url, config.branch)
        self._last: GitSnapshot | None = None
        self._failures = 0
        #: commits found in the cache (a fetched commit stays): asked of git once each
        self._known: set[str] = set()

    @property
    def config(self) -> GitSourceConfig:
        return self._config

    @property
    def display_url(self) -> str:
        """The remote URL without credentials, safe for logs and events."""
        return self._display_url

    @property
    def workdir(self) -> Path:
        """The cache checkout this source owns."""
        return self._workdir

    @property
    def last_snapshot(self) -> GitSnapshot | None:
        """The last snapshot a sync produced, kept across failed syncs (None before the first success)."""
        return self._last

    def knows_commit(self, sha: str) -> bool:
        """Whether the cache holds commit ``sha``: False when this replica has not fetched it
        yet (another replica's snapshot is newer), or when there is no cache."""
        if not _SHA.fullmatch(sha):
            return False
        if sha in self._known:
            return True
        try:
            repo = git.Repo(self._workdir)
            repo.git.cat_file("-e", f"{sha}^{{commit}}", kill_after_timeout=self._timeout())
        except (git.GitCommandError, git.NoSuchPathError, git.InvalidGitRepositoryError):
            return False  # not there, or no clone yet (the next sync makes one)
        except _GIT_FAILURES as exc:
            raise self._failure(f"look for commit {sha[:12]} in the git cache {self._workdir}", exc, ()) from None
        self._known.add(sha)
        return True

    @property
    def consecutive_failures(self) -> int:
        """Failed syncs since the last good one; feed it to ``next_retry_delay``."""
        return self._failures

    # -- credentials -------------------------------------------------------------------

    def _credentials(self) -> tuple[str, str] | None:
        cfg = self._config
        if cfg.token_env is not None:
            token = os.environ.get(cfg.token_env, "")
            if not token:
                raise ConfigError(f"--repo {self._display_url}: environment variable {cfg.token_env} is empty or unset")
            return (cfg.username, token)
        if self._url_password is not None:
            return (self._url_username or cfg.username, self._url_password)
        if self._url_username is not None:
            # A bare username in an https URL is often a token (https://TOKEN@host).
            return (self._url_username, "")
        return None

    def _secrets(self, creds: tuple[str, str] | None) -> tuple[str, ...]:
        if creds is None:
            return ()
        user, secret = creds
        basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
        values = [basic, secret]
        if user != self._config.username:
            values.append(user)
        return tuple(v for v in values if v)

    def _command_env(self, creds: tuple[str, str] | None) -> dict[str, str]:
        """Environment for one git command: no prompts, credentials only in memory."""
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
        }
        config: list[tuple[str, str]] = []
        if creds is not None:
            user, secret = creds
            basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
            # An empty helper list first, so no credential helper stores or prompts.
            config.append(("credential.helper", ""))
            config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
        if self._config.ssh_key_path is not None:
            try:
                key = shlex.quote(str(Path(self._config.ssh_key_path).expanduser()))
            except RuntimeError as exc:  # ~user/... for an unknown user
                raise ConfigError(f"--ssh-key {self._config.ssh_key_path!r}: {exc}") from None
            env["GIT_SSH_COMMAND"] = f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes"
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key_name, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key_name
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env

    # -- sync ---------------------------------------------------------------------------

    def sync(self) -> GitSnapshot:
        """Fetch the branch (cloning on first use) and return the snapshot at its head.

        Raises ``TemporaryError`` when the remote or the new commit cannot be
        read (the previous snapshot stays, and so does its checkout: after a
        commit whose files cannot be selected the checkout is put back to the
        last good commit), and ``ConfigError`` when the configuration cannot
        work (missing token variable, no git, a branch or path that does not
        exist or a limit reached on the first sync).
        """
        creds = self._credentials()
        secrets = self._secrets(creds)
        env = self._command_env(creds)
        try:
            repo = self._update_cache(env, secrets)
            snapshot = self._read_or_restore(repo, secrets)
        except TemporaryError as exc:
            self._failures += 1
            log.warning(
                "git sync failed (%d in a row): %s",
                self._failures,
                exc,
                extra={"repo": self._display_url, "branch": self._config.branch},
            )
            raise
        previous = self._last
        self._last = snapshot
        self._failures = 0
        if snapshot.changed:
            log.info(
                "git sync: %s@%s is at %s (%d rollout files)",
                self._display_url,
                self._config.branch,
                snapshot.commit[:12],
                len(snapshot.files),
                extra={"repo": self._display_url, "branch": snapshot.branch, "commit": snapshot.commit},
            )
        elif previous is not None:
            log.debug("git sync: %s@%s unchanged at %s", self._display_url, snapshot.branch, snapshot.commit[:12])
        return snapshot

    def _timeout(self) -> float:
        return self._config.timeout_seconds

    def _failure(self, action: str, exc: Exception, secrets: tuple[str, ...]) -> KultaError:
        """A git/GitPython/OS failure of ``action`` as KULTA's error: no command line, no secret, one line."""
        if isinstance(exc, git.GitCommandNotFound):
            return ConfigError(f"cannot {action}: the git command is not installed or not on PATH")
        if isinstance(exc, git.GitCommandError):
            detail = self._git_detail(exc, secrets)
        elif isinstance(exc, OSError):
            detail = _os_detail(exc)
            if exc.errno in _NEEDS_A_HUMAN:
                return ConfigError(f"cannot {action}: {printable(redact_text(detail, secrets))}")
        else:
            detail = str(exc) or type(exc).__name__
        return TemporaryError(f"cannot {action}: {printable(redact_text(detail, secrets))}")

    def _update_cache(self, env: Mapping[str, str], secrets: tuple[str, ...]) -> git.Repo:
        repo = self._open_cache(secrets)
        if repo is None:
            return self._clone(env, secrets)
        self._fetch(repo, env, secrets)
        branch = self._config.branch
        remote_ref = f"refs/remotes/{REMOTE_NAME}/{branch}"
        try:
            repo.git.checkout("--force", "-B", branch, remote_ref, kill_after_timeout=self._timeout())
            repo.git.reset("--hard", remote_ref, kill_after_timeout=self._timeout())
            repo.git.clean("-ffdx", kill_after_timeout=self._timeout())
        except _GIT_FAILURES as exc:
            error = self._failure(f"reset the cache checkout {self._workdir} to {REMOTE_NAME}/{branch}", exc, secrets)
            self._restore(repo, secrets)
            raise error from None
        return repo

    def _remove_cache(self, path: Path, secrets: tuple[str, ...]) -> None:
        try:
            shutil.rmtree(path)
        except OSError as exc:
            raise self._failure(f"remove the git cache {path}", exc, secrets) from None

    def _open_cache(self, secrets: tuple[str, ...]) -> git.Repo | None:
        """The existing cache repo, or None (after removing a cache that is not ours or is broken)."""
        try:
            present = self._workdir.exists()
        except OSError as exc:
            raise self._failure(f"look at the git cache {self._workdir}", exc, secrets) from None
        if not present:
            return None
        try:
            repo = git.Repo(self._workdir)
            url = repo.remotes[REMOTE_NAME].url if REMOTE_NAME in repo.remotes else None
            top = repo.working_tree_dir
        except _GIT_FAILURES as exc:
            reason = printable(redact_text(str(exc) or type(exc).__name__, secrets))
            log.warning("removing broken git cache %s: %s", self._workdir, reason)
            self._remove_cache(self._workdir, secrets)
            return None
        own_checkout = top is not None and os.path.realpath(top) == os.path.realpath(self._workdir)
        if not own_checkout or url is None:
            log.warning("removing git cache %s: it is not a clone of its own with an origin", self._workdir)
            self._remove_cache(self._workdir, secrets)
            return None
        if url != self._url:
            try:
                repo.git.remote("set-url", REMOTE_NAME, self._url, kill_after_timeout=self._timeout())
            except _GIT_FAILURES as exc:
                raise self._failure(
                    f"point the git cache {self._workdir} at {self._display_url}", exc, secrets
                ) from None
        return repo

    def _discard_staging(self, staging: Path) -> None:
        """Remove a half-made clone; a failure is logged (the error that made us discard it is raised)."""
        try:
            shutil.rmtree(staging)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("could not remove the unfinished clone %s: %s", staging, _os_detail(exc))

    def _clone(self, env: Mapping[str, str], secrets: tuple[str, ...]) -> git.Repo:
        cfg = self._config
        try:
            cfg.cache_dir.mkdir(parents=True, exist_ok=True)
            # Clone next to the final place and rename: a crash mid-clone leaves no half cache.
            staging = Path(tempfile.mkdtemp(prefix=f".{self._workdir.name}-", dir=cfg.cache_dir))
        except OSError as exc:
            raise self._failure(f"create the git cache directory {cfg.cache_dir}", exc, secrets) from None
        try:
            git.Git(str(cfg.cache_dir)).clone(
                "--branch",
                cfg.branch,
                "--single-branch",
                "--no-tags",
                "--",
                self._url,
                str(staging),
                env=dict(env),
                kill_after_timeout=cfg.timeout_seconds,
            )
        except git.GitCommandError as exc:
            self._discard_staging(staging)
            raise self._remote_error("clone", exc, secrets) from None
        except _GIT_FAILURES as exc:
            self._discard_staging(staging)
            raise self._failure(f"clone {self._display_url}", exc, secrets) from None
        try:
            staging.rename(self._workdir)
            repo = git.Repo(self._workdir)
        except _GIT_FAILURES as exc:
            self._discard_staging(staging)
            raise self._failure(f"move the new clone into {self._workdir}", exc, secrets) from None
        log.info("git cache: cloned %s into %s", self._display_url, self._workdir)
        return repo

    def _fetch(self, repo: git.Repo, env: Mapping[str, str], secrets: tuple[str, ...]) -> None:
        branch = self._config.branch
        refspec = f"+refs/heads/{branch}:refs/remotes/{REMOTE_NAME}/{branch}"
        try:
            repo.git.fetch(
                "--prune",
                "--no-tags",
                REMOTE_NAME,
                refspec,
                env=dict(env),
                kill_after_timeout=self._timeout(),
            )
        except git.GitCommandError as exc:
            raise self._remote_error("fetch", exc, secrets) from None
        except _GIT_FAILURES as exc:
            raise self._failure(f"fetch {self._display_url}", exc, secrets) from None

    def _git_detail(self, exc: git.GitCommandError, secrets: tuple[str, ...]) -> str:
        stderr = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
        text = stderr.strip().removeprefix("stderr:").strip(" '\n")
        if text.startswith(_TIMEOUT_MARKER):
            # GitPython's own message names the whole command line; say what happened instead.
            return f"git did not finish within {self._timeout():g} s and was stopped"
        lines = (line.strip() for line in text.splitlines())
        detail = " ".join(line for line in lines if line and not line.startswith(_PROGRESS_PREFIXES))
        return printable(redact_text(detail or f"git exited with status {exc.status}", secrets))

    def _remote_error(self, action: str, exc: git.GitCommandError, secrets: tuple[str, ...]) -> Exception:
        detail = self._git_detail(exc, secrets)
        where = f"{self._display_url} branch {self._config.branch}"
        if any(marker in detail for marker in _MISSING_BRANCH_MARKERS):
            if self._last is None:
                return ConfigError(f"--branch: {self._config.branch!r} does not exist on {self._display_url}")
            return TemporaryError(
                f"cannot {action} {where}: the branch is gone from the remote; keeping commit {self._last.commit[:12]}"
            )
        return TemporaryError(f"cannot {action} {where}: {detail}{self._keeping()}")

    def _keeping(self) -> str:
        return f"; keeping commit {self._last.commit[:12]}" if self._last is not None else ""

    # -- reading the checkout ---------------------------------------------------------------

    def _read_or_restore(self, repo: git.Repo, secrets: tuple[str, ...]) -> GitSnapshot:
        """The snapshot of the checked-out head; if it cannot be made, the checkout goes back to the last good one."""
        try:
            return self._snapshot(repo, secrets)
        except KultaError:
            self._restore(repo, secrets)
            raise

    def _restore(self, repo: git.Repo, secrets: tuple[str, ...]) -> None:
        last = self._last
        if last is None:
            return
        try:
            repo.git.checkout("--force", "-B", self._config.branch, last.commit, kill_after_timeout=self._timeout())
            repo.git.clean("-ffdx", kill_after_timeout=self._timeout())
        except _GIT_FAILURES as exc:
            # The sync fails anyway (with the error that brought us here); say that the checkout moved.
            log.warning(
                "%s; the cache checkout is no longer at commit %s",
                self._failure(f"put the cache checkout back to commit {last.commit[:12]}", exc, secrets),
                last.commit[:12],
            )

    def _head(self, repo: git.Repo, secrets: tuple[str, ...]) -> tuple[str, str]:
        """The checked-out commit id and its committer time (RFC 3339 UTC)."""
        try:
            out = repo.git.log(
                "-1",
                "--no-show-signature",
                "--no-color",
                "--format=%H%n%ct",
                "HEAD",
                "--",
                kill_after_timeout=self._timeout(),
            )
        except _GIT_FAILURES as exc:
            raise self._failure(f"read the head commit of the cache checkout {self._workdir}", exc, secrets) from None
        commit, _, timestamp = str(out).strip().partition("\n")
        if not _FULL_COMMIT_RE.match(commit):
            raise TemporaryError(
                f"cannot read the head commit of the cache checkout {self._workdir}: git said {_quoted(commit[:80])}"
            )
        commit_time = _rfc3339_utc(timestamp.strip())
        if commit_time is None:
            raise self._content_error(
                commit,
                f"commit {commit[:12]} has a committer date KULTA cannot represent ({_quoted(timestamp[:40])})",
            )
        return commit, commit_time

    def _content_error(self, commit: str, message: str) -> KultaError:
        """What the new commit holds cannot be used: a ConfigError before the first good sync, then temporary.

        Once KULTA runs rollouts from a good commit, a bad push must not stop
        the loop nor read as "every rollout deleted": the last snapshot stays.
        """
        text = f"{message} (on {self._display_url} branch {self._config.branch} at commit {commit[:12]})"
        if self._last is None:
            return ConfigError(text)
        return TemporaryError(f"{text}{self._keeping()}")

    def _snapshot(self, repo: git.Repo, secrets: tuple[str, ...]) -> GitSnapshot:
        commit, commit_time = self._head(repo, secrets)
        cfg = self._config
        try:
            selection = select_files(self._workdir, cfg.path, cfg.limits)
        except TreeError as exc:
            if exc.problem is TreeProblem.UNREADABLE:
                raise TemporaryError(f"cannot read the cache checkout {self._workdir}: {exc}") from None
            raise self._content_error(commit, f"--path {_quoted(cfg.path)} {exc}") from None
        for refusal in selection.refused:
            log.warning(
                "git sync: %s (commit %s)",
                refusal,
                commit[:12],
                extra={"repo": self._display_url, "branch": cfg.branch, "commit": commit},
            )
        return GitSnapshot(
            commit=commit,
            commit_time=commit_time,
            branch=cfg.branch,
            workdir=self._workdir,
            files=selection.files,
            changed=self._last is None or self._last.commit != commit,
        )

    # -- history helpers ---------------------------------------------------------------------

    def _repo(self) -> git.Repo:
        try:
            return git.Repo(self._workdir)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise PermanentError(f"no git cache at {self._workdir}: call sync() first") from None
        except _GIT_FAILURES as exc:
            raise self._failure(f"open the git cache {self._workdir}", exc, ()) from None

    def _require_commit(self, repo: git.Repo, commit: str) -> str:
        if not _COMMIT_RE.match(commit):
            raise PermanentError(f"{_quoted(commit)} is not a commit id")
        try:
            status, out, _ = repo.git.rev_parse(
                "--verify",
                "--quiet",
                f"{commit}^{{commit}}",
                with_extended_output=True,
                with_exceptions=False,
                kill_after_timeout=self._timeout(),
            )
        except _GIT_FAILURES as exc:
            raise self._failure(f"look up commit {commit[:12]} in the git cache", exc, ()) from None
        if status != 0:
            raise PermanentError(
                f"commit {commit[:12]} is not in the git cache of {self._display_url}; treat every file as changed"
            )
        return str(out).strip()

    def changed_files(self, old_commit: str, new_commit: str) -> tuple[str, ...]:
        """Repository-relative POSIX paths added, modified or deleted between two commits, sorted.

        A rename lists both the old and the new path. A name that is not UTF-8
        text of printable characters (which a snapshot never holds) is shown
        with ``\\xNN`` escapes. Raises ``PermanentError`` when a commit is
        unknown to the cache (e.g. it was never fetched).
        """
        repo = self._repo()
        old = self._require_commit(repo, old_commit)
        new = self._require_commit(repo, new_commit)
        try:
            out = repo.git.diff("--name-only", "--no-renames", "-z", old, new, "--", kill_after_timeout=self._timeout())
        except _GIT_FAILURES as exc:
            raise self._failure(f"compare commits {old[:12]} and {new[:12]}", exc, ()) from None
        return tuple(sorted(printable(name) for name in str(out).split("\0") if name))

    def file_exists_at(self, commit: str, relpath: str) -> bool:
        """Whether ``relpath`` (repository-relative POSIX path) is a file at ``commit``."""
        repo = self._repo()
        resolved = self._require_commit(repo, commit)
        pure = PurePosixPath(relpath)
        if pure.is_absolute() or ".." in pure.parts or printable(relpath) != relpath:
            raise PermanentError(f"{_quoted(relpath)} is not a repository-relative path")
        try:
            status, out, _ = repo.git.cat_file(
                "-t",
                f"{resolved}:{pure.as_posix()}",
                with_extended_output=True,
                with_exceptions=False,
                kill_after_timeout=self._timeout(),
            )
        except _GIT_FAILURES as exc:
            raise self._failure(f"look up {_quoted(relpath)} at commit {resolved[:12]}", exc, ()) from None
        return status == 0 and str(out).strip() == "blob"
