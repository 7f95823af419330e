"""Privacy of the error log: a store error never writes SQL parameters or the message.

A message whose sender, body and phone number are distinctive strings is refused by the
store itself — a constraint the test adds on the live schema — once at COMMIT 1 (the
SMTP client gets a 451) and once at COMMIT 2 (stored, then processing fails until the
message is quarantined). PostgreSQL's CHECK violation carries ``DETAIL: Failing row
contains (…)`` with the whole row, and SQLAlchemy's text would carry the statement's
parameters: none of it may reach a log line at level warning or above.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import make_mail
from tests.faults.harness import (
    Outgoing,
    Relay,
    ServeProcess,
    fresh_database,
    read_store,
    send_once,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.timeout(180)]

SENDER = "zebracorn.quuxfield@privacy-probe.example"
SECRETS = ("zebracorn", "quuxfield", "privacy-probe", "Marmalade-Octopus", "555 0199 4242")
BODY = f"""\
Company Name: Zebracorn Holdings
Contact Name: Quuxfield Zebracorn
Email: {SENDER}
Phone: +1 303 555 0199 4242
Serial Number: MX-0042-7781
SW Version: 17.0.4
Description: Marmalade-Octopus says every line in the office is dead since 08:10.
"""

# Refuse rows carrying the probe, in each dialect's own way (SQLite cannot add a CHECK).
REFUSE = {
    ("sqlite", "inbound_message"): (
        "CREATE TRIGGER refuse_probe BEFORE INSERT ON inbound_message"
        " WHEN NEW.envelope_from LIKE '%zebracorn%'"
        " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ),
    ("sqlite", "ticket"): (
        "CREATE TRIGGER refuse_probe BEFORE INSERT ON ticket"
        " WHEN NEW.requester_email LIKE '%zebracorn%'"
        " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ),
    ("postgresql", "inbound_message"): (
        "ALTER TABLE inbound_message ADD CONSTRAINT refuse_probe"
        " CHECK (envelope_from NOT LIKE '%zebracorn%')"
    ),
    ("postgresql", "ticket"): (
        "ALTER TABLE ticket ADD CONSTRAINT refuse_probe"
        " CHECK (requester_email NOT LIKE '%zebracorn%')"
    ),
}


def _probe(tag: str) -> Outgoing:
    message_id = f"{tag}-probe@customer.example"  # ids may be logged: neutral
    raw = make_mail(
        subject="Zebracorn Holdings – 1 Quuxfield Way – Marmalade-Octopus outage – P1",
        body=BODY,
        sender=f"Quuxfield Zebracorn <{SENDER}>",
        message_id=f"<{message_id}>",
    )
    return Outgoing(message_id, SENDER, raw)


@pytest.fixture(params=["sqlite", "postgresql"])
def refusing_daemon(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[str], ServeProcess]:
    backend = request.param
    url = fresh_database(backend, request, tmp_path)
    relay = Relay()
    relay.start()
    request.addfinalizer(relay.stop)

    def start(table: str) -> ServeProcess:
        server = ServeProcess(url, relay.url, tmp_path / "serve.log")
        server.env["INTAKE_INTAKE__MAX_ATTEMPTS"] = "2"  # quarantined after two refusals
        server.start()  # creates the schema; the constraint goes on the live one
        request.addfinalizer(server.stop)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(REFUSE[backend, table]))
        engine.dispose()
        return server

    return start


def test_a_refused_commit_1_logs_neither_the_message_nor_sql_parameters(
    refusing_daemon: Callable[[str], ServeProcess],
) -> None:
    server = refusing_daemon("inbound_message")
    assert send_once("127.0.0.1", server.port, _probe("commit1")) == "451"
    wait_until(
        lambda: any(e.get("event") == "ingest.failed" for e in server.log_lines()),
        30,
        "the refusal logged",
    )
    assert server.leaks(SECRETS) == []


def test_a_refused_commit_2_logs_neither_the_message_nor_sql_parameters(
    refusing_daemon: Callable[[str], ServeProcess],
) -> None:
    server = refusing_daemon("ticket")
    assert send_once("127.0.0.1", server.port, _probe("commit2")) == "250"
    url = server.database_url
    wait_until(
        lambda: read_store(url).inbound_status.get("quarantined") == 1,
        60,
        "the refused message quarantined",
        lambda: read_store(url),
    )
    assert server.leaks(SECRETS) == []
