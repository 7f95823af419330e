"""The board's operations pages over real HTTP from a real daemon: a message the store
refused shows in quarantine by its headers only and is retried from the page; a reply the
relay refused is dead and retried from the page; mailbox states; the customer directory
with its filter; the same data from the JSON API. The pure parts table-driven."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest

from intake.pipeline.customers import CustomerRecord
from intake.settings import Settings
from intake.web.ops import (
    MAX_HEADER_TEXT,
    HeaderView,
    customer_matches,
    header_view,
)
from store import repository as repo
from store.db import session_scope
from store.models import InboundStatus
from tests.conftest import (
    RunningDaemon,
    Sink,
    free_port,
    make_mail,
    start_daemon,
    stop_daemon,
    wait_for,
)
from tests.intake.web.board_support import BOUND, Browser, base_url, get
from tests.intake.web.ops_support import (
    BODY_MARKER,
    TOKEN,
    add_customers,
    add_mailbox_state,
    dead_reply,
    ops_settings,
    page_csrf,
    quarantine_one,
    refuse_poison,
    reply_status,
    smtp_send,
)

# --- pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "section"),
    [
        (b"Subject: a\r\nX: b\r\n\r\nbody\r\n\r\nmore", b"Subject: a\r\nX: b"),
        (b"Subject: a\n\nbody", b"Subject: a"),
        (b"Subject: no body", b"Subject: no body"),
        (b"\r\n\r\nonly a body", b""),
    ],
    ids=["crlf", "lf", "no-body", "no-headers"],
)
def test_the_header_view_ends_at_the_first_empty_line(head: bytes, section: bytes) -> None:
    assert header_view(head, len(head)).text == section.decode()


@pytest.mark.parametrize(
    ("head", "size", "expected"),
    [
        (b"Subject: a\r\n\r\nbody", 1000, HeaderView("Subject: a", False)),
        (b"Subject: a\r\nX-Pad: xxxx", 1000, HeaderView("Subject: a\r\nX-Pad: xxxx", True)),
        (b"Subject: a", 10, HeaderView("Subject: a", False)),
        (b"Subject: \xff", 10, HeaderView("Subject: \ufffd", False)),
        (
            b"X: " + b"y" * MAX_HEADER_TEXT + b"\r\n\r\n",
            10**6,
            HeaderView(("X: " + "y" * MAX_HEADER_TEXT)[:MAX_HEADER_TEXT], True),
        ),
    ],
    ids=["whole", "cut-by-the-store-read", "headers-only-message", "not-utf8", "capped"],
)
def test_header_view(head: bytes, size: int, expected: HeaderView) -> None:
    assert header_view(head, size) == expected


ACME = CustomerRecord("Acme Corp", aliases=("Roadrunner Supply",), domains=("acme.example",))
GLOBEX = CustomerRecord("Globex Corporation", aliases=("GLX",), support_id="G-7")


@pytest.mark.parametrize(
    ("wanted", "record", "found"),
    [
        ("", GLOBEX, True),
        ("acme", ACME, True),
        ("ACME corp.", ACME, True),
        ("acme corporation", ACME, True),
        ("roadrunner", ACME, True),
        ("glx", GLOBEX, True),
        ("g-7", GLOBEX, True),
        ("g-", GLOBEX, False),
        ("acme.example", ACME, True),
        ("acme", GLOBEX, False),
    ],
    ids=[
        "empty-finds-all",
        "part-of-name",
        "case-and-punctuation",
        "other-legal-suffix",
        "alias",
        "alias-any-case",
        "support-id",
        "support-id-whole-only",
        "domain",
        "other-customer",
    ],
)
def test_customer_filter_matches_as_the_directory_does(
    wanted: str, record: CustomerRecord, found: bool
) -> None:
    assert customer_matches(record, wanted) is found


# --- a real daemon --------------------------------------------------------------------------


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
def ops_daemon(make_settings: Callable[..., Settings], sink: Sink) -> Iterator[RunningDaemon]:
    running = start_daemon(ops_settings(make_settings, sink))
    yield running
    stop_daemon(running)


def quarantine_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="inbound" data-id="(\d+)"', html)]


def test_a_quarantined_message_shows_by_its_headers_and_is_retried(
    ops_daemon: RunningDaemon, capfd: pytest.CaptureFixture[str]
) -> None:
    daemon = ops_daemon
    refuse_poison(daemon)
    inbound_id = quarantine_one(daemon, hostile_header="<script>alert(1)</script>")

    status, _, html = get(daemon, "/ops/quarantine")
    assert status == 200 and quarantine_ids(html) == [inbound_id]
    assert "1 message gave up" in html
    assert "Acme Corp – 1 Poisonville Rd – &lt;b&gt;Dead&lt;/b&gt; lines – P1" in html
    assert "Jane Doe &lt;jane@acme.example&gt;" in html  # the sender, as text
    assert "refused by the test" in html  # the error that quarantined it
    assert BODY_MARKER not in html
    assert 'href="/ops/quarantine"' in html and 'href="/ops/outbox"' in html  # the nav

    status, _, headers = get(daemon, f"/ops/quarantine/{inbound_id}")
    assert status == 200
    shown = re.search(r'<pre class="headers">(.*?)</pre>', headers, re.S)
    assert shown is not None
    assert "X-Probe: &lt;script&gt;alert(1)&lt;/script&gt;" in shown.group(1)
    assert "Message-ID: &lt;poison." in shown.group(1)
    assert BODY_MARKER not in headers and "<script>alert" not in headers
    assert get(daemon, "/ops/quarantine/4711")[0] == 404

    status, body = api(daemon, "/api/quarantine")
    assert status == 200
    [row] = body["messages"]
    assert (row["id"], row["origin"], row["attempts"]) == (inbound_id, "smtp", 1)
    assert "refused by the test" in row["error"] and row["received_at"].endswith("Z")
    assert BODY_MARKER not in json.dumps(body)
    assert api(daemon, "/api/quarantine", token=None)[0] == 401

    staff = Browser(daemon)
    token = page_csrf(staff, "/ops/quarantine")
    path = f"/ops/quarantine/{inbound_id}/retry"
    assert staff.post(path, by="ann")[0] == 403  # no token
    assert staff.post(path, by="ann", csrf="0" * 64)[0] == 403  # a wrong one
    assert staff.post(path, csrf=token)[0] == 400  # who is required
    assert quarantine_ids(get(daemon, "/ops/quarantine")[2]) == [inbound_id]  # untouched

    refuse_poison(daemon, refuse=False)
    status, html = staff.post(path, by="ann", csrf=token)
    assert status == 200 and quarantine_ids(html) == []  # redirected to the page

    def processed() -> bool:
        with session_scope(daemon.app.sessions) as session:
            row = repo.get_inbound(session, inbound_id)
            return row is not None and row.status == InboundStatus.PROCESSED

    wait_for(processed, BOUND)  # the daemon's worker took it at its sweep: a ticket now
    assert staff.post(path, by="ann", csrf=token)[0] == 409  # nothing left to retry
    logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if "board." in line]
    retries = [e for e in logged if e.get("event") == "board.quarantine_retry"]
    assert [(e["id"], e["by"], e["outcome"]) for e in retries] == [
        (inbound_id, "ann", "queued"),
        (inbound_id, "ann", "refused"),
    ]


def test_a_dead_reply_is_listed_first_and_retried_from_the_page(
    ops_daemon: RunningDaemon, sink: Sink
) -> None:
    daemon = ops_daemon
    sink.refuse_with = "554 5.7.1 rejected by policy"
    smtp_send(daemon, make_mail())
    dead = dead_reply(daemon)

    status, _, html = get(daemon, "/ops/outbox")
    assert status == 200
    rows = re.findall(r'<tr class="reply-row status-(\w+)" data-id="(\d+)"', html)
    assert rows[0] == ("dead", str(dead))
    row = html[html.index(f'data-id="{dead}"') :].split("</tr>", 1)[0]
    assert "554 5.7.1 rejected by policy" in row and "jane@acme.example" in row
    assert re.search(r'href="/tickets/TKT-\d+"', row)
    assert f'action="/ops/outbox/{dead}/retry"' in row
    assert "dead (1)" in html  # the status filter's count
    assert re.findall(r'data-status="(\w+)"', get(daemon, "/ops/outbox?status=sent")[2]) == []

    status, body = api(daemon, "/api/outbox?status=dead")
    assert status == 200 and body["counts"]["dead"] == 1
    assert [(r["id"], r["status"], r["retryable"]) for r in body["replies"]] == [
        (dead, "dead", True)
    ]
    assert body["replies"][0]["ticket"].startswith("TKT-")

    staff = Browser(daemon)
    token = page_csrf(staff, "/ops/outbox")
    assert staff.post(f"/ops/outbox/{dead}/retry", by="bob")[0] == 403
    assert reply_status(daemon, dead) == "dead"
    sink.refuse_with = None
    status, html = staff.post(f"/ops/outbox/{dead}/retry", by="bob", csrf=token)
    assert status == 200
    wait_for(lambda: reply_status(daemon, dead) == "sent", BOUND)
    assert len(sink.messages) == 1
    assert staff.post(f"/ops/outbox/{dead}/retry", by="bob", csrf=token)[0] == 409  # sent
    assert f'data-id="{dead}" data-status="sent"' in get(daemon, "/ops/outbox?status=sent")[2]


def test_mailbox_states_by_name_never_the_password(
    make_settings: Callable[..., Settings], sink: Sink
) -> None:
    closed = free_port()  # nothing listens: the poller records its failure
    url = f"imap://bot:s3cret-Pw0rd@127.0.0.1:{closed}/INBOX"
    daemon = start_daemon(ops_settings(make_settings, sink, **{"imap.mailboxes": [{"url": url}]}))
    try:
        mine = f"bot@127.0.0.1:{closed}/INBOX"
        other = "noc@imap.example.net:993/Support"
        add_mailbox_state(daemon, other, owner="instance-b", uidvalidity=4242)

        def failing() -> str | None:
            html = get(daemon, "/ops/mailboxes")[2]
            return html if 'class="mailbox state-failing"' in html else None

        html: str = wait_for(failing, BOUND)
        names = re.findall(r'<tr class="mailbox state-(\w+)" data-name="([^"]+)"', html)
        assert names == [("failing", mine), ("ok", other)]
        assert "s3cret-Pw0rd" not in html
        assert "Connection" in html or "refused" in html.lower()  # the last error
        assert "instance-b" in html and "4242" in html
        assert "not configured on this instance" in html.split(other, 1)[1]

        status, body = api(daemon, "/api/mailboxes")
        assert status == 200 and "s3cret-Pw0rd" not in json.dumps(body)
        by_name = {m["name"]: m for m in body["mailboxes"]}
        assert (by_name[mine]["state"], by_name[mine]["configured"]) == ("failing", True)
        assert by_name[mine]["last_error"]
        assert (by_name[other]["lease_owner"], by_name[other]["uidvalidity"]) == (
            "instance-b",
            4242,
        )
        assert by_name[other]["lease_expires_at"].endswith("Z")
    finally:
        stop_daemon(daemon)


def test_customer_directory_read_only_with_its_filter(ops_daemon: RunningDaemon) -> None:
    daemon = ops_daemon
    add_customers(
        daemon,
        CustomerRecord(
            "Acme Corp",
            aliases=("Roadrunner <Supply>",),
            domains=("acme.example",),
            authorized_contacts=("jane@acme.example", "joe@acme.example"),
            subscription_expires=date(2027, 6, 30),
            policy="managed-pbx",
        ),
        CustomerRecord("Globex Corporation", aliases=("GLX",), support_id="G-7"),
    )

    def names(query: str) -> list[str]:
        html = get(daemon, f"/ops/customers{query}")[2]
        return re.findall(r'<tr class="customer" data-name="([^"]+)"', html)

    assert names("") == ["Acme Corp", "Globex Corporation"]
    assert names("?q=ACME+corp.") == ["Acme Corp"]
    assert names("?q=glx") == ["Globex Corporation"]
    assert names("?q=G-7") == ["Globex Corporation"]
    assert names("?q=initech") == []
    html = get(daemon, "/ops/customers?q=acme")[2]
    assert "Roadrunner &lt;Supply&gt;" in html and "2027-06-30" in html and "managed-pbx" in html
    assert "jane@acme.example, joe@acme.example" in html
    assert 'aria-current="page">Customers' in html

    status, body = api(daemon, "/api/customers?q=roadrunner")
    assert status == 200
    [acme] = body["customers"]
    assert (acme["name"], acme["authorized_contacts"], acme["support_id"]) == (
        "Acme Corp",
        ["jane@acme.example", "joe@acme.example"],
        None,
    )
    assert api(daemon, "/api/customers", token="wrong")[0] == 401
    status, _, _ = get(daemon, "/ops/customers")
    assert status == 200
    staff = Browser(daemon)
    assert staff.post("/ops/customers", by="ann")[0] == 405  # read-only
