"""Outbox claims between sender instances: owned, renewed while sending, free after a crash.

Each sender is its own instance (own engine, own owner id) on one store, delivering to a
real aiosmtpd relay sink; the sink counts what it got by Message-ID, so a reply delivered
twice shows as a count of 2.
"""

from __future__ import annotations

import asyncio
import email
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

from intake.errors import RelayError
from intake.replies.sender import Claimed, OutboxSender, Transport
from intake.settings import OutboundSettings
from store import repository as repo
from store.db import create_schema, make_engine, make_session_factory, session_scope
from store.models import OutboxMessage, OutboxStatus
from tests.conftest import Sink, free_port

# A fault-injection test: pytest -m fault runs these with tests/faults.
pytestmark = pytest.mark.fault

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@dataclass
class SlowSink(Sink):
    """A relay that takes ``delay`` seconds over each DATA (a slow or distant relay)."""

    delay: float = 0.0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)

    def deliveries(self) -> Counter[str]:
        return Counter(
            str(email.message_from_bytes(e.original_content)["Message-ID"]) for e in self.messages
        )


@pytest.fixture
def slow_sink() -> Iterator[SlowSink]:
    sink = SlowSink("127.0.0.1", free_port(), delay=0.5)
    sink.start()
    yield sink
    sink.stop()


def outbound(sink: Sink, **values: object) -> OutboundSettings:
    return OutboundSettings.model_validate(
        {"relay_host": sink.host, "relay_port": sink.port, "timeout": 30.0, **values}
    )


def instance(db_url: str) -> sessionmaker[OrmSession]:
    engine = make_engine(db_url)
    create_schema(engine)
    return make_session_factory(engine)


def queue_replies(sessions: sessionmaker[OrmSession], count: int, now: datetime) -> list[str]:
    ids = []
    with session_scope(sessions) as session:
        for _ in range(count):
            message_id = f"{uuid.uuid4().hex}@example.com"
            raw = (
                f"Message-ID: <{message_id}>\r\nFrom: support@example.com\r\n"
                "To: jane@acme.example\r\nSubject: Re: your ticket\r\n\r\nThanks.\r\n"
            ).encode()
            row = OutboxMessage(
                message_id=message_id,
                kind="confirmation",
                sender="support@example.com",
                recipients=["jane@acme.example"],
                raw=raw,
                status=OutboxStatus.QUEUED,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            session.add(row)
            ids.append(f"<{message_id}>")
    return ids


def rows(sessions: sessionmaker[OrmSession]) -> list[OutboxMessage]:
    with session_scope(sessions) as session:
        return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def sender(
    sessions: sessionmaker[OrmSession], settings: OutboundSettings, clock: Callable[[], datetime]
) -> OutboxSender:
    return OutboxSender(sessions, Transport(settings), settings, clock)


def utc_now() -> datetime:
    return datetime.now(UTC)


def test_two_senders_and_a_slow_relay_deliver_every_reply_exactly_once(
    db_url: str, slow_sink: SlowSink
) -> None:
    """A batch takes longer than the claim TTL: the heartbeat keeps it, nobody steals it."""
    one, two = instance(db_url), instance(db_url)
    message_ids = queue_replies(one, 12, utc_now())
    # A batch takes ~6 s, 1.5 TTLs, so only the heartbeat keeps it; the TTL leaves a loaded
    # machine 2.7 s of slack per renewal (every TTL/3) before a claim could lapse.
    settings = outbound(slow_sink, claim_ttl=4.0, poll_interval=0.05)
    senders = [sender(one, settings, utc_now), sender(two, settings, utc_now)]

    async def run() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in senders]
        try:
            for _ in range(1200):  # at most 60 s
                if all(r.status == OutboxStatus.SENT for r in await asyncio.to_thread(rows, one)):
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()  # each sender finishes the batch it holds, then ends
            await asyncio.gather(*tasks)

    asyncio.run(run())
    assert {r.status for r in rows(one)} == {OutboxStatus.SENT}
    assert slow_sink.deliveries() == Counter(dict.fromkeys(message_ids, 1))


def test_a_dead_senders_claim_is_taken_over_when_its_ttl_runs_out(
    db_url: str, slow_sink: SlowSink
) -> None:
    sessions = instance(db_url)
    [message_id] = queue_replies(sessions, 1, NOW)
    settings = outbound(slow_sink)  # the default TTL: 30 s
    ttl = timedelta(seconds=settings.claim_ttl)
    assert ttl < timedelta(minutes=1)
    with session_scope(sessions, write=True) as session:  # claimed, then the owner died
        [claimed] = repo.claim_outbox(session, NOW, ttl, "dead-host:4242:cafe")
    survivor = sender(sessions, settings, lambda: clock)
    clock = NOW + ttl - timedelta(seconds=1)
    assert asyncio.run(survivor.flush_once()) == 0  # still the dead owner's
    clock = NOW + ttl
    assert asyncio.run(survivor.flush_once()) == 1
    [row] = rows(sessions)
    assert (row.id, row.status, row.sent_at) == (claimed.id, OutboxStatus.SENT, NOW + ttl)
    assert slow_sink.deliveries() == Counter({message_id: 1})


class LateFailure(Transport):
    """Fails slowly: while it hangs, the claim runs out and ``meanwhile`` runs."""

    def __init__(
        self, settings: OutboundSettings, meanwhile: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(settings)
        self.meanwhile = meanwhile

    async def deliver(self, reply: Claimed) -> None:
        await self.meanwhile()
        raise RelayError("relay answered 451 4.4.2 timeout after DATA")


def test_a_late_failure_cannot_reset_a_row_another_sender_delivered(
    db_url: str, slow_sink: SlowSink
) -> None:
    one, two = instance(db_url), instance(db_url)
    [message_id] = queue_replies(one, 1, NOW)
    settings = outbound(slow_sink)
    ttl = timedelta(seconds=settings.claim_ttl)
    other = sender(two, settings, lambda: NOW + ttl)  # comes along once the claim ran out

    async def other_delivers() -> None:
        assert await other.flush_once() == 1

    late = LateFailure(settings, other_delivers)
    stale = OutboxSender(one, late, settings, lambda: NOW)
    assert asyncio.run(stale.flush_once()) == 1
    [row] = rows(one)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.SENT, 0, None)
    assert slow_sink.deliveries() == Counter({message_id: 1})
    assert asyncio.run(stale.flush_once()) == 0  # and nothing is due again


@dataclass
class SessionSink(SlowSink):
    """Records which connection carried each message; closes it at the ``drop_at``-th DATA
    before answering (a relay restarting mid-batch)."""

    drop_at: int | None = None
    seen: int = 0
    peers: list[object] | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.seen += 1
        if self.seen == self.drop_at:
            assert server.transport is not None
            server.transport.close()
            return "421 4.3.2 closing"  # never reaches the client
        self.peers = [*(self.peers or []), session.peer]
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def session_sink() -> Iterator[SessionSink]:
    sink = SessionSink("127.0.0.1", free_port())
    sink.start()
    yield sink
    sink.stop()


def test_a_batch_shares_one_relay_connection(db_url: str, session_sink: SessionSink) -> None:
    """RFC 5321 §3.3: one session carries the batch's transactions (no connect per reply)."""
    sessions = instance(db_url)
    message_ids = queue_replies(sessions, 5, utc_now())
    relay = sender(sessions, outbound(session_sink), utc_now)
    assert asyncio.run(relay.flush_once()) == 5
    assert session_sink.deliveries() == Counter(dict.fromkeys(message_ids, 1))
    assert len(set(session_sink.peers or [])) == 1
    assert {r.status for r in rows(sessions)} == {OutboxStatus.SENT}


def test_a_connection_lost_mid_batch_fails_one_reply_and_the_rest_go_on_a_new_one(
    db_url: str, session_sink: SessionSink
) -> None:
    sessions = instance(db_url)
    message_ids = queue_replies(sessions, 5, NOW)
    session_sink.drop_at = 3
    clock = NOW
    relay = sender(sessions, outbound(session_sink, backoff_initial=1.0), lambda: clock)
    assert asyncio.run(relay.flush_once()) == 5
    lost = rows(sessions)[2]
    assert (lost.status, lost.attempts) == (OutboxStatus.QUEUED, 1)
    assert "relay unreachable" in (lost.last_error or "")
    assert [r.status for i, r in enumerate(rows(sessions)) if i != 2] == [OutboxStatus.SENT] * 4
    assert len(set(session_sink.peers or [])) == 2  # the two before, the two after the drop
    clock = NOW + timedelta(minutes=5)  # past the backoff: the lost one is retried
    assert asyncio.run(relay.flush_once()) == 1
    assert session_sink.deliveries() == Counter(dict.fromkeys(message_ids, 1))
    assert {r.status for r in rows(sessions)} == {OutboxStatus.SENT}
