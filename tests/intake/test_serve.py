"""serve() start-up: both ports are bound before any thread starts, so a busy one leaks none."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable

import pytest

from intake.app import build_app, serve
from intake.errors import ListenError
from intake.settings import Settings
from intake.web.server import WebServer
from tests.conftest import wait_for


@pytest.mark.parametrize("busy", ["smtp", "web"], ids=["smtp-port-busy", "web-port-busy"])
def test_a_busy_port_fails_start_up_naming_it_and_leaks_no_thread(
    make_settings: Callable[..., Settings], busy: str
) -> None:
    settings = make_settings()
    app = build_app(settings)
    port = settings.smtp.port if busy == "smtp" else settings.web.port
    before = set(threading.enumerate())
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        with pytest.raises(ListenError, match=f"127.0.0.1:{port}: .*\\({busy}"):
            asyncio.run(serve(app, asyncio.Event()))
    # No writer, poller or server thread outlives the failed start (bounded wait).
    wait_for(lambda: set(threading.enumerate()) <= before, timeout=10)
    for free in (settings.smtp.port, settings.web.port):  # whichever was bound is let go
        if free != port:
            with socket.socket() as again:
                again.bind(("127.0.0.1", free))
    app.engine.dispose()


def test_the_http_port_listens_before_the_smtp_port_accepts(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sees SMTP accept may ask for health at once (a load balancer, a test):
    the HTTP port is bound first, so SMTP is not yet taking connections when it is bound."""
    settings = make_settings()
    app = build_app(settings)
    smtp_open_at_web_bind: list[bool] = []
    bind = WebServer.bind

    def observed_bind(self: WebServer) -> None:
        smtp_open_at_web_bind.append(_accepts(settings.smtp.port))
        bind(self)

    monkeypatch.setattr(WebServer, "bind", observed_bind)
    stop = asyncio.Event()

    async def main() -> None:
        task = asyncio.create_task(serve(app, stop))
        while not smtp_open_at_web_bind or not _accepts(settings.smtp.port):
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(main(), 60))
    assert smtp_open_at_web_bind == [False]
    app.engine.dispose()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
