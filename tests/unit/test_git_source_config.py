"""GitSourceConfig validation, the per-command git environment and the retry backoff."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kulta.adapters.git_source import GitSource, GitSourceConfig, RepoKind, next_retry_delay
from kulta.errors import ConfigError

CACHE = Path("/nonexistent-cache")


@pytest.mark.parametrize(
    ("repo", "kind"),
    [
        ("/srv/git/repo.git", RepoKind.LOCAL),
        ("relative/repo", RepoKind.LOCAL),
        ("file:///srv/git/repo.git", RepoKind.LOCAL),
        ("https://github.com/org/repo.git", RepoKind.HTTP),
        ("http://127.0.0.1:8080/repo.git", RepoKind.HTTP),
        ("ssh://git@github.com/org/repo.git", RepoKind.SSH),
        ("git@github.com:org/repo.git", RepoKind.SSH),
    ],
)
def test_repo_kind(repo: str, kind: RepoKind) -> None:
    assert GitSourceConfig(repo, cache_dir=CACHE).kind is kind


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repo": "ext::sh -c touch% /tmp/pwned"}, "remote-helper"),
        ({"repo": "ftp://host/repo.git"}, "scheme 'ftp'"),
        ({"repo": "--upload-pack=evil"}, "not a repository"),
        ({"repo": ""}, "not a repository"),
        ({"branch": "-evil"}, "--branch"),
        ({"branch": "a..b"}, "--branch"),
        ({"branch": "has space"}, "--branch"),
        ({"branch": ""}, "--branch"),
        ({"path": "/etc"}, "--path"),
        ({"path": "../outside"}, "--path"),
        ({"path": "rollouts/../../x"}, "--path"),
        ({"timeout_seconds": 0}, "timeout"),
        ({"repo": "/srv/repo.git", "token_env": "TOKEN"}, "only applies to http"),
        ({"repo": "https://h/r.git", "ssh_key_path": "/k"}, "only applies to ssh"),
        ({"repo": "https://u:t@h/r.git", "token_env": "TOKEN"}, "not both"),
        ({"repo": "/srv/re\x00po.git"}, r"--repo: '/srv/re\\x00po\.git' holds control or invisible characters"),
        ({"repo": "/srv/repo.git\n"}, "--repo: .* holds control"),
        ({"repo": "https://[::1/r.git"}, "not a valid URL"),
        ({"path": "roll\x00outs"}, "--path: .* holds control"),
        ({"branch": "ma\u0085in"}, "--branch"),
        ({"repo": "git@h:r.git", "ssh_key_path": "/k\x00ey"}, "--ssh-key: .* holds control"),
        ({"repo": "https://h/r.git", "token_env": "T\x00K"}, "--token-env: .* holds control"),
        ({"repo": "ssh://git:pw@h/r.git"}, "an ssh URL cannot carry a password"),
        ({"max_entries": 0}, "limits must be positive"),
        ({"max_total_bytes": -1}, "limits must be positive"),
    ],
)
def test_invalid_config(kwargs: dict[str, object], message: str) -> None:
    options: dict[str, object] = {"repo": "/srv/repo.git", "cache_dir": CACHE}
    options.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        GitSourceConfig(**options)  # type: ignore[arg-type]


def test_config_error_does_not_echo_the_token() -> None:
    with pytest.raises(ConfigError) as err:
        GitSourceConfig("https://bot:hunter2hunter2@h/r.git", cache_dir=CACHE, token_env="T")
    assert "hunter2hunter2" not in str(err.value)


def test_an_ssh_password_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as err:
        GitSourceConfig("ssh://git:hunter2hunter2@h/r.git", cache_dir=CACHE)
    assert "hunter2hunter2" not in str(err.value)


def test_the_walk_limits_default_to_ten_thousand_entries_and_64_mib() -> None:
    limits = GitSourceConfig("/r", cache_dir=CACHE).limits
    assert (limits.max_entries, limits.max_total_bytes, limits.max_file_bytes) == (10_000, 64 * 1024 * 1024, 1 << 20)


@pytest.mark.parametrize("branch", ["main", "release/1.2", "feature_x-y", "v2"])
def test_valid_branches(branch: str) -> None:
    assert GitSourceConfig("/r", cache_dir=CACHE, branch=branch).branch == branch


def test_cache_dir_name_depends_on_redacted_url_and_branch() -> None:
    plain = GitSource(GitSourceConfig("https://h/r.git", cache_dir=CACHE))
    with_creds = GitSource(GitSourceConfig("https://bot:tok@h/r.git", cache_dir=CACHE))
    other_branch = GitSource(GitSourceConfig("https://h/r.git", cache_dir=CACHE, branch="dev"))
    assert plain.workdir == with_creds.workdir
    assert plain.workdir != other_branch.workdir
    assert plain.workdir.parent == CACHE
    assert len(plain.workdir.name) == 16
    assert "tok" not in with_creds.display_url


def test_https_token_goes_into_git_config_env_not_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KULTA_T", "tok-123456")
    source = GitSource(GitSourceConfig("https://h/r.git", cache_dir=CACHE, token_env="KULTA_T", username="bot"))
    env = source._command_env(source._credentials())
    pairs = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert pairs["http.extraHeader"] == "Authorization: Basic " + base64.b64encode(b"bot:tok-123456").decode()
    assert pairs["credential.helper"] == ""
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert "tok-123456" not in source.display_url


def test_ssh_key_is_passed_through_git_ssh_command() -> None:
    source = GitSource(GitSourceConfig("git@github.com:org/r.git", cache_dir=CACHE, ssh_key_path="/keys/deploy key"))
    env = source._command_env(source._credentials())
    assert env["GIT_SSH_COMMAND"] == "ssh -i '/keys/deploy key' -o IdentitiesOnly=yes -o BatchMode=yes"
    assert env["GIT_CONFIG_COUNT"] == "0"


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 0.0), (-3, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (9, 256.0), (10, 300.0), (1000, 300.0)],
)
def test_backoff_table(failures: int, expected: float) -> None:
    assert next_retry_delay(failures) == expected


def test_backoff_custom_base_and_cap() -> None:
    assert next_retry_delay(3, base=0.5, cap=1.5) == 1.5
    assert next_retry_delay(2, base=0.5, cap=10) == 1.0


@given(failures=st.integers(min_value=1, max_value=10_000), seed=st.integers())
def test_backoff_jitter_stays_within_half_and_full_delay(failures: int, seed: int) -> None:
    full = next_retry_delay(failures)
    jittered = next_retry_delay(failures, rng=random.Random(seed))
    assert full / 2 <= jittered <= full


@given(failures=st.integers(min_value=0, max_value=10_000))
def test_backoff_is_monotonic_and_capped(failures: int) -> None:
    assert next_retry_delay(failures) <= next_retry_delay(failures + 1) <= 300.0
