"""GitSource against real git repositories: a bare remote, a working clone that pushes,
and a real HTTP server (git's dumb protocol) for token authentication."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import logging
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kulta.adapters.git_source import GitSnapshot, GitSource, GitSourceConfig
from kulta.devcluster import free_port
from kulta.errors import ConfigError, PermanentError, TemporaryError

TOKEN = "ghp_s3cretT0kenValue1234567890"
TOKEN_ENV = "KULTA_TEST_GIT_TOKEN"
ROLLOUT = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: {name}\n"

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.test",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.test",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def run_git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env=GIT_ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


class Upstream:
    """A bare remote and a working clone that commits and pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        self.bare.mkdir()
        run_git("init", "--bare", "--initial-branch=main", cwd=self.bare)
        run_git("clone", str(self.bare), str(self.work), cwd=root)
        run_git("checkout", "-B", "main", cwd=self.work)

    def write(self, rel: str, text: str) -> None:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def commit(self, message: str, branch: str = "main", *extra: str) -> str:
        run_git("add", "-A", cwd=self.work)
        run_git("commit", "-q", *extra, "-m", message, cwd=self.work)
        run_git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
        run_git("update-server-info", cwd=self.bare)
        return run_git("rev-parse", "HEAD", cwd=self.work)

    def delete(self, rel: str) -> None:
        run_git("rm", "-q", rel, cwd=self.work)


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    up = Upstream(tmp_path)
    up.write("rollouts/web.yaml", ROLLOUT.format(name="web"))
    up.write("rollouts/api.yml", ROLLOUT.format(name="api"))
    up.write("rollouts/team/worker.yaml", ROLLOUT.format(name="worker"))
    up.write("rollouts/README.md", "not a rollout\n")
    up.write("other/ignored.yaml", ROLLOUT.format(name="ignored"))
    up.commit("initial rollouts")
    return up


def source_for(upstream: Upstream, tmp_path: Path, **kwargs: object) -> GitSource:
    options: dict[str, object] = {"cache_dir": tmp_path / "cache", "path": "rollouts"}
    options.update(kwargs)
    return GitSource(GitSourceConfig(str(upstream.bare), **options))  # type: ignore[arg-type]


def rel_files(snapshot: GitSnapshot) -> list[str]:
    return [snapshot.relative(f) for f in snapshot.files]


def test_first_sync_clones_and_reports_the_head_commit(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    assert source.last_snapshot is None

    snap = source.sync()

    head = run_git("rev-parse", "HEAD", cwd=upstream.work)
    assert snap.commit == head
    assert snap.branch == "main"
    assert snap.workdir == source.workdir
    assert snap.workdir.parent == tmp_path / "cache"
    assert re.fullmatch(r"[0-9a-f]{16}", snap.workdir.name)
    assert (snap.workdir / ".git").is_dir()
    assert rel_files(snap) == ["rollouts/api.yml", "rollouts/team/worker.yaml", "rollouts/web.yaml"]
    assert all(f.is_absolute() and f.is_file() for f in snap.files)
    assert source.last_snapshot == snap
    # commit_time is the committer date, in RFC 3339 UTC.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", snap.commit_time)
    committer_iso = run_git("show", "-s", "--format=%cI", head, cwd=upstream.work)
    expected = dt.datetime.fromisoformat(committer_iso).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert snap.commit_time == expected
    # No staging directory is left behind.
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [snap.workdir.name]


def test_file_url_works_like_a_path(upstream: Upstream, tmp_path: Path) -> None:
    source = GitSource(GitSourceConfig(upstream.bare.as_uri(), cache_dir=tmp_path / "cache", path="rollouts"))
    snap = source.sync()
    assert snap.commit == run_git("rev-parse", "HEAD", cwd=upstream.work)
    assert len(snap.files) == 3


def test_second_sync_fetches_into_the_same_checkout(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    first = source.sync()
    git_dir = first.workdir / ".git"
    inode_before = git_dir.stat().st_ino
    marker = git_dir / "kulta-test-marker"
    marker.write_text("set before the second sync")

    upstream.write("rollouts/new.yaml", ROLLOUT.format(name="new"))
    new_head = upstream.commit("add new rollout")
    second = source.sync()

    assert second.commit == new_head != first.commit
    assert git_dir.stat().st_ino == inode_before
    assert marker.read_text() == "set before the second sync"
    assert "rollouts/new.yaml" in rel_files(second)
    assert source.changed_files(first.commit, second.commit) == ("rollouts/new.yaml",)
    assert source.last_snapshot == second


def test_sync_without_new_commits_returns_the_same_commit(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    first = source.sync()
    again = source.sync()
    assert again == first
    assert (first.changed, again.changed) == (True, False)  # the caller may reuse what it parsed
    assert source.changed_files(first.commit, again.commit) == ()


def test_a_new_source_object_reuses_an_existing_cache(upstream: Upstream, tmp_path: Path) -> None:
    first = source_for(upstream, tmp_path).sync()
    inode_before = (first.workdir / ".git").stat().st_ino
    upstream.write("rollouts/web.yaml", ROLLOUT.format(name="web") + "# changed\n")
    head = upstream.commit("edit web")

    restarted = source_for(upstream, tmp_path).sync()

    assert restarted.workdir == first.workdir
    assert (restarted.workdir / ".git").stat().st_ino == inode_before
    assert restarted.commit == head


def test_force_push_moves_the_snapshot_and_discards_local_edits(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    upstream.write("rollouts/doomed.yaml", ROLLOUT.format(name="doomed"))
    doomed_head = upstream.commit("a commit that will be rewritten")
    before = source.sync()
    assert before.commit == doomed_head
    # Somebody edits the cache checkout by hand: the cache is ours, this must vanish.
    (before.workdir / "rollouts" / "web.yaml").write_text("hand edit\n")
    (before.workdir / "rollouts" / "stray.yaml").write_text("untracked\n")

    run_git("reset", "-q", "--hard", "HEAD~1", cwd=upstream.work)
    upstream.write("rollouts/replacement.yaml", ROLLOUT.format(name="replacement"))
    rewritten = upstream.commit("rewritten history")

    after = source.sync()

    assert after.commit == rewritten
    ancestry = subprocess.run(
        ["git", "merge-base", "--is-ancestor", doomed_head, rewritten], cwd=after.workdir, check=False
    )
    assert ancestry.returncode != 0  # history really was rewritten
    names = rel_files(after)
    assert "rollouts/doomed.yaml" not in names
    assert "rollouts/stray.yaml" not in names
    assert "rollouts/replacement.yaml" in names
    assert (after.workdir / "rollouts" / "web.yaml").read_text() == ROLLOUT.format(name="web")
    # The old commit is still in the cache, so the caller can diff across the force-push.
    assert "rollouts/doomed.yaml" in source.changed_files(doomed_head, rewritten)


def test_a_deleted_file_disappears_from_files(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    before = source.sync()
    upstream.delete("rollouts/web.yaml")
    after_commit = upstream.commit("retire web")

    after = source.sync()

    assert after.commit == after_commit
    assert "rollouts/web.yaml" in rel_files(before)
    assert "rollouts/web.yaml" not in rel_files(after)
    assert not (after.workdir / "rollouts" / "web.yaml").exists()
    assert source.changed_files(before.commit, after.commit) == ("rollouts/web.yaml",)
    assert source.file_exists_at(before.commit, "rollouts/web.yaml") is True
    assert source.file_exists_at(after.commit, "rollouts/web.yaml") is False
    assert source.file_exists_at(after.commit, "rollouts/api.yml") is True
    assert source.file_exists_at(after.commit, "rollouts") is False  # a tree, not a file


def test_unknown_commits_are_a_permanent_error(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    snap = source.sync()
    with pytest.raises(PermanentError, match="not in the git cache"):
        source.changed_files("0" * 40, snap.commit)
    with pytest.raises(PermanentError, match="not a commit id"):
        source.changed_files("--output=/tmp/x", snap.commit)
    with pytest.raises(PermanentError, match="repository-relative"):
        source.file_exists_at(snap.commit, "../etc/passwd")


def test_history_helpers_before_any_clone_fail_clearly(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    with pytest.raises(PermanentError, match="call sync"):
        source.changed_files("a" * 40, "b" * 40)


def test_unreachable_remote_keeps_the_last_snapshot_and_recovers(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = source_for(upstream, tmp_path)
    good = source.sync()
    moved = upstream.bare.with_name("moved-away.git")
    upstream.bare.rename(moved)

    with pytest.raises(TemporaryError, match="cannot fetch") as err:
        source.sync()
    assert good.commit[:12] in str(err.value)  # the message says what we keep running
    assert source.last_snapshot == good
    assert source.consecutive_failures == 1
    with pytest.raises(TemporaryError):
        source.sync()
    assert source.consecutive_failures == 2
    # The checkout is untouched: the last snapshot's files are still readable.
    assert all(f.is_file() for f in good.files)
    assert any("git sync failed" in r.getMessage() for r in caplog.records)

    moved.rename(upstream.bare)
    upstream.write("rollouts/back.yaml", ROLLOUT.format(name="back"))
    head = upstream.commit("remote is back")
    recovered = source.sync()
    assert recovered.commit == head
    assert source.consecutive_failures == 0
    assert source.last_snapshot == recovered


def test_unreachable_remote_on_first_sync_is_temporary(tmp_path: Path) -> None:
    source = GitSource(GitSourceConfig(str(tmp_path / "nowhere.git"), cache_dir=tmp_path / "cache"))
    with pytest.raises(TemporaryError, match="cannot clone"):
        source.sync()
    assert source.last_snapshot is None
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_glob_path_matches_only_what_the_glob_says(upstream: Upstream, tmp_path: Path) -> None:
    snap = source_for(upstream, tmp_path, path="rollouts/*.yaml").sync()
    assert rel_files(snap) == ["rollouts/web.yaml"]


def test_recursive_glob_and_globbed_directories(upstream: Upstream, tmp_path: Path) -> None:
    everything = source_for(upstream, tmp_path, path="**/*.yaml").sync()
    assert rel_files(everything) == ["other/ignored.yaml", "rollouts/team/worker.yaml", "rollouts/web.yaml"]
    dirs = source_for(upstream, tmp_path, path="rollout*").sync()
    assert rel_files(dirs) == ["rollouts/api.yml", "rollouts/team/worker.yaml", "rollouts/web.yaml"]


def test_directory_path_is_walked_and_dot_means_the_whole_repo(upstream: Upstream, tmp_path: Path) -> None:
    sub = source_for(upstream, tmp_path, path="rollouts/team").sync()
    assert rel_files(sub) == ["rollouts/team/worker.yaml"]
    whole = source_for(upstream, tmp_path, path=".").sync()
    assert rel_files(whole) == [
        "other/ignored.yaml",
        "rollouts/api.yml",
        "rollouts/team/worker.yaml",
        "rollouts/web.yaml",
    ]
    single = source_for(upstream, tmp_path, path="rollouts/web.yaml").sync()
    assert rel_files(single) == ["rollouts/web.yaml"]


def test_glob_matching_nothing_gives_no_files(upstream: Upstream, tmp_path: Path) -> None:
    snap = source_for(upstream, tmp_path, path="rollouts/*.json").sync()
    assert snap.files == ()


def test_missing_directory_is_a_config_error_not_an_empty_set(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path, path="no-such-dir")
    with pytest.raises(ConfigError, match="'no-such-dir' does not exist"):
        source.sync()


def test_symlinks_out_of_the_repository_are_ignored(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(ROLLOUT.format(name="outside"))
    (upstream.work / "rollouts" / "escape.yaml").symlink_to(outside)
    (upstream.work / "rollouts" / "alias.yaml").symlink_to("web.yaml")
    upstream.commit("symlinks")

    snap = source_for(upstream, tmp_path).sync()

    names = rel_files(snap)
    assert "rollouts/escape.yaml" not in names
    assert "rollouts/alias.yaml" in names
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "git sync: rollouts/escape.yaml: a symbolic link that leads outside the repository; ignored "
        f"(commit {snap.commit[:12]})"
    ]
    assert str(outside) not in caplog.text


def test_a_branch_other_than_main(upstream: Upstream, tmp_path: Path) -> None:
    run_git("checkout", "-q", "-b", "release", cwd=upstream.work)
    upstream.write("rollouts/release-only.yaml", ROLLOUT.format(name="release-only"))
    release_head = upstream.commit("release branch", "release")
    run_git("checkout", "-q", "main", cwd=upstream.work)
    main_source = source_for(upstream, tmp_path)
    release_source = source_for(upstream, tmp_path, branch="release")

    main_snap = main_source.sync()
    release_snap = release_source.sync()

    assert release_snap.commit == release_head
    assert release_snap.branch == "release"
    assert "rollouts/release-only.yaml" in rel_files(release_snap)
    assert "rollouts/release-only.yaml" not in rel_files(main_snap)
    assert release_snap.workdir != main_snap.workdir


def test_missing_branch_is_a_config_error_first_then_temporary(upstream: Upstream, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'nope' does not exist"):
        source_for(upstream, tmp_path, branch="nope").sync()

    run_git("push", "-q", "origin", "HEAD:refs/heads/short-lived", cwd=upstream.work)
    source = source_for(upstream, tmp_path, branch="short-lived")
    good = source.sync()
    run_git("push", "-q", "origin", "--delete", "short-lived", cwd=upstream.work)
    with pytest.raises(TemporaryError, match="branch is gone"):
        source.sync()
    assert source.last_snapshot == good


# -- HTTP(S) with a token ------------------------------------------------------------------


class AuthGitServer:
    """git's dumb HTTP protocol over a bare repository, behind HTTP Basic auth."""

    def __init__(self, root: Path, user: str, token: str) -> None:
        expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        self.authorizations: list[str] = []
        seen = self.authorizations

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                seen.append(auth)
                if auth != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="kulta-test"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def auth_server(upstream: Upstream) -> Iterator[AuthGitServer]:
    server = AuthGitServer(upstream.bare.parent, "x-access-token", TOKEN)
    yield server
    server.close()


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def test_closed_port_with_token_is_temporary_and_leaks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    url = f"http://127.0.0.1:{free_port()}/repo.git"
    source = GitSource(GitSourceConfig(url, cache_dir=tmp_path / "cache", token_env=TOKEN_ENV))

    with pytest.raises(TemporaryError) as err:
        source.sync()

    text = str(err.value)
    assert "127.0.0.1" in text
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert_no_secret(text, TOKEN, basic)
    assert_no_secret(caplog.text, TOKEN, basic)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_closed_port_with_userinfo_url_leaks_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://deploy-bot:{TOKEN}@127.0.0.1:{free_port()}/repo.git"
    source = GitSource(GitSourceConfig(url, cache_dir=tmp_path / "cache"))

    with pytest.raises(TemporaryError) as err:
        source.sync()

    assert_no_secret(str(err.value), TOKEN, "deploy-bot")
    assert_no_secret(caplog.text, TOKEN, "deploy-bot")
    assert source.display_url.startswith("http://127.0.0.1:")


def test_wrong_token_gets_401_and_leaks_nothing(
    upstream: Upstream,
    auth_server: AuthGitServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "ghp_wrongTokenValue0987654321"
    monkeypatch.setenv(TOKEN_ENV, wrong)
    source = GitSource(
        GitSourceConfig(auth_server.url("remote.git"), cache_dir=tmp_path / "cache", token_env=TOKEN_ENV)
    )

    with pytest.raises(TemporaryError) as err:
        source.sync()

    assert auth_server.authorizations, "git never reached the server"
    assert "Basic " + base64.b64encode(f"x-access-token:{wrong}".encode()).decode() in auth_server.authorizations
    wrong_basic = base64.b64encode(f"x-access-token:{wrong}".encode()).decode()
    assert_no_secret(str(err.value), wrong, wrong_basic)
    assert_no_secret(caplog.text, wrong, wrong_basic)
    assert source.last_snapshot is None


def test_right_token_clones_over_http_without_storing_it(
    upstream: Upstream,
    auth_server: AuthGitServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    source = GitSource(
        GitSourceConfig(
            auth_server.url("remote.git"), cache_dir=tmp_path / "cache", token_env=TOKEN_ENV, path="rollouts"
        )
    )

    first = source.sync()
    upstream.write("rollouts/over-http.yaml", ROLLOUT.format(name="over-http"))
    head = upstream.commit("second commit over http")
    second = source.sync()

    assert first.commit != second.commit == head
    assert "rollouts/over-http.yaml" in rel_files(second)
    git_config = (second.workdir / ".git" / "config").read_text()
    assert TOKEN not in git_config
    assert "Authorization" not in git_config
    assert f"url = {auth_server.url('remote.git')}" in git_config
    assert_no_secret(caplog.text, TOKEN)


def test_token_in_the_url_is_used_but_never_stored(
    upstream: Upstream, auth_server: AuthGitServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = auth_server.url("remote.git", userinfo=f"x-access-token:{TOKEN}@")
    source = GitSource(GitSourceConfig(url, cache_dir=tmp_path / "cache", path="rollouts"))

    snap = source.sync()

    assert snap.commit == run_git("rev-parse", "HEAD", cwd=upstream.work)
    assert TOKEN not in (snap.workdir / ".git" / "config").read_text()
    assert_no_secret(caplog.text, TOKEN)


def test_missing_token_variable_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    source = GitSource(
        GitSourceConfig("https://git.example.test/org/repo.git", cache_dir=tmp_path / "c", token_env=TOKEN_ENV)
    )
    with pytest.raises(ConfigError, match=TOKEN_ENV):
        source.sync()


def test_a_remote_that_never_answers_times_out_as_temporary(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        source = GitSource(
            GitSourceConfig(f"http://127.0.0.1:{port}/repo.git", cache_dir=tmp_path / "cache", timeout_seconds=1.5)
        )
        started = time.monotonic()
        with pytest.raises(TemporaryError, match="cannot clone"):
            source.sync()
        assert time.monotonic() - started < 15
    assert source.last_snapshot is None


def test_a_broken_cache_directory_is_replaced_by_a_fresh_clone(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    source.workdir.mkdir(parents=True)
    (source.workdir / "junk.txt").write_text("not a git checkout")

    snap = source.sync()

    assert snap.commit == run_git("rev-parse", "HEAD", cwd=upstream.work)
    assert not (snap.workdir / "junk.txt").exists()
    assert len(snap.files) == 3


def test_knows_commit_tells_a_commit_not_fetched_yet(upstream: Upstream, tmp_path: Path) -> None:
    """What a replica behind the stack's gitCommit asks (kulta.core.git_snapshot)."""
    source = source_for(upstream, tmp_path)
    assert source.knows_commit("0" * 40) is False  # no cache yet
    first = source.sync()
    assert source.knows_commit(first.commit) is True
    upstream.write("rollouts/new.yaml", ROLLOUT.format(name="new"))
    newer = upstream.commit("pushed by someone, not fetched here yet")
    assert source.knows_commit(newer) is False
    assert source.sync().commit == newer
    assert source.knows_commit(newer) is True
    assert source.knows_commit("not-a-sha; rm -rf /") is False
