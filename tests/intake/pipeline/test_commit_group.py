"""COMMIT 2's group commit: messages read meanwhile share one write transaction.

``CommitGroup`` on its own (threads, no store): who leads, who waits, and whose failure
is raised where. Then the pipeline on SQLite and PostgreSQL: a group of stored reports
written in one transaction, one of them failing inside it, counted afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from intake.app import build_app, commit_group
from intake.pipeline.batch import CommitGroup, Entry, WriteGroup
from intake.pipeline.core import Applied, Envelope, Outcome, Read, Work, prepare_inbound
from intake.pipeline.decide import Decision
from intake.settings import Settings
from store.db import session_scope
from store.models import InboundMessage, InboundStatus, OutboxMessage, Ticket
from tests.conftest import COMPLETE_BODY, make_mail, wait_for

WAIT = 60.0  # generous: a loaded 2-core machine


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        ("sqlite:///{tmp}/intake.db", None, 1),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/intake", None, 32),
        ("sqlite:///{tmp}/intake.db", 8, 8),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/intake", 1, 1),
    ],
    ids=["sqlite-default", "postgresql-default", "sqlite-configured", "postgresql-configured"],
)
def test_the_group_limit_is_the_stores_unless_configured(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    url: str,
    configured: int | None,
    expected: int,
) -> None:
    """SQLite's default is one message a transaction: a group holds the file's one write
    lock, which every COMMIT 1 (every SMTP 250) waits behind; PostgreSQL locks rows."""
    settings = make_settings(url.format(tmp=tmp_path), **{"intake.commit_group": configured})
    assert commit_group(settings) == expected


def test_the_pipeline_writes_in_groups_of_the_resolved_limit(
    make_settings: Callable[..., Settings],
) -> None:
    app = build_app(make_settings())  # SQLite, intake.commit_group unset
    assert app.pipeline.commits.limit == 1
    app.engine.dispose()


def run_together(
    group: CommitGroup[int, int], items: Sequence[int], write: WriteGroup[int, int]
) -> list[Future[int]]:
    """``group.run(item, write)`` for every item, each in a thread of its own, all of them
    waiting before the first group is taken: the test holds the leader's lock meanwhile."""
    with ThreadPoolExecutor(len(items)) as pool:
        with group._leader:
            futures = [pool.submit(group.run, item, write) for item in items]
            wait_for(lambda: len(group._waiting) == len(items), timeout=WAIT)
    return futures


def doubling(groups: list[list[int]]) -> WriteGroup[int, int]:
    def write(entries: Sequence[Entry[int, int]]) -> None:
        groups.append([e.item for e in entries])
        for entry in entries:
            entry.answer(entry.item * 2)

    return write


def test_items_waiting_while_one_is_written_share_the_next_group() -> None:
    groups: list[list[int]] = []
    futures = run_together(CommitGroup(), [1, 2, 3, 4, 5], doubling(groups))
    assert [f.result() for f in futures] == [2, 4, 6, 8, 10]  # each its own answer
    assert [sorted(g) for g in groups] == [[1, 2, 3, 4, 5]]  # one transaction for five


def test_alone_an_item_is_its_own_group() -> None:
    groups: list[list[int]] = []
    group: CommitGroup[int, int] = CommitGroup()
    assert [group.run(n, doubling(groups)) for n in (1, 2)] == [2, 4]
    assert groups == [[1], [2]]


def test_a_group_holds_at_most_limit_items_and_every_one_is_answered() -> None:
    groups: list[list[int]] = []
    futures = run_together(CommitGroup(limit=2), list(range(1, 8)), doubling(groups))
    assert [f.result() for f in futures] == [n * 2 for n in range(1, 8)]
    assert [len(g) for g in groups] == [2, 2, 2, 1]
    assert sorted(n for g in groups for n in g) == list(range(1, 8))


def test_a_failing_item_raises_in_its_own_thread_only() -> None:
    def write(entries: Sequence[Entry[int, int]]) -> None:
        for entry in entries:
            if entry.item == 3:
                entry.fail(ValueError("item 3"))
            else:
                entry.answer(entry.item * 2)

    futures = run_together(CommitGroup(), [1, 2, 3, 4], write)
    with pytest.raises(ValueError, match="item 3"):
        futures[2].result()
    assert [futures[k].result() for k in (0, 1, 3)] == [2, 4, 8]


def test_a_failed_transaction_fails_every_item_even_those_already_answered() -> None:
    """An answer given before the commit failed was never committed: never returned."""

    def write(entries: Sequence[Entry[int, int]]) -> None:
        for entry in entries:
            if entry.item == 2:
                entry.fail(ValueError("item 2"))
            else:
                entry.answer(entry.item)
        raise OSError("disk I/O error")

    futures = run_together(CommitGroup(), [1, 2, 3], write)
    with pytest.raises(ValueError, match="item 2"):  # its own failure stays its own
        futures[1].result()
    for future in (futures[0], futures[2]):
        with pytest.raises(OSError, match="disk I/O error"):
            future.result()


def test_an_entry_the_write_left_unanswered_fails_instead_of_hanging() -> None:
    def write(entries: Sequence[Entry[int, int]]) -> None:
        for entry in entries:
            if entry.item != 2:  # forgets 2
                entry.answer(entry.item)

    futures = run_together(CommitGroup(), [1, 2, 3], write)
    assert (futures[0].result(), futures[2].result()) == (1, 3)
    with pytest.raises(RuntimeError, match="unanswered"):
        futures[1].result()


# --- the pipeline: a group of reports in one write transaction ------------------------

REPORTS = 6
FAULTY = 3  # the report whose writes raise inside the group


class FaultyApply:
    """Wraps ``Pipeline.apply``: the chosen stored message's writes fail midway, in the
    store, after its ticket's INSERT: a statement the database refuses (on PostgreSQL
    that aborts the transaction until its savepoint is rolled back)."""

    def __init__(self, apply: Callable[[Decision, Work], Applied]) -> None:
        self.apply, self.failing = apply, -1

    def __call__(self, decision: Decision, work: Work) -> Applied:
        applied = self.apply(decision, work)
        if work.read.row.id == self.failing:
            work.session.connection().exec_driver_sql("SELECT no_such_column FROM ticket")
        return applied


def test_a_group_of_reports_commits_once_and_a_failing_one_is_rolled_back_alone(
    make_settings: Callable[[str], Settings], db_url: str
) -> None:
    app = build_app(make_settings(db_url))
    pipeline = app.pipeline
    ids = []
    for n in range(REPORTS):
        sender = f"user{n}@acme{n}.example"
        raw = make_mail(
            subject=f"Acme Corp – Denver – Echo {n} – P3", body=COMPLETE_BODY, sender=sender
        )
        item = prepare_inbound(raw, Envelope("smtp", "test", sender), pipeline.clock())
        ids.append(pipeline.ingest([item])[0].inbound_id)
    fault = FaultyApply(pipeline.apply)
    fault.failing = ids[FAULTY]
    pipeline.apply = fault  # type: ignore[method-assign]
    commits: list[object] = []
    group: CommitGroup[Read, Outcome] = CommitGroup()
    pipeline.commits = group
    with ThreadPoolExecutor(REPORTS) as pool:
        with group._leader:  # every message is read and waits to be written
            futures = [pool.submit(pipeline.process, i) for i in ids]
            wait_for(lambda: len(group._waiting) == REPORTS, timeout=WAIT)
            event.listen(app.engine, "commit", commits.append)
        outcomes = [f.result() for f in futures]
    # One commit for the six, and the failing one's failed attempt recorded after it.
    assert len(commits) == 2
    results = {o.inbound_id: o.result.value for o in outcomes}
    assert results[ids[FAULTY]] == "failed"
    assert [results[i] for i in ids if i != ids[FAULTY]] == ["ticket_created"] * (REPORTS - 1)
    with session_scope(app.sessions) as session:
        tickets = session.execute(select(Ticket.inbound_message_id)).scalars().all()
        queued = session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        row = session.get_one(InboundMessage, ids[FAULTY])
        assert (row.status, row.attempts, row.ticket_id) == (InboundStatus.FAILED, 1, None)
    # The failing one's ticket INSERT went with its savepoint; the others' stayed.
    assert sorted(tickets) == sorted(i for i in ids if i != ids[FAULTY])
    assert queued == REPORTS - 1
    # Retried without the fault: its ticket and confirmation, nothing twice.
    fault.failing = -1
    pipeline.commits = CommitGroup()
    assert pipeline.process(ids[FAULTY]).result.value == "ticket_created"
    with session_scope(app.sessions) as session:
        assert session.execute(select(func.count()).select_from(Ticket)).scalar_one() == REPORTS
        queued = session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
    assert queued == REPORTS
    app.engine.dispose()
