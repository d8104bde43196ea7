"""Real git repositories for unit tests: a bare remote and a working clone that pushes to it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["GIT_ENV", "ROLLOUT", "Upstream", "run_git"]

ROLLOUT = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: {name}\n"

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.test",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.test",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def run_git(*args: str, cwd: Path, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "core.symlinks=true", *args],
        cwd=cwd,
        env=GIT_ENV,
        check=True,
        capture_output=True,
        text=True,
        input=stdin,
    )
    return done.stdout.strip()


class Upstream:
    """A bare remote (``bare``) and a working clone (``work``) that commits and force-pushes ``main``."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        self.bare.mkdir(parents=True)
        run_git("init", "-q", "--bare", "--initial-branch=main", cwd=self.bare)
        run_git("clone", "-q", str(self.bare), str(self.work), cwd=root)
        run_git("checkout", "-q", "-B", "main", cwd=self.work)

    def write(self, rel: str, text: str) -> Path:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def link(self, rel: str, target: str) -> None:
        """Make ``rel`` a symbolic link to ``target`` (replacing a file or a whole directory)."""
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        os.symlink(target, path)

    def commit(self, message: str) -> str:
        run_git("add", "-A", cwd=self.work)
        run_git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        run_git("push", "-q", "--force", "origin", "HEAD:refs/heads/main", cwd=self.work)
        return self.head()

    def push_commit_object(self, text: str) -> str:
        """Write a raw commit object (e.g. one with a date git would never make) and push it as ``main``."""
        commit = run_git("hash-object", "-t", "commit", "-w", "--literally", "--stdin", cwd=self.work, stdin=text)
        run_git("push", "-q", "--force", "origin", f"{commit}:refs/heads/main", cwd=self.work)
        return commit

    def head(self) -> str:
        return run_git("rev-parse", "HEAD", cwd=self.work)
