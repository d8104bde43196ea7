"""select_files: which files of a checkout KULTA reads, when the repository is hostile.

Most trees are built with plain file-system calls (a FIFO or a socket cannot
be committed to git); the symbolic-link cases also run on a real git checkout
of committed links.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kulta.adapters.repo_tree import (
    RefusalReason,
    TreeError,
    TreeLimits,
    TreeProblem,
    TreeSelection,
    acceptable_name,
    printable,
    select_files,
)
from kulta.spec.loader import load_paths
from tests.unit.git_helpers import ROLLOUT, Upstream, run_git

MIB = 1024 * 1024


def make(root: Path, rel: str, text: str = "kind: Rollout\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def link(root: Path, rel: str, target: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def names(selection: TreeSelection, root: Path) -> list[str]:
    return [f.relative_to(root).as_posix() for f in selection.files]


def refusals(selection: TreeSelection) -> dict[str, RefusalReason]:
    return {r.path: r.reason for r in selection.refused}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n")
    make(root, "rollouts/web.yaml")
    make(root, "rollouts/team/worker.yaml")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the checkout that must never be looked at."""
    host = tmp_path / "host-only"
    make(host, "host-only-marker.yaml")
    make(host, "deeper/host-only-nested.yaml")
    return host


@pytest.fixture
def touched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every path os.scandir/lstat/stat/readlink is called with while the test runs."""
    seen: list[str] = []

    def spy(original: Callable[..., object]) -> Callable[..., object]:
        def wrapper(path: object, *args: object, **kwargs: object) -> object:
            seen.append(os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else str(path))
            return original(path, *args, **kwargs)

        return wrapper

    for name in ("scandir", "lstat", "stat", "readlink"):
        monkeypatch.setattr(os, name, spy(getattr(os, name)))
    yield seen


def inside(path: str, root: Path) -> bool:
    real = os.path.realpath(root)
    return path == real or path.startswith(real + "/")


# -- symbolic links --------------------------------------------------------------------------


def test_a_path_that_is_a_link_to_the_host_root_is_refused_before_anything_is_listed(
    tmp_path: Path, touched: list[str]
) -> None:
    root = tmp_path / "checkout"
    link(root, "rollouts", "/")

    with pytest.raises(TreeError) as err:
        select_files(root, "rollouts")

    assert err.value.problem is TreeProblem.REFUSED
    assert str(err.value) == "is refused: rollouts: a symbolic link that leads outside the repository"
    calls = list(touched)
    listed = [p for p in calls if not inside(p, root) and not inside(os.fspath(root), Path(p))]
    assert listed == []  # nothing but the checkout and the directories above it was looked at


def test_a_link_to_a_host_directory_is_reported_by_its_repository_path_and_never_walked(
    repo: Path, outside: Path, touched: list[str]
) -> None:
    link(repo, "rollouts/host", str(outside))
    link(repo, "rollouts/relative-host", "../../host-only")

    selection = select_files(repo, ".")

    assert names(selection, repo) == ["rollouts/team/worker.yaml", "rollouts/web.yaml"]
    assert refusals(selection) == {
        "rollouts/host": RefusalReason.OUTSIDE,
        "rollouts/relative-host": RefusalReason.OUTSIDE,
    }
    calls = list(touched)
    assert [p for p in calls if inside(p, outside)] == []
    assert [str(r) for r in selection.refused] == [
        "rollouts/host: a symbolic link that leads outside the repository; ignored",
        "rollouts/relative-host: a symbolic link that leads outside the repository; ignored",
    ]


def test_a_link_that_leaves_and_comes_back_in_is_refused(repo: Path) -> None:
    # ../../checkout/rollouts/web.yaml ends inside, but its resolution passes outside the work tree.
    link(repo, "rollouts/round-trip.yaml", "../../checkout/rollouts/web.yaml")
    link(repo, "rollouts/absolute.yaml", str(repo / "rollouts" / "web.yaml"))

    selection = select_files(repo, "rollouts")

    assert names(selection, repo) == ["rollouts/team/worker.yaml", "rollouts/web.yaml"]
    assert refusals(selection) == {
        "rollouts/absolute.yaml": RefusalReason.OUTSIDE,
        "rollouts/round-trip.yaml": RefusalReason.OUTSIDE,
    }


def test_links_into_git_are_refused_and_git_is_never_listed(repo: Path, touched: list[str]) -> None:
    link(repo, "rollouts/config.yaml", "../.git/config")
    link(repo, "rollouts/gitdir", "../.git")

    selection = select_files(repo, ".")

    assert names(selection, repo) == ["rollouts/team/worker.yaml", "rollouts/web.yaml"]
    assert refusals(selection) == {
        "rollouts/config.yaml": RefusalReason.INTO_GIT,
        "rollouts/gitdir": RefusalReason.INTO_GIT,
    }
    calls = list(touched)
    git_dir = os.path.realpath(repo / ".git")
    assert [p for p in calls if p == git_dir or p.startswith(git_dir + "/")] == []


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (".git/config", "is refused: .git: inside .git (or a symbolic link into it)"),
        (".git", "is refused: .git: inside .git (or a symbolic link into it)"),
        ("rollouts/gitdir/config", "is refused: rollouts/gitdir: inside .git (or a symbolic link into it)"),
    ],
)
def test_a_path_into_git_is_refused(repo: Path, pattern: str, message: str) -> None:
    link(repo, "rollouts/gitdir", "../.git")
    with pytest.raises(TreeError) as err:
        select_files(repo, pattern)
    assert err.value.problem is TreeProblem.REFUSED
    assert str(err.value) == message


def test_links_inside_the_repository_are_followed(repo: Path) -> None:
    make(repo, "base/app.yaml")
    link(repo, "envs/prod", "../base")
    link(repo, "rollouts/alias.yml", "web.yaml")

    assert names(select_files(repo, "envs"), repo) == ["envs/prod/app.yaml"]
    assert names(select_files(repo, "envs/prod/app.yaml"), repo) == ["envs/prod/app.yaml"]
    assert names(select_files(repo, "rollouts"), repo) == [
        "rollouts/alias.yml",
        "rollouts/team/worker.yaml",
        "rollouts/web.yaml",
    ]


def test_link_loops_end_and_are_reported(repo: Path) -> None:
    link(repo, "rollouts/a.yaml", "b.yaml")
    link(repo, "rollouts/b.yaml", "a.yaml")
    link(repo, "rollouts/self", ".")
    link(repo, "rollouts/team/up", "..")
    link(repo, "rollouts/dangling.yaml", "missing.yaml")
    link(repo, "rollouts/dangling-dir", "missing")  # not a YAML name: skipped without a warning

    selection = select_files(repo, "rollouts")

    # Each real directory is walked once: no rollouts/self/web.yaml or rollouts/team/up/web.yaml.
    assert names(selection, repo) == ["rollouts/team/worker.yaml", "rollouts/web.yaml"]
    assert refusals(selection) == {
        "rollouts/a.yaml": RefusalReason.BROKEN,
        "rollouts/b.yaml": RefusalReason.BROKEN,
        "rollouts/dangling.yaml": RefusalReason.BROKEN,
    }


def test_committed_links_in_a_real_git_checkout(tmp_path: Path, outside: Path) -> None:
    up = Upstream(tmp_path / "up")
    up.write("rollouts/web.yaml", ROLLOUT.format(name="web"))
    up.link("rollouts/host-root", "/")
    up.link("rollouts/host-dir", "../../../host-only")
    up.link("rollouts/config.yaml", "../.git/config")
    up.link("rollouts/alias.yaml", "web.yaml")
    up.commit("links")
    checkout = tmp_path / "checkout"
    run_git("clone", "-q", str(up.bare), str(checkout), cwd=tmp_path)
    assert (checkout / "rollouts" / "host-root").is_symlink()  # git really checked the link out

    selection = select_files(checkout, "rollouts")

    assert names(selection, checkout) == ["rollouts/alias.yaml", "rollouts/web.yaml"]
    assert refusals(selection) == {
        "rollouts/config.yaml": RefusalReason.INTO_GIT,
        "rollouts/host-dir": RefusalReason.OUTSIDE,
        "rollouts/host-root": RefusalReason.OUTSIDE,
    }


# -- literal paths, globs, non-regular files ---------------------------------------------------


def test_an_existing_literal_path_is_not_a_glob(repo: Path) -> None:
    make(repo, "weird[1].yaml")
    make(repo, "ra.yaml")
    make(repo, "rb.yaml")
    make(repo, "r[ab].yaml")

    assert names(select_files(repo, "weird[1].yaml"), repo) == ["weird[1].yaml"]
    assert names(select_files(repo, "r[ab].yaml"), repo) == ["r[ab].yaml"]
    (repo / "r[ab].yaml").unlink()
    assert names(select_files(repo, "r[ab].yaml"), repo) == ["ra.yaml", "rb.yaml"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("rollouts/*.yaml", ["rollouts/web.yaml"]),
        ("**/*.yaml", ["other/x.yaml", "rollouts/team/worker.yaml", "rollouts/web.yaml", "top.yaml"]),
        ("rollout*", ["rollouts/api.yml", "rollouts/team/worker.yaml", "rollouts/web.yaml"]),
        ("*/team", ["rollouts/team/worker.yaml"]),
        ("rollouts/**", ["rollouts/api.yml", "rollouts/team/worker.yaml", "rollouts/web.yaml"]),
        ("rollouts/*.json", []),
    ],
)
def test_globs_keep_pathlib_semantics(repo: Path, pattern: str, expected: list[str]) -> None:
    make(repo, "rollouts/api.yml")
    make(repo, "rollouts/README.md")
    make(repo, "other/x.yaml")
    make(repo, "top.yaml")
    assert names(select_files(repo, pattern), repo) == expected


def test_a_glob_meeting_a_link_out_reports_it_and_stays_inside(repo: Path, outside: Path, touched: list[str]) -> None:
    link(repo, "rollouts/host.yaml", str(outside / "host-only-marker.yaml"))
    link(repo, "apps", str(outside))

    selection = select_files(repo, "*/*.yaml")

    assert names(selection, repo) == ["rollouts/web.yaml"]
    assert refusals(selection) == {"apps": RefusalReason.OUTSIDE, "rollouts/host.yaml": RefusalReason.OUTSIDE}
    calls = list(touched)
    assert [p for p in calls if inside(p, outside)] == []


def test_a_missing_literal_path_is_an_error(repo: Path) -> None:
    with pytest.raises(TreeError) as err:
        select_files(repo, "no-such-dir")
    assert err.value.problem is TreeProblem.MISSING
    with pytest.raises(TreeError) as through_file:
        select_files(repo, "rollouts/web.yaml/inside")
    assert through_file.value.problem is TreeProblem.MISSING


def _select_in_thread(root: Path, pattern: str) -> TreeSelection | TreeError:
    """Run select_files where a blocking open() of a FIFO could not hang the test."""
    result: list[TreeSelection | TreeError] = []

    def work() -> None:
        try:
            result.append(select_files(root, pattern))
        except TreeError as exc:
            result.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "select_files blocked: it opened a FIFO"
    return result[0]


def test_a_fifo_is_never_opened_and_is_reported_by_name(repo: Path) -> None:
    os.mkfifo(repo / "rollouts" / "x.yaml")
    os.mkfifo(repo / "rollouts" / "pipe")  # not a YAML name: skipped silently

    walked = _select_in_thread(repo, "rollouts")
    literal = _select_in_thread(repo, "rollouts/x.yaml")

    assert isinstance(walked, TreeSelection)
    assert names(walked, repo) == ["rollouts/team/worker.yaml", "rollouts/web.yaml"]
    assert [str(r) for r in walked.refused] == [
        "rollouts/x.yaml: not a regular file (a FIFO, socket or device); ignored"
    ]
    assert isinstance(literal, TreeError)
    assert literal.problem is TreeProblem.REFUSED
    assert str(literal) == "is refused: rollouts/x.yaml: not a regular file (a FIFO, socket or device)"


def test_a_socket_is_not_a_regular_file(tmp_path: Path) -> None:
    root = tmp_path / "c"  # short: a unix socket path is limited to ~100 bytes
    make(root, "web.yaml")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "s.yaml"))
        selection = select_files(root, ".")
    assert names(selection, root) == ["web.yaml"]
    assert refusals(selection) == {"s.yaml": RefusalReason.NOT_REGULAR}


def test_names_that_cannot_be_shown_as_they_are_are_refused(repo: Path) -> None:
    os.close(os.open(os.fsencode(repo / "rollouts") + b"/bad\xff.yaml", os.O_CREAT | os.O_WRONLY))
    make(repo, "rollouts/new\nline.yaml")
    make(repo, "rollouts/rtl\u202eylm.yaml")
    make(repo, "rollouts/ünïcödé.yaml")

    selection = select_files(repo, "rollouts")

    assert names(selection, repo) == ["rollouts/team/worker.yaml", "rollouts/web.yaml", "rollouts/ünïcödé.yaml"]
    assert refusals(selection) == {
        "rollouts/bad\\xff.yaml": RefusalReason.BAD_NAME,
        "rollouts/new\\x0aline.yaml": RefusalReason.BAD_NAME,
        "rollouts/rtl\\u202eylm.yaml": RefusalReason.BAD_NAME,
    }
    for refusal in selection.refused:
        refusal.path.encode("utf-8")  # strict: a log handler can write it


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rollouts/web.yaml", "rollouts/web.yaml"),
        ("ünïcödé ok", "ünïcödé ok"),
        ("bad\udcffname", "bad\\xffname"),
        ("tab\there", "tab\\x09here"),
        ("del\x7f", "del\\x7f"),
        ("rtl\u202e", "rtl\\u202e"),
        ("tag\U000e0041", "tag\\U000e0041"),
    ],
)
def test_printable(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert acceptable_name(text) is (text == shown)


# -- bounds ------------------------------------------------------------------------------------


def test_at_most_ten_thousand_entries_are_looked_at(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for index in range(10_000):
        os.close(os.open(root / f"f{index}.txt", os.O_CREAT | os.O_WRONLY))

    assert select_files(root, ".").entries == 10_000

    os.close(os.open(root / "one-more.txt", os.O_CREAT | os.O_WRONLY))
    with pytest.raises(TreeError) as err:
        select_files(root, ".")
    assert err.value.problem is TreeProblem.TOO_MANY_ENTRIES
    assert "more than 10000 files, directories and links" in str(err.value)


def test_a_deep_tree_is_walked_without_recursion(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    levels = [root]
    for _ in range(1200):  # deeper than Python's recursion limit (1000), shorter than PATH_MAX
        levels.append(levels[-1] / "d")
    for level in levels:
        level.mkdir()
    (levels[-1] / "x.yaml").write_text("kind: Rollout\n")
    try:
        selection = select_files(root, ".")
    finally:
        # pytest's own clean-up removes directories recursively: take this tree down level by level.
        (levels[-1] / "x.yaml").unlink()
        for level in reversed(levels):
            level.rmdir()
    assert names(selection, root) == ["/".join(["d"] * 1200) + "/x.yaml"]


def sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


def test_at_most_64_mib_of_yaml_per_selection(tmp_path: Path) -> None:
    root = tmp_path / "big"
    for index in range(64):
        sparse(root / f"r{index:02}.yaml", MIB)  # exactly the loader's 1 MiB limit: read, so counted
    link(root, "alias.yaml", "r00.yaml")  # the same file twice is read once

    selection = select_files(root, ".")
    assert selection.total_bytes == 64 * MIB
    assert len(selection.files) == 65

    sparse(root / "r64.yaml", 1)
    with pytest.raises(TreeError) as err:
        select_files(root, ".")
    assert err.value.problem is TreeProblem.TOO_MANY_BYTES
    assert f"more than {64 * MIB} bytes" in str(err.value)


def test_a_file_above_the_loaders_limit_is_listed_but_never_read(tmp_path: Path) -> None:
    root = tmp_path / "huge"
    make(root, "web.yaml", ROLLOUT.format(name="web"))
    sparse(root / "huge.yaml", 1024 * MIB)

    selection = select_files(root, ".")
    loaded = load_paths(list(selection.files), base=root)

    assert names(selection, root) == ["huge.yaml", "web.yaml"]
    assert selection.total_bytes == len(ROLLOUT.format(name="web"))
    # The loader refuses it by its size: the rollout is reported, not silently dropped.
    assert [str(e) for e in loaded.errors if e.file == "huge.yaml"] == [
        "huge.yaml#1: the file is 1073741824 bytes; KULTA reads files up to 1048576 bytes: split it"
    ]


def test_limits_can_be_lowered(repo: Path) -> None:
    with pytest.raises(TreeError) as entries:
        select_files(repo, ".", TreeLimits(max_entries=3))
    assert entries.value.problem is TreeProblem.TOO_MANY_ENTRIES
    with pytest.raises(TreeError) as size:
        select_files(repo, ".", TreeLimits(max_total_bytes=20))
    assert size.value.problem is TreeProblem.TOO_MANY_BYTES
