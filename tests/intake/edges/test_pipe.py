"""The pipe edge without a subprocess: once stored, nothing turns the exit status into 75."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from sqlalchemy import text

from intake.app import build_app, utc_now
from intake.edges.pipe import PipeEdge
from intake.errors import RelayError
from intake.pipeline.core import Envelope
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from tests.conftest import make_mail

ENVELOPE = Envelope("pipe", "stdin", "jane@acme.example", ("support@example.com",))


class BrokenRelay:
    """Stands in for the outbox sender when the relay is down."""

    async def flush_once(self, limit: int = 20) -> int:
        raise RelayError("relay unreachable")


def test_a_reply_failure_after_storing_still_exits_0_and_stores_once(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = build_app(make_settings(db_url))
    edge = PipeEdge(app.pipeline, BrokenRelay(), utc_now, 1_000_000)  # type: ignore[arg-type]
    raw = make_mail()
    assert edge.deliver_bytes(raw, ENVELOPE) == os.EX_OK
    assert edge.deliver_bytes(raw, ENVELOPE) == os.EX_OK  # the MTA retried: a duplicate
    with session_scope(app.sessions) as session:
        assert len(repo.list_tickets(session)) == 1
        assert [r.status for r in repo.list_outbox(session)] == ["queued"]  # sent later


def test_a_store_failure_exits_75_so_the_mta_keeps_the_mail(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = build_app(make_settings(db_url))
    app.engine.dispose()
    app.pipeline.sessions.configure(bind=None)  # no database behind the pipeline any more
    edge = PipeEdge(app.pipeline, app.outbox, utc_now, 1_000_000)
    assert edge.deliver_bytes(make_mail(), ENVELOPE) == os.EX_TEMPFAIL


def test_a_store_failure_names_the_reason_but_never_the_message(
    make_settings: Callable[..., Settings], db_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    app = build_app(make_settings(db_url))
    with app.engine.begin() as conn:  # break the real store underneath the edge
        conn.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_gone"))
    edge = PipeEdge(app.pipeline, app.outbox, utc_now, 1_000_000)
    envelope = Envelope("pipe", "stdin", "zebra-7731@acme.example", ("support@example.com",))
    assert edge.deliver_bytes(make_mail(), envelope) == os.EX_TEMPFAIL
    out, err = capfd.readouterr()
    assert "inbound_message" in err  # the driver's reason reaches the MTA's log
    # ...but not the SQL parameters (here: the envelope sender; the message itself).
    assert "zebra-7731" not in out + err and "parameters" not in out + err
