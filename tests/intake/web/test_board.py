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
from tests.conftest import RunningDaemon, start_daemon, stop_daemon, wait_for
from tests.intake.web.board_support import Browser, add_charge, get, send, set_response_due

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
        ({"assignee": "bob", "policy": "gold"}, QueueFilter(policy="gold", assignee="bob")),
        ({"q": '  "red alarm" x'}, QueueFilter(q='"red alarm" x')),
    ],
    ids=["default", "chosen", "invalid-falls-back", "trimmed", "assignee-policy", "search"],
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


def test_ticket_page_thread_deadlines_fields_and_ledger(board_daemon: RunningDaemon) -> None:
    number = send(board_daemon, "Acme Corp – 123 Main St, Denver CO – No dial tone – P1")
    charge = add_charge(board_daemon, number, "250.00", "after-hours <b>P1</b> dispatch")
    wait_for(lambda: "out" in [e["dir"] for e in thread_of(board_daemon, number)], 60)

    status, headers, html = get(board_daemon, f"/tickets/{number}")
    assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
    entries = thread_of(board_daemon, number)
    assert [e["dir"] for e in entries] == ["in", "out"]
    assert "from jane@acme.example" in entries[0]["meta"] and "human" in entries[0]["meta"]
    assert "to jane@acme.example" in entries[1]["meta"] and "confirmation" in entries[1]["meta"]
    assert number in entries[1]["reply"]  # the confirmation as mailed, read back
    assert "MX-0042-7781" in html  # a field read from the body
    assert "(America/Los_Angeles)" in html  # the zone business hours use (no directory)
    assert re.search(
        r"<td>response</td><td>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td><td>[^<]+ P[SD]T<", html
    )
    assert f"<td>{charge}</td><td>after_hours</td><td>250.00 USD</td>" in html
    assert "after-hours &lt;b&gt;P1&lt;/b&gt; dispatch" in html
    assert f'href="/tickets/{number}"' in get(board_daemon, "/")[2]
    assert get(board_daemon, "/tickets/TKT-999999")[0] == 404
    body = get(board_daemon, f"/tickets/{number}/body")[2]
    assert number in body and "<html" not in body


def thread_of(daemon: RunningDaemon, number: str) -> list[dict[str, str]]:
    html = get(daemon, f"/tickets/{number}")[2]
    entries = []
    for match in re.finditer(
        r'<li class="message (in|out)">(.*?)</li>\s*(?=<li class="message|</ol>)', html, re.S
    ):
        reply = re.search(r'<pre class="reply">(.*?)</pre>', match.group(2), re.S)
        meta = re.search(r'<div class="meta">(.*?)</div>', match.group(2), re.S)
        entries.append(
            {
                "dir": match.group(1),
                "meta": " ".join((meta.group(1) if meta else "").split()),
                "reply": reply.group(1) if reply else "",
            }
        )
    return entries


def events_of(html: str) -> list[tuple[str, str, str]]:
    """(actor, action, detail) of each staff event on a ticket page."""
    return [
        (actor, action, detail)
        for actor, action, detail in re.findall(
            r'<b class="actor">([^<]*)</b> · <span class="action">(\w+)</span>'
            r'(?:: <span class="detail">([^<]*)</span>)?',
            html,
        )
    ]


def test_staff_actions_are_recorded_with_who_and_csrf_is_required(
    board_daemon: RunningDaemon,
) -> None:
    number = send(board_daemon, "Acme Corp – 123 Main St, Denver CO – No dial tone – P1")
    charge = add_charge(board_daemon, number, "100.00", "missing details")
    staff = Browser(board_daemon)
    token = staff.csrf(number)
    path = f"/tickets/{number}"

    assert staff.post(f"{path}/close", by="ann")[0] == 403  # no token
    assert staff.post(f"{path}/close", by="ann", csrf="0" * 64)[0] == 403  # wrong token
    other = Browser(board_daemon)  # another browser's token is not this one's
    other.csrf(number)
    assert other.post(f"{path}/close", by="eve", csrf=token)[0] == 403
    assert staff.post(f"{path}/close", csrf=token)[0] == 400  # who is required

    assert staff.post(f"{path}/assign", by="ann", csrf=token, assignee="bob")[0] == 200
    assert staff.post(f"{path}/note", by="bob", csrf=token, note="called <Jane>, on it")[0] == 200
    status, html = staff.post(f"{path}/waive", by="bob", csrf=token, charge=str(charge), note="ok")
    assert status == 200
    assert f"<td>waiver (reverses #{charge})</td><td>-100.00 USD</td>" in html
    assert staff.post(f"{path}/waive", by="bob", csrf=token, charge=str(charge), note="x")[0] == 409
    assert staff.post(f"{path}/close", by="bob", csrf=token)[0] == 200
    assert staff.post(f"{path}/close", by="bob", csrf=token)[0] == 409  # closed already
    queue = get(board_daemon, "/?status=closed")[2]
    assert numbers(queue) == [number] and ">bob</td>" in queue  # the assignee on the queue
    assert numbers(get(board_daemon, "/?status=closed&assignee=BOB")[2]) == [number]
    assert numbers(get(board_daemon, "/?status=closed&assignee=ann")[2]) == []
    assert 'href="/?assignee=bob">assigned to me (bob)' in staff.get("/")  # the staff cookie
    assert numbers(get(board_daemon, "/")[2]) == []
    status, html = staff.post(f"{path}/reopen", by="ann", csrf=token)
    assert status == 200
    assert events_of(html) == [
        ("ann", "assign", "bob"),
        ("bob", "note", "called &lt;Jane&gt;, on it"),
        ("bob", "waive", f"charge {charge}: ok"),
        ("bob", "close", ""),
        ("ann", "reopen", ""),
    ]
    assert numbers(get(board_daemon, "/")[2]) == [number]
    mailed = list(board_daemon.app.settings.outbound.directory.glob("*.eml"))
    assert mailed and all(b"on it" not in m.read_bytes() for m in mailed)  # never mailed
