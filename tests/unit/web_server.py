"""A real HTTP server on 127.0.0.1 (a free port) for web metric tests: scripted answers, recorded requests."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["Answer", "Received", "WebServer", "serving"]


@dataclass(frozen=True)
class Answer:
    """What the server sends for one path: status, body bytes, an optional delay before answering."""

    body: bytes
    status: int = 200
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebServer:
    port: int
    scheme: str = "http"
    answers: dict[str, Answer] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


@contextmanager
def serving(tls: tuple[Path, Path] | None = None) -> Iterator[WebServer]:
    """Start the server (port 0: the kernel picks a free one), stop it on exit.

    ``tls`` (certificate, key) serves HTTPS with that certificate.
    """
    state: dict[str, WebServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            server = state["server"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.received.append(Received(self.command, self.path, dict(self.headers.items()), body))
            answer = server.answers.get(self.path.split("?", 1)[0], Answer(b'{"error":"no such path"}', 404))
            if answer.delay:
                time.sleep(answer.delay)
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (a timeout test)

        do_GET = _answer  # noqa: N815 (http.server's naming)
        do_POST = _answer  # noqa: N815
        do_PUT = _answer  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state["server"] = WebServer(port=httpd.server_address[1], scheme="https" if tls else "http")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
