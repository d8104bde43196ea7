"""The local cluster's Prometheus survives a port taken between picking it and binding it."""

from __future__ import annotations

import os
import signal
import socket

import httpx
import pytest

from kulta.devcluster import _PortTakenError, _start_prometheus, _start_prometheus_on_a_free_port


def test_a_taken_port_is_named_and_the_free_port_start_picks_another(toolchain, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(_PortTakenError, match=f"127.0.0.1:{port} was taken"):
            _start_prometheus(tmp_path / "a", port)
    chosen, pid, _ = _start_prometheus_on_a_free_port(tmp_path / "b")
    try:
        assert httpx.get(f"http://127.0.0.1:{chosen}/-/ready", timeout=5).status_code == 200
    finally:
        os.killpg(pid, signal.SIGTERM)
