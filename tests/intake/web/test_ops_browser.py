"""The operations pages in a real browser (Playwright driving Debian's Chromium) on a real
daemon: every page reached through the nav, a quarantined message's headers without its
body, Retry clicked once through the form (CSRF token and all), each page screenshotted at
desktop and phone width and kept as a test artefact."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from intake.pipeline.customers import CustomerRecord
from intake.settings import Settings
from tests.conftest import RunningDaemon, Sink, make_mail, start_daemon, stop_daemon
from tests.intake.web.board_support import base_url
from tests.intake.web.ops_support import (
    BODY_MARKER,
    add_customers,
    add_mailbox_state,
    dead_reply,
    ops_settings,
    quarantine_one,
    refuse_poison,
    smtp_send,
)
from tests.intake.web.test_board_browser import BOUND, SIZES

PAGES = ("quarantine", "outbox", "mailboxes", "customers")


@pytest.fixture
def ops_daemon(make_settings: Callable[..., Settings], sink: Sink) -> Iterator[RunningDaemon]:
    running = start_daemon(ops_settings(make_settings, sink))
    yield running
    stop_daemon(running)


def screenshots(page: Any, artefacts: Path, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artefacts / f"ops-{name}-{size}.png"), full_page=True)
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide}px wide at {size} width {width}"
    page.set_viewport_size(dict(zip(("width", "height"), SIZES["desktop"], strict=True)))


def test_every_ops_page_retry_and_screenshots(
    ops_daemon: RunningDaemon, sink: Sink, browser: Any, artefacts: Path
) -> None:
    daemon = ops_daemon
    refuse_poison(daemon)
    inbound_id = quarantine_one(daemon, hostile_header="<script>window.pwned=1</script>")
    sink.refuse_with = "554 5.7.1 rejected by policy"
    smtp_send(daemon, make_mail())
    dead = dead_reply(daemon)
    add_mailbox_state(daemon, "noc@imap.example.net:993/Support", "instance-b", 4242)
    add_customers(
        daemon,
        CustomerRecord("Acme Corp", aliases=("ACME",), authorized_contacts=("jane@acme.example",)),
        CustomerRecord("Globex Corporation", aliases=("GLX",), support_id="G-7"),
    )

    page = browser.new_page(viewport=dict(zip(("width", "height"), SIZES["desktop"], strict=True)))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base_url(daemon) + "/", timeout=BOUND)
    for name in PAGES:  # every page through the nav bar, which marks where you are
        with page.expect_navigation(timeout=BOUND):
            page.locator(f'nav.sections a[href="/ops/{name}"]').click()
        assert page.locator('nav.sections a[aria-current="page"]').inner_text() == name.title()
        if name != "quarantine":
            screenshots(page, artefacts, name)

    page.goto(base_url(daemon) + "/ops/outbox", timeout=BOUND)
    dead_row = page.locator(f'tr.reply-row[data-id="{dead}"]')
    assert dead_row.locator(".reply-status").inner_text() == "dead"
    assert dead_row.locator(".reply-status").evaluate("e => getComputedStyle(e).color") == (
        "rgb(198, 40, 40)"  # --red
    )
    page.goto(base_url(daemon) + "/ops/customers?q=glx", timeout=BOUND)
    assert page.locator("tr.customer").all_inner_texts()[0].startswith("Globex Corporation")

    page.goto(base_url(daemon) + f"/ops/quarantine/{inbound_id}", timeout=BOUND)
    shown = page.locator("pre.headers").inner_text()
    assert "X-Probe: <script>window.pwned=1</script>" in shown  # as text
    assert BODY_MARKER not in page.content()
    assert page.evaluate("() => window.pwned") is None
    screenshots(page, artefacts, "headers")

    page.goto(base_url(daemon) + "/ops/quarantine", timeout=BOUND)
    row = page.locator(f'tr.inbound[data-id="{inbound_id}"]')
    assert "Poisonville" in row.locator(".subject").inner_text()
    screenshots(page, artefacts, "quarantine")
    refuse_poison(daemon, refuse=False)
    row.locator("input[name=by]").fill("ann")
    with page.expect_navigation(timeout=BOUND):
        row.locator("button", has_text="Retry").click()
    assert page.url.endswith("/ops/quarantine")
    assert page.locator(f'tr.inbound[data-id="{inbound_id}"]').count() == 0
    assert page.locator("text=Nothing is quarantined.").count() == 1
    screenshots(page, artefacts, "quarantine-retried")
    assert errors == []
    page.close()
