"""Metrics read at scrape time: the store's counts, the supervisor's tasks, the checks.

The counters the daemon increments live in ``intake.metrics``; what the store already
knows (the backlog, replies by status, charges, mailboxes) is asked for here, with a few
grouped COUNT queries per scrape (``store.repository``), so several instances on one
PostgreSQL report the same numbers and a restart loses none. A store that does not answer
makes ``intake_store_up`` 0; it never fails the scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from intake.supervisor import TaskHealth
from intake.web.checks import Check, run_checks
from store import repository as repo
from store.db import session_scope
from store.models import MailboxState

Clock = Callable[[], datetime]


class _AtScrape(Collector):
    """Described as nothing, so registering it runs no query (the registry would collect)."""

    def describe(self) -> list[Metric]:
        return []


class StoreCollector(_AtScrape):
    """Backlog, replies, charges and mailboxes, as the store has them now."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        mailboxes: Sequence[str],
        lease_owner: str | None = None,
    ) -> None:
        self.sessions, self.clock = sessions, clock
        self.mailboxes, self.lease_owner = tuple(mailboxes), lease_owner

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("intake_store_up", "1 when the store answered this scrape")
        try:
            with session_scope(self.sessions) as session:
                families = list(self._families(session))
        except Exception:  # the store is down: say so, and report nothing stale
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, session: Session) -> Iterator[Metric]:
        yield from self._inbound(session)
        replies = GaugeMetricFamily(
            "intake_replies",
            "Replies in the outbox by status (failed: queued again after a failed attempt)",
            labels=["status"],
        )
        for status, count in sorted(repo.count_outbox_by_status(session).items()):
            replies.add_metric([status], count)
        yield replies
        yield from self._charges(session)
        yield from self._mailboxes(repo.list_mailbox_states(session))

    def _inbound(self, session: Session) -> Iterator[Metric]:
        counts = repo.count_inbound_by_status(session)
        by_status = GaugeMetricFamily(
            "intake_inbound_messages", "Stored messages by status", labels=["status"]
        )
        for status, count in sorted(counts.items()):
            by_status.add_metric([status], count)
        yield by_status
        backlog = counts.get("received", 0) + counts.get("failed", 0)
        yield GaugeMetricFamily(
            "intake_received_backlog",
            "Stored messages waiting to be processed (received, or failed and retrying)",
            value=backlog,
        )
        oldest = repo.oldest_waiting(session, self.mailboxes)
        age = (self.clock() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "intake_received_oldest_age_seconds",
            "How long the oldest message this instance can take has waited (0: none)",
            value=max(0.0, age),
        )

    def _charges(self, session: Session) -> Iterator[Metric]:
        labels = ["kind", "status", "currency"]
        count = GaugeMetricFamily("intake_charges", "Charges in the ledger", labels=labels)
        amount = GaugeMetricFamily(
            "intake_charges_amount", "Sum of the charges in the ledger", labels=labels
        )
        for kind, status, currency, n, total in repo.charge_totals(session):
            count.add_metric([kind, status, currency], n)
            amount.add_metric([kind, status, currency], float(total))
        yield count
        yield amount

    def _mailboxes(self, rows: Iterable[MailboxState]) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "intake_mailbox_up", "1 when the mailbox's last poll worked", labels=["mailbox"]
        )
        failing = GaugeMetricFamily(
            "intake_mailbox_failing_since_timestamp_seconds",
            "When the mailbox started failing (absent while it works)",
            labels=["mailbox"],
        )
        lease = GaugeMetricFamily(
            "intake_mailbox_lease_expires_timestamp_seconds",
            "When the current lease on the mailbox runs out",
            labels=["mailbox"],
        )
        ours = GaugeMetricFamily(
            "intake_mailbox_lease_held",
            "1 when this instance holds the mailbox's lease (it is the one polling)",
            labels=["mailbox"],
        )
        now = self.clock()
        for row in rows:
            up.add_metric([row.name], 0 if row.failing_since else 1)
            if row.failing_since:
                failing.add_metric([row.name], row.failing_since.timestamp())
            if row.lease_expires_at:
                lease.add_metric([row.name], row.lease_expires_at.timestamp())
            if row.name in self.mailboxes:
                held = row.lease_owner == self.lease_owner and _live(row, now)
                ours.add_metric([row.name], 1 if held else 0)
        yield from (up, failing, lease, ours)


def _live(row: MailboxState, now: datetime) -> bool:
    return row.lease_expires_at is not None and row.lease_expires_at > now


class TaskCollector(_AtScrape):
    """The supervisor's view: which tasks are up, how often each was restarted."""

    def __init__(self, health: Callable[[], Sequence[TaskHealth]]) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("intake_task_up", "1 while the task runs", labels=["task"])
        restarts = CounterMetricFamily(
            "intake_task_restarts", "Times the supervisor restarted the task", labels=["task"]
        )
        for task in self.health():
            up.add_metric([task.name], 1 if task.alive else 0)
            restarts.add_metric([task.name], task.restarts)
        yield up
        yield restarts


class CheckCollector(_AtScrape):
    """Each readiness check as a gauge, so an alert can name the one that fails."""

    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = checks

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            "intake_ready", "1 when the readiness check passes (see /readyz)", labels=["check"]
        )
        for result in run_checks(self.checks):
            ready.add_metric([result.name], 1 if result.ok else 0)
        yield ready
