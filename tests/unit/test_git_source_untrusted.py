"""GitSource against real local git repositories whose content is hostile (issue 11, section 9).

A bad push must never make KULTA read the host's disk, block, or run unbounded;
it must never read as "every rollout deleted" once rollouts are running; and
every failure reaches the caller as one of KULTA's errors, without secrets.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import time
from pathlib import Path

import git
import pytest

from kulta.adapters.git_source import GitSource, GitSourceConfig
from kulta.errors import ConfigError, TemporaryError
from tests.unit.git_helpers import ROLLOUT, Upstream, run_git

TOKEN = "ghp_untrustedT0kenValue1234567"
TOKEN_ENV = "KULTA_UNIT_GIT_TOKEN"
OUTSIDE_REFUSED = "a symbolic link that leads outside the repository"
BROKEN_REFUSED = "a symbolic link that cannot be followed (its target is missing or it loops)"


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    up = Upstream(tmp_path / "up")
    up.write("rollouts/web.yaml", ROLLOUT.format(name="web"))
    up.write("rollouts/team/worker.yaml", ROLLOUT.format(name="worker"))
    up.commit("initial rollouts")
    return up


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """Files on the reconciler's own disk, outside every repository."""
    host = tmp_path / "host-secrets"
    (host / "deeper").mkdir(parents=True)
    (host / "host-only-marker.yaml").write_text(ROLLOUT.format(name="stolen"))
    (host / "deeper" / "host-only-nested.yaml").write_text(ROLLOUT.format(name="stolen2"))
    return host


def source_for(upstream: Upstream, tmp_path: Path, **kwargs: object) -> GitSource:
    options: dict[str, object] = {"cache_dir": tmp_path / "cache", "path": "rollouts"}
    options.update(kwargs)
    return GitSource(GitSourceConfig(str(upstream.bare), **options))  # type: ignore[arg-type]


def rel(source: GitSource, files: tuple[Path, ...]) -> list[str]:
    return [f.relative_to(source.workdir).as_posix() for f in files]


def cache_head(source: GitSource) -> str:
    return run_git("rev-parse", "HEAD", cwd=source.workdir)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# -- 1. symbolic links ---------------------------------------------------------------------------


def test_a_push_that_replaces_the_directory_by_a_link_to_root_keeps_the_last_commit(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = source_for(upstream, tmp_path)
    good = source.sync()
    upstream.link("rollouts", "/")
    bad = upstream.commit("rollouts is now the host's root")

    started = time.monotonic()
    with pytest.raises(TemporaryError) as err:
        source.sync()

    assert time.monotonic() - started < 10  # the unconfined walk of / took 44 s
    assert str(err.value) == (
        f"--path 'rollouts' is refused: rollouts: {OUTSIDE_REFUSED} "
        f"(on {upstream.bare} branch main at commit {bad[:12]}); keeping commit {good.commit[:12]}"
    )
    assert source.last_snapshot == good
    # The checkout is put back: the last snapshot's files are there and hold that commit's text.
    assert cache_head(source) == good.commit
    assert not (source.workdir / "rollouts").is_symlink()
    assert (source.workdir / "rollouts" / "web.yaml").read_text() == ROLLOUT.format(name="web")
    assert not any("/etc" in message or "/proc" in message for message in warnings_of(caplog))


def test_a_path_that_is_a_link_to_root_on_the_first_sync_is_a_config_error(upstream: Upstream, tmp_path: Path) -> None:
    upstream.link("rollouts", "/")
    head = upstream.commit("link")
    with pytest.raises(ConfigError) as err:
        source_for(upstream, tmp_path).sync()
    assert str(err.value) == (
        f"--path 'rollouts' is refused: rollouts: {OUTSIDE_REFUSED} "
        f"(on {upstream.bare} branch main at commit {head[:12]})"
    )


def test_links_out_of_the_repository_are_warned_about_once_per_sync_by_repository_path(
    upstream: Upstream, tmp_path: Path, host_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.link("rollouts/host-root", "/")
    upstream.link("rollouts/host-dir", str(host_dir))
    upstream.link("rollouts/host-file.yaml", str(host_dir / "host-only-marker.yaml"))
    upstream.link("rollouts/up-and-out.yaml", "../../../host-secrets/host-only-marker.yaml")
    head = upstream.commit("links out")
    source = source_for(upstream, tmp_path, path=".")

    for _ in range(2):
        caplog.clear()
        snap = source.sync()
        assert rel(source, snap.files) == ["rollouts/team/worker.yaml", "rollouts/web.yaml"]
        assert warnings_of(caplog) == [
            f"git sync: rollouts/host-dir: {OUTSIDE_REFUSED}; ignored (commit {head[:12]})",
            f"git sync: rollouts/host-file.yaml: {OUTSIDE_REFUSED}; ignored (commit {head[:12]})",
            f"git sync: rollouts/host-root: {OUTSIDE_REFUSED}; ignored (commit {head[:12]})",
            f"git sync: rollouts/up-and-out.yaml: {OUTSIDE_REFUSED}; ignored (commit {head[:12]})",
        ]
        assert "host-only" not in caplog.text
        assert "host-secrets" not in caplog.text


def test_a_link_to_git_config_is_never_read(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.link("rollouts/config.yaml", "../.git/config")
    upstream.link("rollouts/objects", "../.git/objects")
    head = upstream.commit("links into .git")

    source = source_for(upstream, tmp_path)
    snap = source.sync()

    assert rel(source, snap.files) == ["rollouts/team/worker.yaml", "rollouts/web.yaml"]
    assert warnings_of(caplog) == [
        f"git sync: rollouts/config.yaml: inside .git (or a symbolic link into it); ignored (commit {head[:12]})",
        f"git sync: rollouts/objects: inside .git (or a symbolic link into it); ignored (commit {head[:12]})",
    ]


def test_a_path_into_git_is_refused(upstream: Upstream, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--path '\.git/config' is refused: \.git: inside \.git"):
        source_for(upstream, tmp_path, path=".git/config").sync()


def test_committed_link_loops_do_not_break_the_sync(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.link("rollouts/a.yaml", "b.yaml")
    upstream.link("rollouts/b.yaml", "a.yaml")
    upstream.link("rollouts/team/again", "..")
    upstream.link("rollouts/alias.yaml", "web.yaml")
    upstream.commit("loops")

    source = source_for(upstream, tmp_path)
    snap = source.sync()

    assert rel(source, snap.files) == [
        "rollouts/alias.yaml",
        "rollouts/team/worker.yaml",
        "rollouts/web.yaml",
    ]
    assert [m.split(" (commit")[0] for m in warnings_of(caplog)] == [
        f"git sync: rollouts/a.yaml: {BROKEN_REFUSED}; ignored",
        f"git sync: rollouts/b.yaml: {BROKEN_REFUSED}; ignored",
    ]


def test_a_push_that_deletes_the_path_keeps_the_last_commit(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    good = source.sync()
    run_git("rm", "-q", "-r", "rollouts", cwd=upstream.work)
    bad = upstream.commit("everything gone")

    with pytest.raises(TemporaryError) as err:
        source.sync()

    # Not an empty file list: that would read as "every rollout deleted".
    assert str(err.value) == (
        f"--path 'rollouts' does not exist (on {upstream.bare} branch main at commit {bad[:12]}); "
        f"keeping commit {good.commit[:12]}"
    )
    assert source.last_snapshot == good
    assert cache_head(source) == good.commit


# -- 2. literal names, odd names ------------------------------------------------------------------


def test_a_file_named_like_a_glob_is_found(upstream: Upstream, tmp_path: Path) -> None:
    upstream.write("weird[1].yaml", ROLLOUT.format(name="weird"))
    upstream.write("weird1.yaml", ROLLOUT.format(name="not-this-one"))
    upstream.commit("weird name")
    source = source_for(upstream, tmp_path, path="weird[1].yaml")
    assert rel(source, source.sync().files) == ["weird[1].yaml"]


def test_undecodable_and_control_character_names_are_skipped_and_shown_escaped(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = source_for(upstream, tmp_path)
    before = source.sync()
    os.close(os.open(os.fsencode(upstream.work / "rollouts") + b"/bad\xff.yaml", os.O_CREAT | os.O_WRONLY))
    upstream.write("rollouts/tab\there.yaml", ROLLOUT.format(name="tab"))
    upstream.commit("odd names")
    caplog.clear()

    after = source.sync()
    changed = source.changed_files(before.commit, after.commit)

    assert rel(source, after.files) == ["rollouts/team/worker.yaml", "rollouts/web.yaml"]
    assert changed == ("rollouts/bad\\xff.yaml", "rollouts/tab\\x09here.yaml")
    reason = "its name is not UTF-8 text or holds control or invisible characters; ignored"
    assert [m.split(" (commit")[0] for m in warnings_of(caplog)] == [
        f"git sync: rollouts/bad\\xff.yaml: {reason}",
        f"git sync: rollouts/tab\\x09here.yaml: {reason}",
    ]
    for text in (*changed, caplog.text):
        text.encode("utf-8")  # strict: no lone surrogates reach a log handler or a caller


# -- 3. bounds and unchanged commits ----------------------------------------------------------------


def test_too_many_entries_is_a_config_error_first_then_temporary(upstream: Upstream, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--path 'rollouts' reaches more than 2 files, directories and links"):
        source_for(upstream, tmp_path, max_entries=2).sync()

    source = source_for(upstream, tmp_path, max_entries=4)
    good = source.sync()
    for index in range(3):
        upstream.write(f"rollouts/extra{index}.yaml", ROLLOUT.format(name=f"extra{index}"))
    upstream.commit("more files")
    with pytest.raises(TemporaryError, match=rf"narrow --path .*; keeping commit {good.commit[:12]}$"):
        source.sync()
    assert source.last_snapshot == good
    assert cache_head(source) == good.commit


def test_too_many_bytes_keeps_the_last_commit(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path, max_total_bytes=200)
    good = source.sync()
    upstream.write("rollouts/big.yaml", "# " + "x" * 200 + "\n")
    upstream.commit("a big file")

    with pytest.raises(TemporaryError, match="selects YAML files holding more than 200 bytes"):
        source.sync()
    assert source.last_snapshot == good


def test_changed_says_whether_the_commit_moved(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    first = source.sync()
    again = source.sync()
    upstream.write("rollouts/new.yaml", ROLLOUT.format(name="new"))
    upstream.commit("new")
    moved = source.sync()

    assert (first.changed, again.changed, moved.changed) == (True, False, True)
    assert again == first  # `changed` is not part of a snapshot's identity
    # A failed sync in between does not make the same commit look new.
    upstream.bare.rename(upstream.bare.with_name("gone.git"))
    with pytest.raises(TemporaryError):
        source.sync()
    upstream.bare.with_name("gone.git").rename(upstream.bare)
    assert source.sync().changed is False


def test_a_committer_date_python_cannot_represent(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    good = source.sync()
    tree = run_git("rev-parse", "HEAD^{tree}", cwd=upstream.work)
    crafted = upstream.push_commit_object(
        f"tree {tree}\nparent {good.commit}\nauthor a <a@example.test> 1 +0000\n"
        "committer a <a@example.test> 99999999999999999999 +9999\n\nfrom the far future\n"
    )

    with pytest.raises(TemporaryError) as later:
        source.sync()
    with pytest.raises(ConfigError) as first:
        source_for(upstream, tmp_path / "fresh").sync()

    assert f"commit {crafted[:12]} has a committer date KULTA cannot represent" in str(later.value)
    assert str(later.value).endswith(f"keeping commit {good.commit[:12]}")
    assert f"commit {crafted[:12]} has a committer date KULTA cannot represent" in str(first.value)
    assert cache_head(source) == good.commit


# -- 4. every failure is one of KULTA's errors, without secrets --------------------------------------


def test_no_git_executable_is_a_config_error_without_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(git.Git, "GIT_PYTHON_GIT_EXECUTABLE", str(tmp_path / "no-such-git"))
    source = GitSource(GitSourceConfig(f"https://bot:{TOKEN}@git.example.test/r.git", cache_dir=tmp_path / "c"))

    with pytest.raises(ConfigError) as err:
        source.sync()

    assert (
        str(err.value) == "cannot clone https://git.example.test/r.git: the git command is not installed or not on PATH"
    )
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert TOKEN not in caplog.text


def test_a_git_timeout_is_temporary_and_leaks_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        source = GitSource(
            GitSourceConfig(
                f"http://127.0.0.1:{port}/r.git", cache_dir=tmp_path / "c", token_env=TOKEN_ENV, timeout_seconds=1.5
            )
        )
        with pytest.raises(TemporaryError) as err:
            source.sync()

    assert str(err.value) == (
        f"cannot clone http://127.0.0.1:{port}/r.git branch main: git did not finish within 1.5 s and was stopped"
    )
    assert err.value.__cause__ is None
    for text in (str(err.value), caplog.text):
        assert TOKEN not in text
        assert basic not in text


def test_a_cache_directory_that_cannot_be_made_is_a_config_error(upstream: Upstream, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    source = source_for(upstream, tmp_path, cache_dir=blocker / "cache")

    with pytest.raises(ConfigError) as err:
        source.sync()

    assert str(err.value) == f"cannot create the git cache directory {blocker / 'cache'}: Not a directory"
    assert err.value.__cause__ is None


def test_a_cache_that_cannot_be_reset_is_temporary(upstream: Upstream, tmp_path: Path) -> None:
    source = source_for(upstream, tmp_path)
    good = source.sync()
    upstream.write("rollouts/new.yaml", ROLLOUT.format(name="new"))
    upstream.commit("new")
    (source.workdir / ".git" / "index.lock").write_text("")  # another git process "holds" the index

    with pytest.raises(TemporaryError) as err:
        source.sync()

    assert str(err.value).startswith(f"cannot reset the cache checkout {source.workdir} to origin/main: ")
    assert "index.lock" in str(err.value)
    assert source.last_snapshot == good
