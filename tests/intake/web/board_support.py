"""Helpers for the board's tests: tickets made the real way (SMTP mail), HTTP reads."""

from __future__ import annotations

import http.cookiejar
import re
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update

from store import repository as repo
from store.db import session_scope
from store.models import ChargeRow, Ticket
from tests.conftest import RunningDaemon, make_mail, wait_for

BOUND = 60.0  # seconds: generous on a loaded machine, reached only when something is wrong


def send(daemon: RunningDaemon, subject: str) -> str:
    """Mail one ticket over SMTP; its number once the daemon has opened it."""
    message_id = f"<{abs(hash(subject))}.{datetime.now().timestamp()}@acme.example>"
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as client:
        client.sendmail(
            "jane@acme.example",
            ["support@example.com"],
            make_mail(subject=subject, message_id=message_id),
        )

    def opened() -> str | None:
        with session_scope(daemon.app.sessions) as session:
            ticket_id = repo.ticket_id_by_message_ids(session, [message_id.strip("<>")])
            ticket = session.get(Ticket, ticket_id) if ticket_id else None
            return ticket.number if ticket else None

    number: str = wait_for(opened, BOUND)
    return number


def set_response_due(daemon: RunningDaemon, number: str, due: datetime) -> None:
    """Move a ticket's response deadline (the clock cannot be turned, the row can)."""
    with session_scope(daemon.app.sessions, write=True) as session:
        session.execute(
            update(Ticket)
            .where(Ticket.number == number)
            .values(response_due_at=due, updated_at=datetime.now().astimezone())
        )


def base_url(daemon: RunningDaemon) -> str:
    web = daemon.app.settings.web
    return f"http://{web.host}:{web.port}"


def get(daemon: RunningDaemon, path: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(base_url(daemon) + path, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def add_charge(daemon: RunningDaemon, number: str, amount: str, reason: str) -> int:
    """A ledger line as the pipeline writes one (the contract's charges need a long setup)."""
    with session_scope(daemon.app.sessions, write=True) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        key = f"test:{number}:{reason}"
        repo.add_charge(
            session,
            ledger_key=key,
            ticket_id=ticket.id,
            kind="after_hours",
            amount=Decimal(amount),
            currency="USD",
            reason=reason,
            status="applied",
            now=datetime.now(UTC),
        )
        charge = session.execute(select(ChargeRow).where(ChargeRow.ledger_key == key)).scalar_one()
        return charge.id


class Browser:
    """A cookie-keeping HTTP client: reads a page's CSRF token and posts its forms."""

    def __init__(self, daemon: RunningDaemon) -> None:
        self.daemon = daemon
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(base_url(self.daemon) + path, timeout=30) as response:
            return str(response.read().decode())

    def csrf(self, number: str) -> str:
        match = re.search(r'name="csrf" value="([0-9a-f]+)"', self.get(f"/tickets/{number}"))
        assert match, "no CSRF token on the ticket page"
        return match.group(1)

    def post(self, path: str, **form: str) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(base_url(self.daemon) + path, data, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
