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
"""

from __future__ import annotations

import base64
import enum
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
from datetime import UTC
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import git

from kulta.errors import ConfigError, PermanentError, TemporaryError
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
ROLLOUT_SUFFIXES = frozenset({".yaml", ".yml"})
DEFAULT_TIMEOUT_SECONDS = 120.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0

_GLOB_CHARS = frozenset("*?[")
_COMMIT_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
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
        scheme = urlsplit(repo).scheme.lower()
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
    if _SCP_LIKE_RE.match(repo) and not Path(repo).exists():
        return RepoKind.SSH
    return RepoKind.LOCAL


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
    kind: RepoKind = field(init=False)

    def __post_init__(self) -> None:
        if not self.repo or self.repo.startswith("-"):
            raise ConfigError(f"--repo: {redact_text(self.repo)!r} is not a repository URL or path")
        if _BAD_BRANCH_RE.search(self.branch) or not self.branch:
            raise ConfigError(f"--branch: {self.branch!r} is not a valid branch name")
        pure = PurePosixPath(self.path)
        if pure.is_absolute() or ".." in pure.parts or self.path.startswith("-"):
            raise ConfigError(f"--path: {self.path!r} must be relative to the repository root, without '..'")
        if self.timeout_seconds <= 0:
            raise ConfigError(f"git timeout must be positive, got {self.timeout_seconds}")
        kind = _classify(self.repo)
        object.__setattr__(self, "kind", kind)
        if self.token_env is not None and kind is not RepoKind.HTTP:
            raise ConfigError(f"--repo: a token ({self.token_env}) only applies to http(s) URLs")
        if self.ssh_key_path is not None and kind is not RepoKind.SSH:
            raise ConfigError("--repo: an ssh key only applies to ssh URLs")
        if kind is RepoKind.HTTP:
            creds = split_url_credentials(self.repo)
            if creds.password is not None and self.token_env is not None:
                raise ConfigError(
                    f"--repo {redact_text(self.repo)}: give the token either in the URL "
                    f"or in {self.token_env}, not both"
                )


@dataclass(frozen=True)
class GitSnapshot:
    """One synced commit and the Rollout files it holds.

    ``files`` are absolute paths inside the shared cache checkout at
    ``workdir``: they describe this commit until the next successful sync.
    """

    commit: str
    commit_time: str
    branch: str
    workdir: Path
    files: tuple[Path, ...]

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


def _rfc3339_utc(commit: git.Commit) -> str:
    return commit.committed_datetime.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _has_glob(pattern: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in pattern)


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
            self._url = str(Path(config.repo).expanduser().resolve())
        else:
            self._url = creds.url
        self._display_url = redact_text(self._url)
        self._workdir = config.cache_dir / _cache_key(self._display_url, config.branch)
        self._last: GitSnapshot | None = None
        self._failures = 0

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
            key = shlex.quote(str(Path(self._config.ssh_key_path).expanduser()))
            env["GIT_SSH_COMMAND"] = f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes"
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key_name, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key_name
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env

    # -- sync ---------------------------------------------------------------------------

    def sync(self) -> GitSnapshot:
        """Fetch the branch (cloning on first use) and return the snapshot at its head.

        Raises ``TemporaryError`` when the remote cannot be read (the previous
        snapshot and the checkout stay as they were) and ``ConfigError`` when
        the configuration cannot work (missing token variable, branch or path
        that does not exist on the first sync).
        """
        creds = self._credentials()
        secrets = self._secrets(creds)
        env = self._command_env(creds)
        try:
            repo = self._update_cache(env, secrets)
            snapshot = self._snapshot(repo)
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
        if previous is None or previous.commit != snapshot.commit:
            log.info(
                "git sync: %s@%s is at %s (%d rollout files)",
                self._display_url,
                self._config.branch,
                snapshot.commit[:12],
                len(snapshot.files),
                extra={"repo": self._display_url, "branch": snapshot.branch, "commit": snapshot.commit},
            )
        return snapshot

    def _update_cache(self, env: Mapping[str, str], secrets: tuple[str, ...]) -> git.Repo:
        repo = self._open_cache()
        if repo is None:
            return self._clone(env, secrets)
        self._fetch(repo, env, secrets)
        branch = self._config.branch
        remote_ref = f"refs/remotes/{REMOTE_NAME}/{branch}"
        try:
            repo.git.checkout("--force", "-B", branch, remote_ref)
            repo.git.reset("--hard", remote_ref)
            repo.git.clean("-ffdx")
        except git.GitCommandError as exc:
            raise TemporaryError(
                f"cannot reset the cache checkout {self._workdir} to {REMOTE_NAME}/{branch}: "
                f"{self._git_detail(exc, secrets)}"
            ) from None
        return repo

    def _open_cache(self) -> git.Repo | None:
        """The existing cache repo, or None (after removing a cache that is not ours or is broken)."""
        if not self._workdir.exists():
            return None
        try:
            repo = git.Repo(self._workdir)
            url = repo.remotes[REMOTE_NAME].url if REMOTE_NAME in repo.remotes else None
        except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError, ValueError) as exc:
            log.warning("removing broken git cache %s: %s", self._workdir, redact_text(str(exc)))
            shutil.rmtree(self._workdir)
            return None
        own_checkout = (
            repo.working_tree_dir is not None and Path(repo.working_tree_dir).resolve() == self._workdir.resolve()
        )
        if not own_checkout or url is None:
            log.warning("removing git cache %s: it is not a clone of its own with an origin", self._workdir)
            shutil.rmtree(self._workdir)
            return None
        if url != self._url:
            repo.git.remote("set-url", REMOTE_NAME, self._url)
        return repo

    def _clone(self, env: Mapping[str, str], secrets: tuple[str, ...]) -> git.Repo:
        cfg = self._config
        cfg.cache_dir.mkdir(parents=True, exist_ok=True)
        # Clone next to the final place and rename: a crash mid-clone leaves no half cache.
        staging = Path(tempfile.mkdtemp(prefix=f".{self._workdir.name}-", dir=cfg.cache_dir))
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
            staging.rename(self._workdir)
        except git.GitCommandError as exc:
            raise self._remote_error("clone", exc, secrets) from None
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        log.info("git cache: cloned %s into %s", self._display_url, self._workdir)
        return git.Repo(self._workdir)

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
                kill_after_timeout=self._config.timeout_seconds,
            )
        except git.GitCommandError as exc:
            raise self._remote_error("fetch", exc, secrets) from None

    def _git_detail(self, exc: git.GitCommandError, secrets: tuple[str, ...]) -> str:
        stderr = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
        lines = (line.strip() for line in stderr.strip().removeprefix("stderr:").strip(" '\n").splitlines())
        detail = " ".join(line for line in lines if line and not line.startswith(_PROGRESS_PREFIXES))
        return redact_text(detail or f"git exited with status {exc.status}", secrets)

    def _remote_error(self, action: str, exc: git.GitCommandError, secrets: tuple[str, ...]) -> Exception:
        detail = self._git_detail(exc, secrets)
        where = f"{self._display_url} branch {self._config.branch}"
        if any(marker in detail for marker in _MISSING_BRANCH_MARKERS):
            if self._last is None:
                return ConfigError(f"--branch: {self._config.branch!r} does not exist on {self._display_url}")
            return TemporaryError(
                f"cannot {action} {where}: the branch is gone from the remote; keeping commit {self._last.commit[:12]}"
            )
        keeping = f"; keeping commit {self._last.commit[:12]}" if self._last is not None else ""
        return TemporaryError(f"cannot {action} {where}: {detail}{keeping}")

    # -- reading the checkout ---------------------------------------------------------------

    def _snapshot(self, repo: git.Repo) -> GitSnapshot:
        head = repo.head.commit
        return GitSnapshot(
            commit=head.hexsha,
            commit_time=_rfc3339_utc(head),
            branch=self._config.branch,
            workdir=self._workdir,
            files=self._match_files(head.hexsha),
        )

    def _match_files(self, commit: str) -> tuple[Path, ...]:
        pattern = self._config.path
        root = self._workdir
        candidates: list[Path] = []
        if _has_glob(pattern):
            for match in root.glob(pattern):
                candidates.extend(match.rglob("*") if match.is_dir() else [match])
        else:
            target = root / pattern
            if target.is_dir():
                candidates.extend(target.rglob("*"))
            elif target.is_file():
                candidates.append(target)
            else:
                raise ConfigError(
                    f"--path: {pattern!r} does not exist on {self._display_url} "
                    f"branch {self._config.branch} at commit {commit[:12]}"
                )
        real_root = root.resolve()
        git_dir = root / ".git"
        chosen: set[Path] = set()
        for candidate in candidates:
            if candidate.suffix not in ROLLOUT_SUFFIXES or not candidate.is_file():
                continue
            if candidate == git_dir or git_dir in candidate.parents:
                continue
            # A symlink in the repository must not make us read files outside it.
            if not candidate.resolve().is_relative_to(real_root):
                log.warning("ignoring %s: it points outside the repository", candidate.relative_to(root))
                continue
            chosen.add(candidate)
        return tuple(sorted(chosen))

    # -- history helpers ---------------------------------------------------------------------

    def _repo(self) -> git.Repo:
        try:
            return git.Repo(self._workdir)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise PermanentError(f"no git cache at {self._workdir}: call sync() first") from None

    def _require_commit(self, repo: git.Repo, commit: str) -> str:
        if not _COMMIT_RE.match(commit):
            raise PermanentError(f"{commit!r} is not a commit id")
        status, out, _ = repo.git.rev_parse(
            "--verify", "--quiet", f"{commit}^{{commit}}", with_extended_output=True, with_exceptions=False
        )
        if status != 0:
            raise PermanentError(
                f"commit {commit[:12]} is not in the git cache of {self._display_url}; treat every file as changed"
            )
        return str(out).strip()

    def changed_files(self, old_commit: str, new_commit: str) -> tuple[str, ...]:
        """Repository-relative POSIX paths added, modified or deleted between two commits, sorted.

        A rename lists both the old and the new path. Raises ``PermanentError``
        when a commit is unknown to the cache (e.g. it was never fetched).
        """
        repo = self._repo()
        old = self._require_commit(repo, old_commit)
        new = self._require_commit(repo, new_commit)
        out = repo.git.diff("--name-only", "--no-renames", "-z", old, new, "--")
        return tuple(sorted(name for name in str(out).split("\0") if name))

    def file_exists_at(self, commit: str, relpath: str) -> bool:
        """Whether ``relpath`` (repository-relative POSIX path) is a file at ``commit``."""
        repo = self._repo()
        resolved = self._require_commit(repo, commit)
        pure = PurePosixPath(relpath)
        if pure.is_absolute() or ".." in pure.parts:
            raise PermanentError(f"{relpath!r} is not a repository-relative path")
        status, out, _ = repo.git.cat_file(
            "-t", f"{resolved}:{pure.as_posix()}", with_extended_output=True, with_exceptions=False
        )
        return status == 0 and str(out).strip() == "blob"
