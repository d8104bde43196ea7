"""A kubeconfig's ``tokenFile`` read again whenever the file changes.

In a pod the ServiceAccount token is a projected file the kubelet replaces
before it expires (about hourly on clusters without
``--service-account-extend-token-expiration``). client-go (the Pulumi
kubernetes provider) re-reads a ``tokenFile``; the Python client reads it once,
when the client is made. ``TokenFileRefresher`` is the Python client's
``refresh_api_key_hook``: before each request it compares the file's identity
(inode, size, modification time: one ``stat``) with what it read last and
reads the token again when it changed, so a rotated token is used on the next
call without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

__all__ = ["TokenFileRefresher", "token_file_of"]

log = logging.getLogger(__name__)

#: a kubeconfig is a few KiB; a token a few hundred bytes to a few KiB
MAX_KUBECONFIG_BYTES = 1024 * 1024
MAX_TOKEN_BYTES = 64 * 1024
BEARER = "BearerToken"


def _default_kubeconfig() -> Path | None:
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if len(paths) > 1:
        return None  # merged kubeconfigs: left to the client's own loader
    return Path(paths[0] if paths else "~/.kube/config").expanduser()


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _named(items: Any, name: Any) -> dict[str, Any]:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return {}


def token_file_of(kubeconfig: str | None) -> Path | None:
    """The ``tokenFile`` of ``kubeconfig``'s current user (relative to the kubeconfig's
    directory), or None when it has none. Only called once the client has loaded the
    same file, so a file that cannot be read here is simply not watched."""
    path = Path(kubeconfig).expanduser() if kubeconfig else _default_kubeconfig()
    if path is None:
        return None
    try:
        with path.open("rb") as f:
            text = f.read(MAX_KUBECONFIG_BYTES + 1)
        if len(text) > MAX_KUBECONFIG_BYTES:
            return None
        data = _mapping(yaml.safe_load(text))
    except (OSError, yaml.YAMLError, RecursionError):
        return None
    context = _mapping(_named(data.get("contexts"), data.get("current-context")).get("context"))
    user = _mapping(_named(data.get("users"), context.get("user")).get("user"))
    token_file = user.get("tokenFile")
    if not isinstance(token_file, str) or not token_file or "token" in user:
        return None  # an inline token wins over the file in the client's loader
    return path.parent / Path(token_file).expanduser()


class TokenFileRefresher:
    """``Configuration.refresh_api_key_hook`` that re-reads a rotated token file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._guard = threading.Lock()
        self._seen = self._identity()

    def _identity(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)  # follows the kubelet's ..data symlink swap
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def __call__(self, configuration: client.Configuration) -> None:
        identity = self._identity()
        with self._guard:
            if identity is None or identity == self._seen:
                return  # unchanged, or gone for a moment: the token in use stays
            try:
                with self.path.open("rb") as f:
                    token = f.read(MAX_TOKEN_BYTES + 1).decode("utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("cannot read the rotated token file %s: %s", self.path, type(exc).__name__)
                return
            if not token or len(token) > MAX_TOKEN_BYTES:
                log.warning("the token file %s is empty or too large; keeping the token in use", self.path)
                return
            self._seen = identity
            configuration.api_key[BEARER] = f"Bearer {token}"
        log.info("token file %s changed: using the new token", self.path)
