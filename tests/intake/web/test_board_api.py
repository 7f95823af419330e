"""The board's JSON API through plain HTTP on a real daemon: a token or nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intake.settings import Settings
from tests.conftest import RunningDaemon, start_daemon, stop_daemon, wait_for
from tests.intake.web.board_support import Browser, base_url, send, set_response_due

TOKEN = "0123456789abcdef-test-token"


def api(daemon: RunningDaemon, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
    request = urllib.request.Request(base_url(daemon) + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def api_daemon(make_settings: Callable[..., Settings]) -> Iterator[RunningDaemon]:
    running = start_daemon(make_settings(**{"web.api_token": TOKEN}))
    yield running
    stop_daemon(running)


def test_api_serves_the_queue_and_a_ticket_with_a_token(api_daemon: RunningDaemon) -> None:
    later = send(api_daemon, "Acme Corp – 1 Main St, Denver CO – Slow calls – P3")
    urgent = send(api_daemon, "Initech – 9 Elm St, Austin TX – Total outage – P1")
    set_response_due(api_daemon, urgent, datetime.now(UTC) - timedelta(minutes=5))
    staff = Browser(api_daemon)
    token = staff.csrf(later)
    assert staff.post(f"/tickets/{later}/note", by="ann", csrf=token, note="on it")[0] == 200

    assert api(api_daemon, "/api/tickets", token=None)[0] == 401
    assert api(api_daemon, "/api/tickets", token="wrong")[0] == 401
    status, queue = api(api_daemon, "/api/tickets")
    assert status == 200 and queue["total"] == 2
    assert [(t["number"], t["state"]) for t in queue["tickets"]] == [
        (urgent, "breached"),
        (later, "ok"),
    ]
    assert queue["tickets"][0]["due"].endswith("Z") and queue["tickets"][0]["priority"] == 1
    assert [t["number"] for t in api(api_daemon, "/api/tickets?customer=acme")[1]["tickets"]] == [
        later
    ]

    wait_for(lambda: len(api(api_daemon, f"/api/tickets/{later}")[1]["thread"]) == 2, 60)
    status, ticket = api(api_daemon, f"/api/tickets/{later}")
    assert status == 200 and ticket["customer"] == "Acme Corp"
    assert [e["direction"] for e in ticket["thread"]] == ["in", "out"]
    assert later in ticket["thread"][1]["text"]  # the confirmation as mailed
    assert [(e["actor"], e["action"], e["detail"]) for e in ticket["events"]] == [
        ("ann", "note", "on it")
    ]
    assert {d["name"] for d in ticket["deadlines"]} >= {"response"}
    assert api(api_daemon, "/api/tickets/TKT-999999")[0] == 404


def test_api_is_off_without_a_token_configured(
    make_settings: Callable[..., Settings],
) -> None:
    running = start_daemon(make_settings())
    try:
        status, body = api(running, "/api/tickets")
        assert (status, body["error"]) == (401, "the API is off: set web.api_token")
    finally:
        stop_daemon(running)
