"""Redaction of credentials in URLs, headers and key=value text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kulta.redact import REDACTED, UrlCredentials, redact_text, redact_url, split_url_credentials

SECRET = "s3cr3tT0ken"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        (f"https://user:{SECRET}@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
        (f"https://{SECRET}@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
        (f"https://x-access-token:{SECRET}@github.com:8443/r", "https://***@github.com:8443/r"),
        (f"http://user:{SECRET}@127.0.0.1:9/repo.git", "http://***@127.0.0.1:9/repo.git"),
        (f"https://user:{SECRET}@[::1]:8080/r.git", "https://***@[::1]:8080/r.git"),
        (f"https://user:p@ss{SECRET}@host/r", "https://***@host/r"),
        (f"https://user:{SECRET}@host", "https://***@host"),
        (f"https://user:{SECRET}@host?x=1", "https://***@host?x=1"),
        (f"ssh://git:{SECRET}@host:22/org/repo.git", "ssh://***@host:22/org/repo.git"),
        ("ssh://git@host/org/repo.git", "ssh://***@host/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
        ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
        (f"https://host/repo.git?token={SECRET}", "https://host/repo.git?token=***"),
        (f"https://host/api?private_token={SECRET}&page=2", "https://host/api?private_token=***&page=2"),
        (f"HTTPS://USER:{SECRET}@HOST/R", "HTTPS://***@HOST/R"),
        (f"https://user%40corp:{SECRET}%2F@host/r", "https://***@host/r"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Basic {SECRET}", "Authorization: Basic ***"),
        (f"authorization: bearer {SECRET}", "authorization: bearer ***"),
        (
            f"-c http.extraHeader=Authorization: Bearer {SECRET} fetch",
            "-c http.extraHeader=Authorization: Bearer *** fetch",
        ),
        (f'{{"Authorization": "token {SECRET}"}}', '{"Authorization": "token ***"}'),
        (f"Authorization={SECRET}", "Authorization=***"),
        (f"token={SECRET} other=1", "token=*** other=1"),
        (f"GITHUB_TOKEN={SECRET}", "GITHUB_TOKEN=***"),
        (f"password: {SECRET}", "password: ***"),
        (f"'api_key': '{SECRET}'", "'api_key': '***'"),
        (f"X-Api-Key: {SECRET}", "X-Api-Key: ***"),
        (f"client_secret={SECRET}&grant=x", "client_secret=***&grant=x"),
        (
            f"fatal: unable to access 'https://bot:{SECRET}@git.example/r.git/': 401",
            "fatal: unable to access 'https://***@git.example/r.git/': 401",
        ),
        (
            f"cmdline: git clone -v -- https://a:{SECRET}@h/r.git /tmp/x",
            "cmdline: git clone -v -- https://***@h/r.git /tmp/x",
        ),
        (
            "nothing secret here: tokens are counted, see token_env",
            "nothing secret here: tokens are counted, see token_env",
        ),
        ("mail me at someone@example.com", "mail me at someone@example.com"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_literal_secrets_are_masked_anywhere() -> None:
    text = f"header was {SECRET}xyz and prefix-{SECRET}"
    assert redact_text(text, secrets=[SECRET]) == "header was ***xyz and prefix-***"


def test_very_short_literal_secrets_are_not_replaced() -> None:
    assert redact_text("a cat sat", secrets=["a", ""]) == "a cat sat"


def test_longer_secret_is_replaced_before_its_prefix() -> None:
    assert redact_text("abcd1234xyz", secrets=["abcd", "abcd1234xyz"]) == REDACTED


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://host/r.git", UrlCredentials("https://host/r.git", None, None)),
        ("https://bot:tok@host/r.git", UrlCredentials("https://host/r.git", "bot", "tok")),
        ("https://tok@host:8443/r.git", UrlCredentials("https://host:8443/r.git", "tok", None)),
        ("https://bot:@host/r", UrlCredentials("https://host/r", "bot", "")),
        ("https://b%40t:p%3Aw@host/r", UrlCredentials("https://host/r", "b@t", "p:w")),
        ("https://u:p@ss@host/r", UrlCredentials("https://host/r", "u", "p@ss")),
        ("git@github.com:org/r.git", UrlCredentials("git@github.com:org/r.git", None, None)),
        ("/srv/repo", UrlCredentials("/srv/repo", None, None)),
    ],
)
def test_split_url_credentials(url: str, expected: UrlCredentials) -> None:
    assert split_url_credentials(url) == expected


# The "~S~" prefix keeps a generated value from being a substring of the surrounding text by chance.
_secret_chars = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~", min_size=6).map(
    lambda s: "~S~" + s
)
_hosts = st.sampled_from(["github.com", "127.0.0.1:8080", "git.example.test", "[::1]:443"])


@given(user=_secret_chars, secret=_secret_chars, host=_hosts, scheme=st.sampled_from(["http", "https", "ssh"]))
def test_userinfo_never_survives(user: str, secret: str, host: str, scheme: str) -> None:
    text = f"fatal: cannot reach '{scheme}://{user}:{secret}@{host}/org/repo.git/' (exit 128)"
    redacted = redact_text(text)
    assert secret not in redacted
    assert user not in redacted
    assert host in redacted


@given(secret=_secret_chars, key=st.sampled_from(["token", "access_token", "password", "Authorization"]))
def test_key_value_never_survives(secret: str, key: str) -> None:
    redacted = redact_text(f"request failed {key}={secret} status=401")
    assert secret not in redacted
    assert "status=401" in redacted


@given(st.text())
def test_redaction_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once
