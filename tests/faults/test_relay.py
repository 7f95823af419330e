"""Relay faults: each reply is delivered once, under the Message-ID it was rendered with.

* The relay is down while tickets are opened, then comes back: every confirmation reaches
  it exactly once (retried with backoff meanwhile, never lost, never doubled).
* The relay takes the whole message, then drops the connection after the final dot
  instead of answering: the sender cannot know the mail arrived and delivers it again.
  That second copy must be the *same* mail (same Message-ID), which the recipient's MTA
  and MUA can recognise; two different Message-IDs for one reply would be two replies.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.harness import (
    Relay,
    RetryingClient,
    ServeProcess,
    make_batch,
    read_store,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.timeout(180)]

MESSAGES = 20


def _send(server: ServeProcess, tag: str) -> set[str]:
    client = RetryingClient("127.0.0.1", server.port, deadline=time.monotonic() + 60)
    client.send_all(make_batch(MESSAGES, 5, tag), 5)
    assert len(client.acked) == MESSAGES, dict(client.codes)
    return set(client.acked)


def _all_sent(server: ServeProcess, acked: set[str]) -> None:
    url = server.database_url
    wait_until(
        lambda: read_store(url).outbox_status == Counter({"sent": len(acked)}),
        90,
        "every confirmation marked sent",
        lambda: read_store(url),
    )


def test_relay_down_then_back_each_reply_is_delivered_once(tmp_path: Path) -> None:
    relay = Relay()  # its port is reserved for the daemon but nothing listens yet
    server = ServeProcess(f"sqlite:///{tmp_path / 'intake.db'}", relay.url, tmp_path / "log")
    server.start()
    try:
        acked = _send(server, "down")
        url = server.database_url
        wait_until(
            lambda: read_store(url).retried_replies == MESSAGES,
            60,
            "every confirmation tried against the dead relay",
            lambda: read_store(url),
        )
        relay.start()
        _all_sent(server, acked)
        expected = read_store(url).reply_ids
        delivered = Counter(a.message_id for a in relay.accepted())
        assert delivered == Counter(expected[m] for m in acked)  # each once, none other
        assert {a.in_reply_to for a in relay.accepted()} == acked
    finally:
        server.stop()
        relay.stop()


def test_relay_dropping_after_data_gets_the_same_message_id_again(tmp_path: Path) -> None:
    relay = Relay(drop_first=True)
    relay.start()
    server = ServeProcess(f"sqlite:///{tmp_path / 'intake.db'}", relay.url, tmp_path / "log")
    server.start()
    try:
        acked = _send(server, "drop")
        _all_sent(server, acked)
        expected = read_store(server.database_url).reply_ids
        dropped = [a for a in relay.attempts if a.kind == "dropped"]
        assert len(dropped) == MESSAGES  # the fault really happened to every reply
        # never two different Message-IDs for one reply: the retry is the same mail
        assert {p: ids for p, ids in relay.ids_by_parent().items() if len(ids) != 1} == {}
        assert Counter(a.message_id for a in relay.accepted()) == Counter(
            expected[m] for m in acked
        )
        assert {a.message_id for a in dropped} == {expected[m] for m in acked}
    finally:
        server.stop()
        relay.stop()
