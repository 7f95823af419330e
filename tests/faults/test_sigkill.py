"""SIGKILL under load: every acknowledged message has exactly one ticket and one confirmation.

2,000 messages (``INTAKE_FAULT_MESSAGES``; the PostgreSQL run sends 500,
``INTAKE_FAULT_MESSAGES_PG``) from 20 senders go through a retrying client (what an MTA's
queue does: 4xx or a dropped connection means "try again later") while the ``intake serve``
subprocess is SIGKILLed three times, each at a random-ish point of the load chosen while the
outbox sender holds claims, and restarted on the same store. The client keeps track of which
messages got a 250; the store and a real relay then account for each of them. A message
whose 250 was lost in a kill is sent again with the same Message-ID and must not become a
second ticket. ``INTAKE_FAULT_SEED`` replays the kill points of a failed run.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.faults.harness import (
    Relay,
    RetryingClient,
    ServeProcess,
    fresh_database,
    make_batch,
    outbox_claimed,
    read_store,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.timeout(600)]

# The SQLite run is the full load; the PostgreSQL run is the same scenario, smaller, to keep
# the suite's budget (each PostgreSQL commit costs more on a shared 2-core machine).
MESSAGES = {
    "sqlite": int(os.environ.get("INTAKE_FAULT_MESSAGES", "2000")),
    "postgresql": int(os.environ.get("INTAKE_FAULT_MESSAGES_PG", "500")),
}
SENDERS = 20
KILLS = 3
# Seconds after the last restart by which every reply must be out: a SIGKILLed sender's
# claims lapse after outbound.claim_ttl (30 s by default), then the new process sends them.
CLAIM_TTL_BOUND = 90


@dataclass
class KillRun:
    client: RetryingClient
    server: ServeProcess
    relay: Relay
    url: str
    last_restart: float
    seed: int
    messages: int
    timings: dict[str, float]


def _kill_points(rng: random.Random, messages: int) -> list[int]:
    """Three acknowledgement counts to kill at, one in each third of the load."""
    return [int(messages * rng.uniform(lo, lo + 0.2)) for lo in (0.1, 0.4, 0.7)]


def _kill_while_claimed(server: ServeProcess, url: str) -> None:
    """Kill while the sender holds claims on two or more replies (one may be in flight, the
    other is certainly undelivered), or after 10 s of load without such a moment."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and outbox_claimed(url) < 2:
        time.sleep(0.01)
    server.kill()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def kill_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KillRun]:
    tmp = tmp_path_factory.mktemp(f"sigkill-{request.param}")
    url = fresh_database(request.param, request, tmp)
    seed = int(os.environ.get("INTAKE_FAULT_SEED", str(time.time_ns() % 100_000)))
    rng, messages, began = random.Random(seed), MESSAGES[request.param], time.monotonic()
    relay = Relay()
    relay.start()
    server = ServeProcess(url, relay.url, tmp / "serve.log")
    server.start()
    client = RetryingClient("127.0.0.1", server.port, deadline=time.monotonic() + 300)
    load = threading.Thread(
        target=client.send_all, args=(make_batch(messages, SENDERS, "kill"), SENDERS)
    )
    load.start()
    last_restart = time.monotonic()
    try:
        for point in _kill_points(rng, messages):
            wait_until(
                lambda: len(client.acked) >= point, 120, f"{point} acknowledged (seed {seed})"
            )
            _kill_while_claimed(server, url)
            server.start()
            last_restart = time.monotonic()
        load.join(360)
        timings = {"acknowledged": time.monotonic() - began}
        yield KillRun(client, server, relay, url, last_restart, seed, messages, timings)
    finally:
        client.deadline = 0  # stop retrying, whatever happened
        load.join(60)
        server.stop()
        relay.stop()


def test_every_acknowledged_message_has_one_ticket_and_one_confirmation(
    kill_run: KillRun,
) -> None:
    client, url = kill_run.client, kill_run.url
    seed = f"seed {kill_run.seed}, codes {dict(client.codes)}"
    assert kill_run.server.starts == KILLS + 1
    assert not client.refused, f"permanent refusals: {list(client.refused.items())[:5]} ({seed})"
    missing = kill_run.messages - len(client.acked)
    assert missing == 0, f"{missing} never got a 250 ({seed})"
    acked = set(client.acked)
    processed = lambda: read_store(url).tickets_by_message.keys() >= acked  # noqa: E731
    wait_until(
        processed, 240, f"every acknowledged message ticketed ({seed})", lambda: read_store(url)
    )
    kill_run.timings["ticketed"] = time.monotonic() - kill_run.last_restart
    counts = read_store(url)
    assert set(counts.tickets_by_message) == acked, seed
    assert set(counts.tickets_by_message.values()) == {1}, seed
    wait_until(
        lambda: read_store(url).confirmations_by_message.keys() >= acked, 60, "confirmations"
    )
    counts = read_store(url)
    assert {m: n for m, n in counts.confirmations_by_message.items() if n != 1} == {}, seed
    # At the relay: never two different confirmations for one customer message, and nothing
    # for a message that was not acknowledged.
    by_parent = kill_run.relay.ids_by_parent()
    assert {p: ids for p, ids in by_parent.items() if len(ids) > 1} == {}, seed
    assert set(by_parent) <= acked, seed
    print(f"{kill_run.messages} messages, {seed}, seconds {kill_run.timings}")


def test_every_confirmation_reaches_the_relay_soon_after_the_last_restart(
    kill_run: KillRun,
) -> None:
    acked = set(kill_run.client.acked)
    delivered = lambda: {a.in_reply_to for a in kill_run.relay.accepted()} >= acked  # noqa: E731
    remaining = max(5.0, kill_run.last_restart + CLAIM_TTL_BOUND - time.monotonic())
    wait_until(
        delivered,
        remaining,
        f"every confirmation at the relay (seed {kill_run.seed})",
        lambda: (
            f"{len(acked - {a.in_reply_to for a in kill_run.relay.accepted()})} missing; "
            f"{read_store(kill_run.url)}"
        ),
    )
    by_parent = kill_run.relay.ids_by_parent()
    assert all(len(by_parent[m]) == 1 for m in acked)
