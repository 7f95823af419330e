"""The board in a real browser (Playwright driving Debian's Chromium) on a real daemon:
mail sent over SMTP shows on the open queue without a reload, a breached ticket is red,
a subject carrying ``<script>`` is text (on the queue and the ticket page); assign, note,
waive, set priority, a phone response and close work through the forms and are recorded
with who; off loopback the board needs the login, and the logged-in account is who; each
page is screenshotted at desktop and phone width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from intake.settings import Settings
from intake.web.staff import set_password
from tests.conftest import RunningDaemon, free_port, start_daemon, stop_daemon
from tests.intake.web.board_support import add_charge, base_url, send, set_response_due

LIVE = 2_000  # ms: the bound for a new ticket to reach an open page
BOUND = 60_000  # ms: for what only a loaded machine makes slow (page loads)
RED = "rgb(198, 40, 40)"  # --red in board.css
SIZES = {"desktop": (1366, 900), "phone": (390, 844)}


@pytest.fixture
def sqlite_daemon(make_settings: Callable[..., Settings]) -> Iterator[RunningDaemon]:
    running = start_daemon(make_settings())
    yield running
    stop_daemon(running)


def test_queue_live_red_and_escaped(
    sqlite_daemon: RunningDaemon, browser: Any, artefacts: Path
) -> None:
    daemon = sqlite_daemon
    breached = send(daemon, "Initech – 9 Elm St, Austin TX – Total outage – P1")
    set_response_due(daemon, breached, datetime.now(UTC) - timedelta(minutes=10))
    page = browser.new_page(viewport=dict(zip(("width", "height"), SIZES["desktop"])))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base_url(daemon) + "/", timeout=BOUND)
    page.wait_for_function("() => window.EventSource !== undefined", timeout=BOUND)

    red_row = page.locator(f'tr.ticket[data-number="{breached}"]')
    assert red_row.get_attribute("class") == "ticket state-breached"
    assert red_row.locator("time.countdown").evaluate("e => getComputedStyle(e).color") == RED
    assert red_row.locator("time.countdown").inner_text().startswith("overdue")

    # Opened by mail while the page is open: it appears without a reload.
    page.evaluate("() => { window.notReloaded = true }")
    hostile = send(daemon, "Acme Corp – <script>window.pwned=1</script> – Echo – P2")
    new_row = page.locator(f'tr.ticket[data-number="{hostile}"]')
    new_row.wait_for(timeout=LIVE)  # counted from the commit: send() waits for the ticket
    assert page.evaluate("() => window.notReloaded") is True
    subject = new_row.locator(".subject").inner_text()
    assert "<script>window.pwned=1</script>" in subject
    assert page.evaluate("() => window.pwned") is None
    assert page.locator("tbody script").count() == 0

    for name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artefacts / f"queue-{name}.png"), full_page=True)

    charge = add_charge(daemon, hostile, "100.00", "missing details")
    new_row.locator("a").click()  # the ticket page: thread, deadlines, fields, ledger
    page.wait_for_url(f"**/tickets/{hostile}", timeout=BOUND)
    page.locator("li.message.out").wait_for(timeout=BOUND)  # the confirmation was queued
    assert "<script>window.pwned=1</script>" in page.locator(".ticket-head .subject").inner_text()
    for name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artefacts / f"ticket-{name}.png"), full_page=True)
    assert page.evaluate("() => window.pwned") is None

    # Staff actions through the forms (CSRF token and all), each recorded with who.
    act(page, "assign", by="ann", assignee="bob")
    assert page.locator("form.action-note input[name=by]").input_value() == "ann"  # kept
    act(page, "note", note="called Jane, <b>on it</b>")
    act(page, "waive", note="details came by phone")
    page.locator("form.action-priority select[name=priority]").select_option("3")
    act(page, "priority")  # the subject said P2
    assert "Priority 3" in page.locator("dl.facts").inner_text()
    assert "Response within 24 business hours." in page.locator("dl.facts").inner_text()
    act(page, "phone", note="rang Jane back")  # the time left empty: now
    assert page.locator("form.action-phone").count() == 0  # answered: nothing to record
    assert "(met)" in page.locator("#live").inner_text()
    for name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artefacts / f"ticket-answered-{name}.png"), full_page=True)
    act(page, "close", by="bob")
    assert page.locator("form.action-reopen").count() == 1
    assert page.locator("form.action-priority").count() == 0
    assert page.locator("#live time.countdown").count() == 0  # closed: no running clock
    assert "closed at" in page.locator(".ticket-head").inner_text()
    events = [" ".join(e.split()[4:]) for e in page.locator("li.event").all_inner_texts()]
    assert events[:3] == [
        "ann · assign: bob",
        "ann · note: called Jane, <b>on it</b>",
        f"ann · waive: charge {charge}: details came by phone",
    ]
    assert events[3].startswith("ann · priority: 2 -> 3 (policy standard ")
    assert events[4].startswith("ann · phone_response: at ")
    assert events[4].endswith("(met): rang Jane back")
    assert events[5:] == ["bob · close"]
    assert page.locator("table.ledger").inner_text().count("-100.00 USD") == 1
    assert page.locator("form.action-waive").count() == 0  # the line is waived: no form
    for name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artefacts / f"ticket-worked-{name}.png"), full_page=True)
    assert errors == []
    page.close()


def act(page: Any, action: str, **fields: str) -> None:
    """Fill one action form, submit it, and wait for the ticket page it redirects to."""
    form = page.locator(f"form.action-{action}").first
    for name, value in fields.items():
        form.locator(f"[name={name}]").fill(value)
    with page.expect_navigation(timeout=BOUND):
        form.locator("button").click()


@pytest.fixture
def login_daemon(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[RunningDaemon]:
    """Bound to every address, so not loopback: the board needs the login (one account)."""
    users = tmp_path / "staff.passwd"
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # the test's account
    set_password(users, "ann", "correct horse battery", cheap)
    settings = make_settings(
        **{"web.listen": f"0.0.0.0:{free_port()}", "web.auth.users_file": str(users)}
    )
    running = start_daemon(settings)
    yield running
    stop_daemon(running)


def test_login_required_off_loopback(
    login_daemon: RunningDaemon, browser: Any, artefacts: Path
) -> None:
    daemon = login_daemon
    number = send(daemon, "Initech – 9 Elm St, Austin TX – Total outage – P1")
    url = f"http://127.0.0.1:{daemon.app.settings.web.port}"
    page = browser.new_page(viewport=dict(zip(("width", "height"), SIZES["desktop"])))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{url}/tickets/{number}", timeout=BOUND)
    page.wait_for_url("**/login?next=%2Ftickets%2F*", timeout=BOUND)  # the board is closed
    assert page.locator("tr.ticket").count() == 0
    for name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artefacts / f"login-{name}.png"), full_page=True)
    page.set_viewport_size(dict(zip(("width", "height"), SIZES["desktop"])))

    log_in(page, "ann", "not the password")
    assert page.locator("form.login .error").inner_text() == "Wrong name or password."
    assert page.locator("tr.ticket").count() == 0
    assert page.locator("input[name=name]").input_value() == "ann"  # kept for the retry
    for name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artefacts / f"login-refused-{name}.png"), full_page=True)
    page.set_viewport_size(dict(zip(("width", "height"), SIZES["desktop"])))

    log_in(page, "ann", "correct horse battery")
    page.wait_for_url(f"**/tickets/{number}", timeout=BOUND)  # back where the link pointed
    assert page.locator("header .who").inner_text() == "signed in as ann"
    assert page.locator("form.action input[name=by]").count() == 0  # the account is who
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["intake_session"]["httpOnly"] is True
    assert cookies["intake_session"]["sameSite"] == "Strict"

    page.locator("a", has_text="queue").first.click()
    page.wait_for_url(f"{url}/", timeout=BOUND)
    row = page.locator(f'tr.ticket[data-number="{number}"]')
    row.wait_for(timeout=BOUND)
    for name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artefacts / f"queue-signed-in-{name}.png"), full_page=True)
    page.set_viewport_size(dict(zip(("width", "height"), SIZES["desktop"])))

    row.locator("a").click()
    page.wait_for_url(f"**/tickets/{number}", timeout=BOUND)
    act(page, "close")
    assert page.locator("form.action-reopen").count() == 1
    events = [" ".join(e.split()[4:]) for e in page.locator("li.event").all_inner_texts()]
    assert events == ["ann · close"]  # recorded as the logged-in account

    with page.expect_navigation(timeout=BOUND):
        page.locator("header form.logout button").click()
    page.wait_for_url("**/login", timeout=BOUND)
    page.goto(f"{url}/", timeout=BOUND)
    page.wait_for_url("**/login?next=%2F", timeout=BOUND)  # the session ended with it
    assert errors == []
    page.close()


def log_in(page: Any, name: str, password: str) -> None:
    page.locator("input[name=name]").fill(name)
    page.locator("input[name=password]").fill(password)
    with page.expect_navigation(timeout=BOUND):
        page.locator("form.login button").click()
