"""A ServiceAccount token rotated in its file is used at once, without a restart.

Real parts: the local kube-apiserver (RBAC, bound ServiceAccount tokens), the
kubeconfig KULTA ships for pods (``deploy/kubeconfig.yaml``, ``tokenFile``) and
a token directory laid out and swapped as the kubelet's projected volume does
(``token -> ..data/token``, ``..data`` a symlink replaced atomically). The
first token is bound to a Secret; deleting the Secret makes the API server
refuse it, which ``kubectl`` with that token shows before KULTA's client is
asked again.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from kulta.adapters.kube import KubeReader
from kulta.errors import DependencyError
from tests.integration.conftest import kubectl, unique
from tests.integration.test_deploy_manifests import SERVICE_ACCOUNT, sa_kubeconfig

pytestmark = pytest.mark.cluster

REPLICASET = "web-0123456789"


def bound_token(cluster, namespace: str, secret: str) -> str:
    kubectl(cluster, "create", "secret", "generic", secret, "-n", namespace)
    return kubectl(
        cluster,
        *("create", "token", SERVICE_ACCOUNT, "-n", namespace, "--duration=1h"),
        *("--bound-object-kind", "Secret", "--bound-object-name", secret),
    ).strip()


def project(directory: Path, token: str, generation: str) -> None:
    """Write ``token`` as the kubelet does: a new timestamped directory, then ``..data`` swapped to it."""
    target = directory / f"..{generation}"
    target.mkdir()
    (target / "token").write_text(token)
    staged = directory / "..data_tmp"
    staged.symlink_to(target.name)
    os.replace(staged, directory / "..data")
    if not (directory / "token").is_symlink():
        (directory / "token").symlink_to("..data/token")


def refused(kubeconfig: Path, token: str) -> bool:
    """Whether the API server refuses ``token`` (kubectl with that token alone: in a
    kubeconfig a ``tokenFile`` would win over ``--token``)."""
    cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
    proc = subprocess.run(
        [
            *("kubectl", "--kubeconfig", os.devnull, "--server", cluster["server"]),
            *("--certificate-authority", cluster["certificate-authority"], "--token", token, "auth", "whoami"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return proc.returncode != 0 and "Unauthorized" in proc.stderr


def test_a_rotated_service_account_token_is_read_again_on_the_next_call(cluster, tmp_path):
    own = unique("token")
    kubectl(cluster, "create", "namespace", own)
    kubectl(cluster, "create", "serviceaccount", SERVICE_ACCOUNT, "-n", own)
    kubectl(cluster, "create", "role", "read-rs", "--verb=get", "--resource=replicasets", "-n", own)
    kubectl(
        cluster,
        "create",
        "rolebinding",
        "read-rs",
        "--role=read-rs",
        f"--serviceaccount={own}:{SERVICE_ACCOUNT}",
        "-n",
        own,
    )
    tokens = tmp_path / "serviceaccount"
    tokens.mkdir()
    first = bound_token(cluster, own, "bind-first")
    project(tokens, first, "2026_12_01_10_00_00.1")
    kubeconfig = sa_kubeconfig(cluster, own, tmp_path, token_file=tokens / "token")
    reader = KubeReader(str(kubeconfig))
    assert reader.replicaset_replicas(own, {REPLICASET: 1}) == {REPLICASET: None}  # allowed, and not there
    # a client that keeps the token it read first, as the Python client alone does
    stale = KubeReader(str(kubeconfig))
    stale._apps.api_client.configuration.refresh_api_key_hook = None

    assert not refused(kubeconfig, first)  # the probe below can tell accepted from refused
    # the kubelet rotates the token; the old one stops working (the API server caches
    # a token's review for 10 s)
    project(tokens, bound_token(cluster, own, "bind-second"), "2026_12_01_10_50_00.2")
    kubectl(cluster, "delete", "secret", "bind-first", "-n", own)
    deadline = time.monotonic() + 60
    while not refused(kubeconfig, first):
        assert time.monotonic() < deadline, "the API server still takes the first token"
        time.sleep(0.5)

    # the same client, no restart: the next call carries the new token
    assert reader.replicaset_replicas(own, {REPLICASET: 1}) == {REPLICASET: None}

    # the file gone for a moment (a swap in progress): the token in use stays
    (tokens / "..data").unlink()
    assert reader.replicaset_replicas(own, {REPLICASET: 1}) == {REPLICASET: None}

    # the client that kept the first token is refused: without the re-read this test fails
    with pytest.raises(DependencyError, match="401"):
        stale.replicaset_replicas(own, {REPLICASET: 1})
