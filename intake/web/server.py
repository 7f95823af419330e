"""The HTTP side of ``intake serve``: a Starlette app on uvicorn, on the daemon's own loop.

Routes: ``/healthz`` (every supervised task alive: 200, else 503), ``/readyz`` (every
readiness check passes: 200, else 503, the JSON naming each check) and ``/metrics``
(Prometheus text). The staff board (``intake.web.board``) adds its routes to the same app
and port. Every answer carries a Content-Security-Policy that allows scripts and styles from
this origin only (no inline script, no framing) and ``nosniff``.

uvicorn runs embedded: the socket is bound by ``WebServer.bind`` before the daemon starts
anything (a busy port fails start-up instead of leaking threads, and never reaches
uvicorn's ``sys.exit``), lifespan is off, the access log is off, and uvicorn installs no
signal handlers: SIGTERM belongs to the daemon, which stops this unit in its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intake.logs import raised_at
from intake.supervisor import TaskHealth
from intake.web.board import Board
from intake.web.checks import Check, iso, run_checks


def make_web_app(
    health: Callable[[], Sequence[TaskHealth]],
    checks: Sequence[Check],
    registry: CollectorRegistry,
    board: Board | None = None,
) -> ASGIApp:
    """The ASGI app. Sync endpoints run in Starlette's thread pool: they query the store."""

    async def healthz(_request: Request) -> JSONResponse:
        tasks = [_task_json(task) for task in health()]
        alive = all(task["alive"] for task in tasks)
        body = {"status": "ok" if alive else "down", "tasks": tasks}
        return JSONResponse(body, status_code=200 if alive else 503)

    def readyz(_request: Request) -> JSONResponse:
        results = run_checks(checks)
        ready = all(result.ok for result in results)
        body = {"status": "ok" if ready else "unready", "checks": [asdict(r) for r in results]}
        return JSONResponse(body, status_code=200 if ready else 503)

    def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if board is not None:
        routes += board.routes()
    return SecurityHeaders(ErrorsLogged(Starlette(routes=routes)))


# CSP Level 3 (W3C): scripts, styles, images and fetches from this origin only; no inline
# script (a subject carrying <script> could never run even if it escaped the templates).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Pure ASGI middleware (no buffering, so the board's event stream flows)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ErrorsLogged:
    """A page that failed: one log line (the route, the error type and where it was
    raised, never its text, which may quote a ticket's fields) and a 500.

    Starlette answers the 500 and re-raises for the server to log, and uvicorn would log
    the traceback with the exception's text; here the exception ends instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            structlog.get_logger("intake.web").error(
                "web.error",
                method=scope.get("method"),
                path=scope.get("path"),
                error=type(exc).__name__,
                where=raised_at(exc),
            )
            if not started:
                await PlainTextResponse("internal error", status_code=500)(scope, receive, send)


def _task_json(task: TaskHealth) -> dict[str, Any]:
    return {**asdict(task), "down_since": iso(task.down_since)}


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """One supervised unit: ``bind`` at start-up, then ``run(stop)`` serves until ``stop``."""

    def __init__(
        self, app: ASGIApp, host: str, port: int, on_stop: Callable[[], None] = lambda: None
    ) -> None:
        self.app, self.host, self.port = app, host, port
        self.on_stop = on_stop  # ends what never completes alone (the board's event streams)
        self._socket: socket.socket | None = None

    def bind(self) -> None:
        """Take the port now (raises OSError when it is busy); port 0 picks a free one."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._socket = socket.create_server((self.host, self.port), family=family, backlog=128)
        self.port = self._socket.getsockname()[1]

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def run(self, stop: asyncio.Event) -> None:
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        config = uvicorn.Config(self.app, lifespan="off", access_log=False, log_config=None)
        server = _EmbeddedServer(config)
        serving = asyncio.ensure_future(server.serve(sockets=[self._socket]))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.on_stop()
            server.should_exit = True
            stopping.cancel()
            try:
                await serving
            finally:
                self.close()  # uvicorn closes it too; a restart binds afresh
