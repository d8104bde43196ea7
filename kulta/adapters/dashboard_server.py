"""The dashboard's HTTP server: the standard library's threading server behind a token check.

Why ``http.server`` and not a framework: the dashboard serves a handful of
server-rendered pages, three static texts and one POST per manual command to
one person at a time. The standard library's ``ThreadingHTTPServer`` does that
without a new dependency (``prometheus_client``, which serves ``/metrics``, is
built on the same ``wsgiref``/``http.server`` family). Routing and rendering
live in ``kulta.app.dashboard``; this module only moves bytes and guards the door:

* **Bound to loopback** (the default): the ``Host`` header must name a loopback
  address, so a web page that re-binds its own DNS name to 127.0.0.1 cannot read
  the dashboard.
* **Bound elsewhere**: every request needs the token, as the ``X-Kulta-Token``
  header, the ``kulta_token`` cookie (set when a page is opened with
  ``?token=…``; ``HttpOnly``, ``SameSite=Strict``) or that query parameter.
* **Every POST** (a manual command) needs the token in the ``X-Kulta-Token``
  header, wherever the server is bound. A cookie is never enough, so another
  site cannot forge a command: a cross-site form cannot set a header, and a
  cross-site ``fetch`` with one needs a CORS preflight this server never grants.

Tokens are compared in constant time. Requests are bounded (path, body), and
every answer carries ``Cache-Control: no-store`` and a strict
``Content-Security-Policy`` (scripts and styles only from this server).
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from kulta.errors import ConfigError

__all__ = [
    "COOKIE_NAME",
    "HEADER_TOKEN",
    "DashboardServer",
    "HttpMethod",
    "HttpRequest",
    "HttpResponse",
    "is_loopback",
]

log = logging.getLogger(__name__)

HEADER_TOKEN = "X-Kulta-Token"  # noqa: S105 (a header name, not a secret)
COOKIE_NAME = "kulta_token"
QUERY_TOKEN = "token"  # noqa: S105 (a parameter name)
#: longer request targets are refused (rollout names are at most 253 characters)
MAX_TARGET = 2048
#: a command POST carries no body; anything larger is refused unread
MAX_BODY = 1024
#: query fields read from a request target (more is a 400)
MAX_QUERY_FIELDS = 20
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
    ),
}
LOOPBACK_NAMES = frozenset({"localhost"})


class HttpMethod(enum.Enum):
    GET = "GET"
    POST = "POST"


@dataclass(frozen=True)
class HttpRequest:
    """What the application sees of a request that passed the token check."""

    method: HttpMethod
    path: str
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpResponse:
    status: HTTPStatus
    body: bytes
    content_type: str = "text/html; charset=utf-8"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """``Host`` header without the port: ``127.0.0.1:8080`` → ``127.0.0.1``, ``[::1]:80`` → ``::1``."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "kulta-dashboard"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve(HttpMethod.GET)

    def do_POST(self) -> None:
        self._serve(HttpMethod.POST)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("dashboard request", extra={"client": self.client_address[0], "line": format % args})

    def _serve(self, method: HttpMethod) -> None:
        if len(self.path) > MAX_TARGET:
            self._send(HttpResponse(HTTPStatus.REQUEST_URI_TOO_LONG, b"request target too long\n", "text/plain"))
            return
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            self._send(HttpResponse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"body too large\n", "text/plain"))
            self.close_connection = True
            return
        self.rfile.read(int(length))
        url = urlsplit(self.path)
        try:
            query = {k: v[0] for k, v in parse_qs(url.query, max_num_fields=MAX_QUERY_FIELDS).items()}
        except ValueError:  # more fields than allowed
            self._send(HttpResponse(HTTPStatus.BAD_REQUEST, b"too many query fields\n", "text/plain"))
            return
        refusal = self._refusal(method, query)
        if refusal is not None:
            self._send(HttpResponse(HTTPStatus.FORBIDDEN, refusal.encode() + b"\n", "text/plain; charset=utf-8"))
            return
        try:
            response = self.server.app(HttpRequest(method, url.path, query))
        except Exception:  # a bug in a page must not drop the connection without an answer
            log.exception("dashboard: %s %s failed (a bug: please report it)", method.value, url.path)
            response = HttpResponse(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain")
        cookie = None
        if query.get(QUERY_TOKEN) and self._token_matches(query[QUERY_TOKEN]):
            cookie = f"{COOKIE_NAME}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
        self._send(response, cookie)

    def _refusal(self, method: HttpMethod, query: Mapping[str, str]) -> str | None:
        """Why the request is refused, or ``None``."""
        if self.server.loopback and not is_loopback(_host_name(self.headers.get("Host", ""))):
            return "this dashboard answers only requests for a loopback host name"
        header = self.headers.get(HEADER_TOKEN, "")
        if method is HttpMethod.POST:
            return None if self._token_matches(header) else f"a command needs the dashboard token in {HEADER_TOKEN}"
        if self.server.loopback:
            return None
        if self._token_matches(header) or self._token_matches(query.get(QUERY_TOKEN, "")):
            return None
        if self._token_matches(self._cookie()):
            return None
        return "open the URL with ?token=… as printed by `kulta dashboard`"

    def _cookie(self) -> str:
        try:
            jar = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return ""
        morsel = jar.get(COOKIE_NAME)
        return morsel.value if morsel is not None else ""

    def _token_matches(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.server.token.encode())

    def _send(self, response: HttpResponse, cookie: str | None = None) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(response.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: Callable[[HttpRequest], HttpResponse]
    token: str
    loopback: bool


class DashboardServer:
    """Serves ``app`` on ``host:port`` in a background thread until ``close``.

    ``token`` guards every request when ``host`` is not a loopback address, and
    every POST always. ``port`` 0 picks a free port (see ``port``).
    """

    def __init__(self, host: str, port: int, token: str, app: Callable[[HttpRequest], HttpResponse]) -> None:
        if not token:
            raise ConfigError("the dashboard needs a token")
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}") from exc
        self._server.app = app
        self._server.token = token
        self._server.loopback = is_loopback(host)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kulta-dashboard", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
