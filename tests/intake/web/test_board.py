"""The NOC board's queue over real HTTP from a real daemon, after real SMTP mail; and its
pure parts (deadline states, customer matching, filters) table-driven."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from intake.pipeline.customers import CustomerRecord
from intake.settings import Settings
from intake.web.board import QueueFilter, countdown, deadline_state, matching_customers
from tests.conftest import RunningDaemon, start_daemon, stop_daemon
from tests.intake.web.board_support import get, send, set_response_due

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "missed", "expected"),
    [
        (NOW - timedelta(seconds=1), False, "breached"),
        (NOW, False, "breached"),
        (NOW + timedelta(minutes=59), False, "soon"),
        (NOW + timedelta(hours=1), False, "soon"),
        (NOW + timedelta(hours=1, seconds=1), False, "ok"),
        (NOW + timedelta(days=2), True, "breached"),
        (None, False, "none"),
    ],
    ids=["overdue", "due-now", "within-hour", "an-hour", "later", "response-missed", "none"],
)
def test_deadline_state(due: datetime | None, missed: bool, expected: str) -> None:
    assert deadline_state(due, NOW, missed) == expected


@pytest.mark.parametrize(
    ("left", "text"),
    [
        (timedelta(hours=2, minutes=5), "2h 05m"),
        (timedelta(minutes=4, seconds=7), "4m 07s"),
        (timedelta(days=3, hours=1), "3d 01h"),
        (-timedelta(minutes=90), "overdue 1h 30m"),
    ],
    ids=["hours", "minutes", "days", "overdue"],
)
def test_countdown(left: timedelta, text: str) -> None:
    assert countdown(left) == text


DIRECTORY = (
    CustomerRecord("Globex Corporation", aliases=("GLX",), support_id="G-7"),
    CustomerRecord("Acme Corp"),
)
STORED = ["Acme Corp", "ACME corp.", "Acme Widgets", "Globex Corporation", "Initech"]


@pytest.mark.parametrize(
    ("wanted", "found"),
    [
        ("Acme", ["Acme Corp", "ACME corp."]),
        ("acme corporation", ["Acme Corp", "ACME corp."]),
        ("Acme Widgets", ["Acme Widgets"]),
        ("glx", ["Globex Corporation"]),
        ("g-7", ["Globex Corporation"]),
        ("Initrode", []),
    ],
    ids=["suffix-dropped", "other-suffix", "distinct-name", "alias", "support-id", "unknown"],
)
def test_customer_filter_matches_as_the_directory_does(wanted: str, found: list[str]) -> None:
    assert matching_customers(wanted, STORED, DIRECTORY) == found


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, QueueFilter()),
        ({"status": "closed", "priority": "1", "page": "3"}, QueueFilter("closed", 1, page=3)),
        ({"status": "bogus", "priority": "x", "page": "-2"}, QueueFilter()),
        ({"breached": "1", "customer": "  Acme "}, QueueFilter(customer="Acme", breached=True)),
    ],
    ids=["default", "chosen", "invalid-falls-back", "trimmed"],
)
def test_queue_filter_from_query(query: dict[str, str], expected: QueueFilter) -> None:
    assert QueueFilter.from_query(query) == expected


@pytest.fixture
def board_daemon(make_settings: Callable[..., Settings], db_url: str) -> Iterator[RunningDaemon]:
    running = start_daemon(make_settings(db_url))
    yield running
    stop_daemon(running)


def numbers(html: str) -> list[str]:
    return re.findall(r'<tr class="ticket [^"]*" data-number="([^"]+)"', html)


def row_state(html: str, number: str) -> str:
    match = re.search(rf'<tr class="ticket state-(\w+)" data-number="{re.escape(number)}"', html)
    assert match, f"{number} not on the page"
    return match.group(1)


def test_queue_sorted_by_deadline_filtered_and_escaped(board_daemon: RunningDaemon) -> None:
    later = send(board_daemon, "Acme Corp – 1 Main St, Denver CO – Slow calls – P3")
    urgent = send(board_daemon, "Initech – 9 Elm St, Austin TX – Total outage – P1")
    hostile = send(board_daemon, "Acme Corp – <script>alert(1)</script> – Echo – P2")
    set_response_due(board_daemon, urgent, datetime.now(UTC) - timedelta(minutes=5))
    set_response_due(board_daemon, hostile, datetime.now(UTC) + timedelta(minutes=30))
    set_response_due(board_daemon, later, datetime.now(UTC) + timedelta(hours=5))

    status, headers, html = get(board_daemon, "/")
    assert status == 200
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert numbers(html) == [urgent, hostile, later]  # the next deadline first
    assert [row_state(html, n) for n in (urgent, hostile, later)] == ["breached", "soon", "ok"]
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/board.js" defer>']

    assert numbers(get(board_daemon, "/?customer=acme")[2]) == [hostile, later]
    assert numbers(get(board_daemon, "/?breached=1")[2]) == [urgent]
    assert numbers(get(board_daemon, "/?priority=1")[2]) == [urgent]
    assert numbers(get(board_daemon, "/?status=closed")[2]) == []
    assert numbers(get(board_daemon, "/?policy=no-such-policy")[2]) == []
    rows = get(board_daemon, "/queue/rows?customer=Initech")[2]
    assert numbers(rows) == [urgent] and "<html" not in rows

    status, headers, script = get(board_daemon, "/static/board.js")
    assert status == 200 and "EventSource" in script
