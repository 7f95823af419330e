"""A failing page answers 500 and leaves one log line that says where, never what."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from intake.supervisor import TaskHealth
from intake.web.server import WebServer, make_web_app

SECRET = "jane@acme.example 555-0100"  # what an exception's text might quote


def failing_health() -> list[TaskHealth]:
    raise ValueError(f"cannot render field {SECRET}")


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - loopback
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_page_that_raises_answers_500_and_logs_its_route_type_and_place(
    capfd: pytest.CaptureFixture[str],
) -> None:
    app = make_web_app(failing_health, [], CollectorRegistry())
    server = WebServer(app, "127.0.0.1", 0)
    server.bind()

    async def scenario() -> tuple[int, str]:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.run(stop))
        try:
            return await asyncio.to_thread(fetch, f"http://127.0.0.1:{server.port}/healthz")
        finally:
            stop.set()
            await serving

    with capture_logs() as logs:
        status, body = asyncio.run(scenario())
    assert status == 500
    assert SECRET not in body
    [line] = [entry for entry in logs if entry["event"] == "web.error"]
    assert (line["method"], line["path"], line["error"]) == ("GET", "/healthz", "ValueError")
    raising_line = failing_health.__code__.co_firstlineno + 1
    assert line["where"].endswith(f"test_server_errors.py:{raising_line}")
    assert SECRET not in repr(logs)
    assert SECRET not in "".join(capfd.readouterr())  # no traceback from the server either
