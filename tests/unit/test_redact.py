"""Redaction of credentials in URLs, headers and key=value text."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kulta.redact import (
    REDACTED,
    UrlCredentials,
    cap,
    is_secret_key,
    redact_text,
    redact_url,
    redact_value,
    safe_text,
    split_url_credentials,
)

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


# --------------------------------------------------------------------------- issue 11: what the redactor used to miss

_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----"  # public: left alone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # userinfo with unencoded '/', '?' or '#' in the password
        (f"https://user:p/ss{SECRET}@host/x", "https://***@host/x"),
        (f"clone 'https://bot:a/b/{SECRET}@git.example/r.git' failed", "clone 'https://***@git.example/r.git' failed"),
        (f"https://u:p?{SECRET}@host/r", "https://***@host/r"),
        (f"https://u:p#{SECRET}@host/r", "https://***@host/r"),
        # passphrases
        (f"PULUMI_CONFIG_PASSPHRASE={SECRET} pulumi up", "PULUMI_CONFIG_PASSPHRASE=*** pulumi up"),
        (f"passphrase: {SECRET}", "passphrase: ***"),
        # cookies: the value runs to the end of the line
        (f"Cookie: session={SECRET}; theme=dark", "Cookie: ***"),
        (f"Set-Cookie: sid={SECRET}; Path=/; HttpOnly\nnext line", "Set-Cookie: ***\nnext line"),
        (f'{{"set-cookie": "sid={SECRET}; Path=/"}}', '{"set-cookie": "***"}'),
        # cloud keys
        (f"aws_secret_access_key = {SECRET}", "aws_secret_access_key = ***"),
        (f"AWS_SECRET_ACCESS_KEY={SECRET}", "AWS_SECRET_ACCESS_KEY=***"),
        (f"private_key: {SECRET}", "private_key: ***"),
        # query secrets
        (
            f"https://acct.blob.example/c/b?sv=2020-08-04&sig={SECRET}&se=1",
            "https://acct.blob.example/c/b?sv=2020-08-04&sig=***&se=1",
        ),
        (
            f"https://b.s3.example/k?X-Amz-Credential={SECRET}%2F20240101&X-Amz-Date=20240101T000000Z"
            f"&X-Amz-Signature={SECRET}",
            "https://b.s3.example/k?X-Amz-Credential=***&X-Amz-Date=20240101T000000Z&X-Amz-Signature=***",
        ),
        (
            f"/q?access_token={SECRET}&apikey={SECRET}&api_key={SECRET}&page=2",
            "/q?access_token=***&apikey=***&api_key=***&page=2",
        ),
        (f"/q?password={SECRET}&secret={SECRET}&signature={SECRET}", "/q?password=***&secret=***&signature=***"),
        # JSON-array header values, quoted values with spaces and escapes
        (f'{{"Authorization": ["Bearer {SECRET}"]}}', '{"Authorization": ["***"]}'),
        (f'{{"Authorization": ["Bearer {SECRET}", "Basic {SECRET}"]}}', '{"Authorization": ["***"]}'),
        (f'password: "correct horse {SECRET}" and more', 'password: "***" and more'),
        (f"'password': 'a b {SECRET}'", "'password': '***'"),
        (f'{{"password": "a\\" b {SECRET}"}}', '{"password": "***"}'),
        # bearer tokens anywhere, URL-encoded separators
        (f"retrying with Bearer {SECRET}", "retrying with Bearer ***"),
        (f"Authorization: Bearer%20{SECRET}", "Authorization: Bearer%20***"),
        (f"?h=Bearer+{SECRET}&x=1", "?h=Bearer+***&x=1"),
        # PEM private keys (a block cut short is masked to the end)
        (
            f"key -----BEGIN RSA PRIVATE KEY-----\nMIIE{SECRET}\n-----END RSA PRIVATE KEY----- used",
            "key -----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY----- used",
        ),
        (
            f'"-----BEGIN OPENSSH PRIVATE KEY-----\\nb3Blbn{SECRET}\\n-----END OPENSSH PRIVATE KEY-----\\n"',
            '"-----BEGIN OPENSSH PRIVATE KEY-----***-----END OPENSSH PRIVATE KEY-----\\n"',
        ),
        (f"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF{SECRET} (truncated", "-----BEGIN ENCRYPTED PRIVATE KEY-----***"),
        (_CERTIFICATE, _CERTIFICATE),
        # left alone: words that merely contain a secret word, public query keys
        ("tokens=3 signed consignment sigma=2", "tokens=3 signed consignment sigma=2"),
        ("https://h/q?X-Amz-Date=20240101&region=eu", "https://h/q?X-Amz-Date=20240101&region=eu"),
    ],
)
def test_redact_text_issue_11_cases(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "echo",
    [
        f"Bearer {SECRET}",  # as given
        f"Bearer%20{SECRET}",  # URL-encoded (httpx query, percent-encoding)
        f"Bearer+{SECRET}",  # form-encoded
        f"token {SECRET}",  # the credentials alone behind another word
        f"?auth=Bearer%20{SECRET}",
    ],
)
def test_known_header_value_is_masked_in_its_echoed_forms(echo: str) -> None:
    redacted = redact_text(f"upstream said: {echo} was refused", secrets=[f"Bearer {SECRET}"])
    assert SECRET not in redacted
    assert redacted.startswith("upstream said: ")
    assert redacted.endswith(" was refused")


def test_known_secret_with_reserved_characters_is_masked_url_encoded_and_json_escaped() -> None:
    secret = 'p@ss/w"rd?x'
    text = 'q=p%40ss%2Fw%22rd%3Fx body={"v": "p@ss/w\\"rd?x"}'
    redacted = redact_text(text, secrets=[secret])
    assert redacted == 'q=*** body={"v": "***"}'


# Each unit, repeated to 1 MB, is a worst case for a backtracking pattern:
# ``a.a.a`` once took 16 s for 16 KB (every '.' restarted a key/URL scheme scan).
_ADVERSARIAL_UNITS = [
    "a.",
    "a-",
    "user:",
    "=",
    "token=",
    "token=[ ",
    "\"'",
    'password: "',
    "password: '\\",
    "authorization: ",
    "cookie: ",
    "x://",
    "x://a@",
    "https://a/",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN ",
    "Bearer ",
    "sig=",
    "\\",
]


@pytest.mark.parametrize("unit", _ADVERSARIAL_UNITS)
def test_redaction_of_one_megabyte_of_adversarial_text_is_linear(unit: str) -> None:
    # The linear redactor needs ~0.2 s here (bench/redact_speed.py); a quadratic one, hours.
    # The bound is loose on purpose so a loaded CI machine cannot make it flake.
    text = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]
    started = time.perf_counter()
    redact_text(text, secrets=[f"Bearer {SECRET}"])
    assert time.perf_counter() - started < 5.0


_CONTEXTS = [
    "https://user:{s}@host/r",
    "https://user:a/{s}@host/r",
    "Authorization: Bearer {s}",
    '"Authorization": ["Bearer {s}"]',
    "Cookie: a={s}; b=1",
    "PULUMI_CONFIG_PASSPHRASE={s}",
    'password: "x y {s}"',
    "https://h/p?x=1&sig={s}&y=2",
    "-----BEGIN PRIVATE KEY-----\n{s}\n-----END PRIVATE KEY-----",
]


@given(
    secret=_secret_chars,
    context=st.sampled_from(_CONTEXTS),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_secret_in_a_known_context_never_survives(secret: str, context: str, before: str, after: str) -> None:
    text = f"{before} {context.format(s=secret)} {after}"
    assert secret not in redact_text(text)


# --------------------------------------------------------------------------- cap, safe_text, redact_value


def test_cap_keeps_short_text() -> None:
    assert cap("x" * 64, 64) == "x" * 64


def test_cap_cuts_to_the_limit_with_a_marker_counting_what_was_cut() -> None:
    # 42 kept + "… (58 more characters)" (22 characters) = 64
    assert cap("x" * 100, 64) == "x" * 42 + "… (58 more characters)"


def test_cap_default_limit_is_2000_characters() -> None:
    capped = cap("y" * 10_000)
    # 1976 kept + "… (8024 more characters)" (24 characters) = 2000
    assert capped == "y" * 1976 + "… (8024 more characters)"


def test_cap_refuses_a_limit_too_small_for_its_marker() -> None:
    with pytest.raises(ValueError, match="at least 64"):
        cap("text", 10)


def test_safe_text_redacts_before_cutting() -> None:
    # The '@' that identifies the userinfo lies beyond the cut: cutting first would leak the password.
    text = "x" * 40 + f" https://bot:{SECRET}" + "a" * 100 + "@host/r"
    assert SECRET not in safe_text(text, limit=64)
    assert safe_text(text, limit=64).startswith("x" * 40 + " https://***@host/r"[:10])


def test_redact_value_walks_mappings_and_sequences() -> None:
    value = {
        "rollout": "web",
        "step": 2,
        "ok": True,
        "none": None,
        "headers": {"Authorization": f"Basic {SECRET}", "Accept": "application/json"},
        "args": [f"token={SECRET}", ("https://u:" + SECRET + "@h/r",)],
        "db_password": {"nested": SECRET},
    }
    assert redact_value(value) == {
        "rollout": "web",
        "step": 2,
        "ok": True,
        "none": None,
        "headers": {"Authorization": "***", "Accept": "application/json"},
        "args": ["token=***", ["https://***@h/r"]],
        "db_password": "***",
    }


def test_redact_value_renders_other_objects_as_redacted_text() -> None:
    class Remote:
        def __str__(self) -> str:
            return f"remote https://u:{SECRET}@h/r"

    assert redact_value({"remote": Remote()}) == {"remote": "remote https://***@h/r"}


def test_redact_value_masks_known_literals_and_caps_strings() -> None:
    assert redact_value(["x" + SECRET + "y", "z" * 3000], secrets=[SECRET], limit=100) == [
        "x***y",
        "z" * 76 + "… (2924 more characters)",
    ]


def test_redact_value_stops_at_a_fixed_depth() -> None:
    deep: list[object] = ["leaf"]
    for _ in range(20):
        deep = [deep]
    flat = redact_value(deep)
    for _ in range(8):
        assert isinstance(flat, list)
        flat = flat[0]
    assert isinstance(flat, str)
    assert "leaf" in flat


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("GITHUB_TOKEN", True),
        ("Authorization", True),
        ("Set-Cookie", True),
        ("db_password", True),
        ("aws_secret_access_key", True),
        ("sig", True),
        ("rollout", False),
        ("token_env", False),
        ("tokens", False),
        ("config", False),
    ],
)
def test_is_secret_key(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret
