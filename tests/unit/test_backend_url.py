"""Backend URLs: the PostgreSQL password is taken out of what the engine sees, and never shown.

The expected values are written out by hand from Pulumi's documented URL form
(pkg/backend/diy/postgres/README.md: ``postgres://user:pass@host:port/db?sslmode=...&table=...``)
and from the table layout Pulumi 3.260 writes (keys ``<db>/.pulumi/...``).
"""

from __future__ import annotations

import base64
import json

import pytest
from pulumi.automation._cmd import CommandResult
from pulumi.automation.errors import CommandError

from kulta.adapters.backend_url import BackendKind, parse_backend_url
from kulta.adapters.diy_state import lock_is_dead
from kulta.adapters.postgres_backend import PostgresBackend
from kulta.adapters.stacks import StackManager, StackSettings, _tail
from kulta.errors import ConfigError, DependencyError


@pytest.mark.parametrize(
    ("url", "engine", "password", "table", "prefix", "libpq"),
    [
        (
            "postgres://kulta:s3cret@db.internal:5432/state?sslmode=require",
            "postgres://kulta@db.internal:5432/state?sslmode=require",
            "s3cret",
            "pulumi_state",
            "state/",
            "postgresql://kulta@db.internal:5432/state?sslmode=require",
        ),
        (
            "postgres://kulta:p%40ss%2Fw0rd@127.0.0.1/kulta?table=rollouts&sslmode=disable",
            "postgres://kulta@127.0.0.1/kulta?table=rollouts&sslmode=disable",
            "p@ss/w0rd",
            "rollouts",
            "kulta/",
            "postgresql://kulta@127.0.0.1/kulta?sslmode=disable",
        ),
        (
            "postgres://kulta@db/state?password=hunter22&connect_timeout=5",
            "postgres://kulta@db/state?connect_timeout=5",
            "hunter22",
            "pulumi_state",
            "state/",
            "postgresql://kulta@db/state?connect_timeout=5",
        ),
        # everything from PG* variables (the README's "minimal connection string")
        ("postgres://", "postgres://", None, "pulumi_state", "", "postgresql://"),
    ],
)
def test_postgres_urls_lose_their_password_and_keep_everything_else(url, engine, password, table, prefix, libpq):
    b = parse_backend_url(url)
    assert b.kind is BackendKind.POSTGRES
    assert (b.engine_url, b.password, b.table, b.key_prefix, b.libpq_uri) == (engine, password, table, prefix, libpq)
    assert b.engine_env() == ({"PGPASSWORD": password} if password else {})


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("file:///var/lib/kulta/backend", BackendKind.FILE),
        ("s3://bucket/prefix?region=eu-west-1", BackendKind.OTHER),
        ("https://api.pulumi.com", BackendKind.OTHER),
    ],
)
def test_other_backends_pass_through_unchanged(url, kind):
    b = parse_backend_url(url)
    assert (b.kind, b.engine_url, b.password, b.engine_env()) == (kind, url, None, {})


def test_the_postgresql_scheme_is_refused_by_name_without_showing_the_password():
    with pytest.raises(ConfigError) as caught:
        parse_backend_url("postgresql://kulta:TopSecret99@db/state")
    assert "postgres://" in str(caught.value) and "TopSecret99" not in str(caught.value)


@pytest.mark.parametrize("table", ["state;drop table x", "1abc", "a-b", "x" * 64])
def test_a_table_that_is_no_plain_sql_name_is_refused(table):
    with pytest.raises(ConfigError, match="not a plain SQL name"):
        parse_backend_url(f"postgres://kulta:pw@db/state?table={table}")


def test_the_engine_environment_has_the_password_only_as_pgpassword(tmp_path, monkeypatch):
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    settings = StackSettings(state_dir=tmp_path, backend_url="postgres://kulta:Pa55word-xyz@db:5432/state")
    env = settings.env()
    assert env["PULUMI_BACKEND_URL"] == "postgres://kulta@db:5432/state"
    assert env["PGPASSWORD"] == "Pa55word-xyz"
    assert settings.resolved_backend() == "postgres://kulta@db:5432/state"
    # $PULUMI_BACKEND_URL is read the same way
    monkeypatch.setenv("PULUMI_BACKEND_URL", "postgres://kulta:Other-pw-123@db/state")
    assert StackSettings(state_dir=tmp_path).env()["PULUMI_BACKEND_URL"] == "postgres://kulta@db/state"


def test_the_display_form_masks_a_password_given_as_a_parameter():
    b = parse_backend_url("postgres://kulta@db/state?sslpassword=keyPass77&sslmode=verify-full")
    assert "keyPass77" not in b.display and "db/state" in b.display


def test_engine_errors_are_redacted_even_where_the_password_stands_alone():
    # a password with a space breaks the URL apart in the engine's text: the literal still goes
    b = parse_backend_url("postgres://kulta:two%20words@db/state")
    text = 'error: failed to ping PostgreSQL: parse "postgres://kulta:two words@db/state": invalid character'
    shown = _tail(CommandError(CommandResult(stdout="", stderr=text, code=255)), b.secrets)
    assert "two words" not in shown and "words@" not in shown
    assert "failed to ping PostgreSQL" in shown


def test_without_psql_the_stack_manager_reads_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no psql
    m = StackManager(StackSettings(state_dir=tmp_path, backend_url="postgres://kulta:pw@db/state"))
    assert m.direct is None
    assert m.lock_dir("dev.ns.web") is None


def test_a_row_is_decoded_from_the_form_pulumi_stores():
    # the row Pulumi 3.260 wrote for `pulumi stack tag set kulta-command x` (seen with psql)
    envelope = {"data": "eyJ2ZXJzaW9uIjoxLCJ0YWdzIjp7Imt1bHRhLWNvbW1hbmQiOiJ4In19"}
    reader = PostgresBackend(parse_backend_url("postgres://kulta@db/kulta"), "kulta", "psql")
    assert reader._decode("kulta/.pulumi/stacks/kulta/dev.x.y.pulumi-tags", envelope) == {
        "version": 1,
        "tags": {"kulta-command": "x"},
    }
    with pytest.raises(DependencyError, match="base64"):
        reader._decode("k", {"data": 7})
    not_json = base64.b64encode(b"{not json").decode()
    with pytest.raises(DependencyError):
        reader._decode("k", json.loads(json.dumps({"data": not_json})))


@pytest.mark.parametrize(
    ("info", "dead"),
    [
        ({"pid": 4242, "hostname": "kulta-0", "username": "ci", "timestamp": "2026-12-01T12:00:00Z"}, True),
        ({"pid": 4243, "hostname": "kulta-0"}, False),  # alive on this host
        ({"pid": 4242, "hostname": "kulta-1"}, False),  # another host: never judged
        ({"pid": 0, "hostname": "kulta-0"}, False),
        ({"pid": "not a pid", "hostname": "kulta-0"}, False),
        ({"hostname": "kulta-0"}, False),
        (["pid", 4242], False),
    ],
)
def test_a_lock_is_dead_only_when_its_process_of_this_host_is_gone(info, dead):
    assert lock_is_dead(info, "kulta-0", alive=lambda pid: pid != 4242) is dead


def test_an_unparsable_url_is_a_config_error():
    with pytest.raises(ConfigError, match="Invalid IPv6 URL"):
        parse_backend_url("postgres://kulta:s3cret@[::1/state")
