"""``kulta dashboard``: the pages and the JSON behind them, over the CLI's own reads and writes.

Routes (``DashboardApp.__call__``; the HTTP server and its token check are
``kulta.adapters.dashboard_server``):

====  ==============================================  ===========================================
GET   ``/``                                           every rollout of the environment
GET   ``/rollouts/<namespace>/<name>``                one rollout (``?fragment=1``: only ``main``)
GET   ``/api/rollouts``                               the overview as JSON
GET   ``/api/rollouts/<namespace>/<name>``            one rollout as JSON
POST  ``/api/rollouts/<namespace>/<name>/<command>``  promote, promote-full, abort or retry
GET   ``/static/dashboard.css``, ``…/dashboard.js``   the stylesheet and the page's script
====  ==============================================  ===========================================

Reads go through ``read_status_rows`` (what ``kulta status`` prints),
``StackManager.history`` (``kulta history``) and ``read_health``; a command goes
through ``request_command``, the very function behind ``kulta promote|abort|retry``,
so the dashboard writes the same ``kulta-command`` tag with the same checks. Argo Rollouts'
dashboard is built the same way: ``ArgoRolloutsServer.PromoteRollout`` / ``AbortRollout``
(``server/server.go``) call the CLI's ``promote.PromoteRollout`` / ``abort.AbortRollout``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape
from http import HTTPStatus
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from kulta.adapters.dashboard_server import HttpMethod, HttpRequest, HttpResponse
from kulta.adapters.health_file import read_health
from kulta.adapters.stacks import StackManager
from kulta.app.commands import read_status_rows, request_command
from kulta.app.dashboard_html import detail_fragment, overview_fragment, page
from kulta.app.dashboard_view import detail_view, overview_rows
from kulta.core.commands import CommandKind
from kulta.errors import ConfigError, KultaError
from kulta.model.analysis import AnalysisTemplate

__all__ = ["DashboardApp"]

log = logging.getLogger(__name__)

JSON = "application/json"
HTML = "text/html; charset=utf-8"
_ASSETS = files("kulta.app") / "dashboard_static"
#: the stylesheet and the script, shipped as package data and read once
STATIC = {
    "/static/dashboard.css": ((_ASSETS / "dashboard.css").read_bytes(), "text/css; charset=utf-8"),
    "/static/dashboard.js": ((_ASSETS / "dashboard.js").read_bytes(), "text/javascript; charset=utf-8"),
}
API = "api"
ROLLOUTS = "rollouts"
FRAGMENT = "fragment"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class DashboardApp:
    """Answers one request at a time from the backend; holds no state of its own."""

    def __init__(
        self,
        stacks: StackManager,
        environment: str,
        state_dir: Path,
        token: str,
        templates: Sequence[AnalysisTemplate] = (),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.stacks = stacks
        self.environment = environment
        self.state_dir = state_dir
        self.token = token
        self.templates = tuple(templates)
        self.clock = clock

    def __call__(self, request: HttpRequest) -> HttpResponse:
        parts = [unquote(p) for p in request.path.split("/") if p]
        api = parts[:1] == [API]
        try:
            if request.method is HttpMethod.POST:
                return self._command(parts)
            if request.path in STATIC:
                body, content_type = STATIC[request.path]
                return HttpResponse(HTTPStatus.OK, body, content_type)
            fragment = request.query.get(FRAGMENT) == "1"
            route = parts[1:] if api else parts
            if not route or route == [ROLLOUTS]:
                return self._overview(api, fragment)
            if len(route) == 3 and route[0] == ROLLOUTS:
                return self._detail(route[1], route[2], api, fragment)
            return self._error(HTTPStatus.NOT_FOUND, f"no page {request.path}", api)
        except ConfigError as exc:  # an unknown rollout, or a command that does not fit
            status = HTTPStatus.CONFLICT if request.method is HttpMethod.POST else HTTPStatus.NOT_FOUND
            return self._error(status, str(exc), as_json=api)
        except KultaError as exc:  # the backend cannot be read right now: said, and the page retries
            log.warning("dashboard cannot read the backend", extra={"error": str(exc)})
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), as_json=api)

    # -- pages --------------------------------------------------------------------------
    def _overview(self, as_json: bool, fragment: bool) -> HttpResponse:
        rows = overview_rows(read_status_rows(self.stacks, self.environment), read_health(self.state_dir))
        if as_json:
            return _json(HTTPStatus.OK, {"environment": self.environment, "rollouts": [r.to_json() for r in rows]})
        return self._html(HTTPStatus.OK, "Rollouts", overview_fragment(self.environment, rows), fragment)

    def _detail(self, namespace: str, name: str, as_json: bool, fragment: bool) -> HttpResponse:
        ((ref, status),) = read_status_rows(self.stacks, self.environment, f"{namespace}/{name}")
        view = detail_view(ref, status, self.stacks.history(ref.name), read_health(self.state_dir), self.templates)
        if as_json:
            return _json(HTTPStatus.OK, view.to_json())
        return self._html(HTTPStatus.OK, f"{namespace}/{name}", detail_fragment(view), fragment)

    def _command(self, parts: list[str]) -> HttpResponse:
        if len(parts) != 5 or parts[:2] != [API, ROLLOUTS]:
            return self._error(HTTPStatus.NOT_FOUND, "commands are POSTed to /api/rollouts/<ns>/<name>/<command>", True)
        try:
            kind = CommandKind(parts[4])
        except ValueError:
            known = ", ".join(k.value for k in CommandKind)
            return self._error(HTTPStatus.NOT_FOUND, f"no command {parts[4]!r} (one of {known})", True)
        ref, cmd = request_command(self.stacks, self.environment, f"{parts[2]}/{parts[3]}", kind, self.clock())
        log.info("dashboard command", extra={"stack": ref.name, "command": kind.value, "id": cmd.id})
        name = f"{ref.namespace}/{ref.rollout}"
        message = f"{kind.value} requested for {name} (id {cmd.id[:8]}); applied on the next pass"
        return _json(HTTPStatus.OK, {"ok": True, "message": message, "id": cmd.id})

    # -- answers ------------------------------------------------------------------------
    def _html(self, status: HTTPStatus, title: str, body: str, fragment: bool) -> HttpResponse:
        text = body if fragment else page(title, body, self.token)
        return HttpResponse(status, text.encode(), HTML)

    def _error(self, status: HTTPStatus, message: str, as_json: bool) -> HttpResponse:
        if as_json:
            return _json(status, {"ok": False, "message": message})
        body = f'<h1>{status.value} {escape(status.phrase)}</h1><p class="failing">{escape(message)}</p>'
        return self._html(status, status.phrase, body, fragment=False)


def _json(status: HTTPStatus, data: dict[str, Any]) -> HttpResponse:
    return HttpResponse(status, json.dumps(data, indent=1).encode(), JSON)
