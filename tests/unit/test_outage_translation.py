"""Library failures become KULTA's errors where the library is called (issue 11, §5)."""

from __future__ import annotations

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from kulta.adapters.kube import _call
from kulta.core.commands import CommandKind, InvalidCommandError, ManualCommand
from kulta.errors import Dependency, DependencyError


def raising(exc: BaseException):
    def call() -> None:
        raise exc

    return call


@pytest.mark.parametrize(
    "exc",
    [
        urllib3.exceptions.MaxRetryError(None, "/apis", reason=ConnectionRefusedError(111, "Connection refused")),
        urllib3.exceptions.ProtocolError("Connection aborted."),
        urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out"),
        ConnectionResetError(104, "Connection reset by peer"),
        ApiException(status=503, reason="Service Unavailable"),
        ValueError("the answer was not JSON"),
    ],
    ids=["refused", "protocol", "timeout", "reset", "503", "garbage"],
)
def test_every_api_server_failure_is_a_dependency_error(exc):
    with pytest.raises(DependencyError) as raised:
        _call("reading HTTPRoute shop/web", raising(exc))
    assert raised.value.dependency is Dependency.KUBERNETES
    assert str(raised.value).startswith("Kubernetes API server unreachable: reading HTTPRoute shop/web: ")


def test_a_404_is_the_callers_to_decide():
    assert _call("reading x", raising(ApiException(status=404, reason="Not Found")), missing=lambda: None) is None
    with pytest.raises(DependencyError):
        _call("reading x", raising(ApiException(status=404, reason="Not Found")))


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object but list"),
        ('"promote"', "not a JSON object but str"),
        ('{"id": "x", "kind": "launch"}', "kind 'launch' is not one of promote, promote-full, abort, retry"),
        ('{"kind": "promote"}', "has no id"),
        ('{"id": 7, "kind": "abort"}', "has no id"),
        ("[" * 100_000, "characters long"),
    ],
)
def test_a_malformed_command_tag_is_refused_by_kultas_own_error(raw, why):
    with pytest.raises(InvalidCommandError, match=why):
        ManualCommand.from_config(raw)


def test_a_command_tag_kulta_wrote_is_read_back():
    command = ManualCommand("c-1", CommandKind.PROMOTE_FULL, "2026-12-01T12:00:00Z")
    assert ManualCommand.from_config(command.to_config()) == command
