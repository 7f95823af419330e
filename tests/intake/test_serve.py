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
    with socket.socket() as again:  # the SMTP port bound before the web port is free again
        again.bind(("127.0.0.1", settings.smtp.port))
    app.engine.dispose()
