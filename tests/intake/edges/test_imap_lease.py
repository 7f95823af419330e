"""An IMAP standby takes a dead holder's mailbox over within one lease duration.

Driven by a clock, not by sleeping: the poller's ``stop.wait`` advances a fake clock (and
lets the live holder renew on its schedule, every third of the lease), and the standby's
IMAP session is replaced by a note of when it got the lease. The lease itself is the
real one in the store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from intake.edges.imap import MailboxPoller
from intake.edges.mailboxes import resolve_mailbox
from intake.pipeline.mailstate import StoredMailboxState
from intake.settings import ImapSettings, MailboxSettings
from store.db import create_schema, make_engine, make_session_factory

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LEASE = 60.0  # seconds; poll_interval at its default (60 s) too
HOLDER = "host-a:100:dead"


@dataclass
class Timeline:
    """The fake clock, and the holder that renews every third of the lease until it dies."""

    state: StoredMailboxState
    mailbox: str
    died_at: datetime
    now: datetime = T0
    renewals: list[datetime] = field(default_factory=list)
    done: bool = False

    def __post_init__(self) -> None:
        self._renew_at(T0)

    def _renew_at(self, at: datetime) -> None:
        assert self.state.acquire_lease(self.mailbox, HOLDER, at, at + timedelta(seconds=LEASE)), (
            "the holder lost its lease while alive"
        )
        self.renewals.append(at)

    def advance(self, seconds: float) -> None:
        target = self.now + timedelta(seconds=seconds)
        step = timedelta(seconds=LEASE / 3)
        while (due := self.renewals[-1] + step) <= min(target, self.died_at):
            self.now = due
            self._renew_at(due)
        self.now = target


class FakeStop(threading.Event):
    """``stop.wait(t)`` lets ``t`` seconds pass on the timeline instead of sleeping."""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__()
        self.timeline = timeline

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout > 0, "a standby must never spin"
        self.timeline.advance(timeout)
        return self.is_set()


class Standby(MailboxPoller):
    took_over_at: datetime | None = None

    def _session(self, stop: threading.Event) -> None:  # the IMAP part: not under test
        self.took_over_at = self.clock()
        stop.set()


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    engine = make_engine(db_url)
    create_schema(engine)
    return make_session_factory(engine)


@pytest.mark.parametrize("standby_starts", [0.0, 0.6, 0.95], ids=lambda f: f"at-{f}L")
@pytest.mark.parametrize("holder_lives", [0.5, 2.5], ids=lambda f: f"holder-lives-{f}L")
def test_a_standby_takes_over_within_one_lease_of_the_holders_death(
    sessions: sessionmaker[Session], standby_starts: float, holder_lives: float
) -> None:
    mailbox = resolve_mailbox(MailboxSettings(url="imap://support@127.0.0.1:1143/INBOX"))
    state = StoredMailboxState(sessions)
    timeline = Timeline(state, mailbox.name, T0 + timedelta(seconds=holder_lives * LEASE))
    timeline.advance(standby_starts * LEASE)
    settings = ImapSettings(lease_duration=LEASE)
    standby = Standby(
        mailbox, settings, None, state, lambda _: None, lambda: timeline.now, "host-b:200:live"
    )
    standby.run(FakeStop(timeline))
    assert standby.took_over_at is not None
    last_renewal = timeline.renewals[-1]
    lapsed = last_renewal + timedelta(seconds=LEASE)
    assert standby.took_over_at > lapsed  # never while the holder's lease held
    # Within one lease of the holder's death (its last renewal), give or take a moment.
    assert standby.took_over_at - last_renewal <= timedelta(seconds=LEASE + 1)
