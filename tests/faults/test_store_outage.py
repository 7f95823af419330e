"""Store outage: a private PostgreSQL cluster is stopped under a running ``intake serve``.

While the store is down, intake may only say "try again later": every DATA gets a 4xx
(never a 5xx, which makes the sender's MTA bounce the mail, and never a 250 for mail it
could not store). When the cluster comes back, the same daemon process — not restarted —
accepts new mail, processes the backlog it stored just before the outage, and sends the
replies. The cluster is the fixture's own (``tests/pgcluster.py``), never the shared one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.faults.harness import (
    Relay,
    RetryingClient,
    ServeProcess,
    make_batch,
    read_store,
    send_once,
    wait_until,
)
from tests.pgcluster import PgCluster, missing_reason

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

BEFORE, DURING, AFTER = 60, 10, 20


@dataclass
class Outage:
    cluster: PgCluster
    server: ServeProcess
    relay: Relay
    pid: int
    backlog: int  # stored but not yet processed when the cluster stopped
    before: set[str]
    during_codes: dict[str, str]  # message_id -> the one answer while the store was down
    after: RetryingClient  # the outage's messages again, then new ones, after the restart


def _unprocessed(cluster: PgCluster) -> int:
    with psycopg.connect(cluster.url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT count(*) FROM inbound_message WHERE status = 'received'")
        return int(row.fetchone()[0])  # type: ignore[index]


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    cluster, relay = PgCluster(), Relay()
    server = ServeProcess(cluster.url, relay.url, tmp_path_factory.mktemp("outage") / "serve.log")
    try:
        cluster.create()
        relay.start()
        server.start()
        assert server.process is not None
        # A burst faster than processing, then the store goes away at once: some of it is
        # stored (250) and not processed yet.
        first = RetryingClient("127.0.0.1", server.port, deadline=time.monotonic() + 60)
        first.send_all(make_batch(BEFORE, 10, "before"), 10)
        backlog = _unprocessed(cluster)
        cluster.stop("fast")
        during = make_batch(DURING, 5, "during")
        codes = {item.message_id: send_once("127.0.0.1", server.port, item) for item in during}
        cluster.start()
        after = RetryingClient("127.0.0.1", server.port, deadline=time.monotonic() + 90)
        after.send_all([*during, *make_batch(AFTER, 5, "after")], 5)
        yield Outage(
            cluster, server, relay, server.process.pid, backlog, set(first.acked), codes, after
        )
    finally:
        server.stop()
        relay.stop()
        cluster.destroy()


def test_before_the_outage_every_message_was_acknowledged_and_some_left_unprocessed(
    outage: Outage,
) -> None:
    assert len(outage.before) == BEFORE
    assert outage.backlog > 0, "the burst was processed before the stop: no backlog to recover"


def test_while_the_store_is_down_every_answer_is_a_4xx(outage: Outage) -> None:
    assert {m: c for m, c in outage.during_codes.items() if not c.startswith("4")} == {}


def test_after_the_store_returns_the_same_process_accepts_new_mail(outage: Outage) -> None:
    assert len(outage.after.acked) == DURING + AFTER, dict(outage.after.codes)
    assert outage.server.alive and outage.server.process is not None
    assert outage.server.process.pid == outage.pid
    started = [e for e in outage.server.log_lines() if e.get("event") == "intake.started"]
    assert len(started) == 1


def test_after_the_store_returns_the_backlog_and_new_mail_are_ticketed_once(
    outage: Outage,
) -> None:
    acked = outage.before | set(outage.after.acked)
    url = outage.cluster.url
    wait_until(
        lambda: read_store(url).tickets_by_message.keys() >= acked,
        60,
        "every acknowledged message ticketed",
        lambda: read_store(url),
    )
    counts = read_store(url)
    assert set(counts.tickets_by_message) == acked
    assert set(counts.tickets_by_message.values()) == {1}


def test_the_outage_is_logged_without_message_content(outage: Outage) -> None:
    errors = [e for e in outage.server.log_lines() if e.get("level") == "error"]
    assert any(e.get("event") == "ingest.failed" for e in errors)  # the outage was logged
    # the senders' addresses, the body and its phone number (tests.conftest.make_mail)
    assert outage.server.leaks(["@customer0", "555 0100", "dial tone", "Denver office"]) == []


def test_after_the_store_returns_every_reply_is_sent(outage: Outage) -> None:
    acked = outage.before | set(outage.after.acked)
    relay = outage.relay
    wait_until(
        lambda: {a.in_reply_to for a in relay.accepted()} >= acked,
        45,
        "a confirmation at the relay for every acknowledged message",
        lambda: (
            f"{len(acked - {a.in_reply_to for a in relay.accepted()})} missing; "
            f"{read_store(outage.cluster.url)}"
        ),
    )
    assert all(len(ids) == 1 for ids in relay.ids_by_parent().values())
