"""The group-commit writer keeps serving when a caller gives up before its commit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from intake.edges.groupcommit import GroupCommitWriter
from intake.errors import StoreError
from intake.pipeline.core import NewInbound, Stored

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def item(key: str) -> NewInbound:
    return NewInbound(key, f"{key}@acme.example", "smtp", None, "j@acme.example", (), b"x", NOW)


class GatedStore:
    """Stands in for Pipeline.ingest: the first call waits until the test opens the gate."""

    def __init__(self, first_fails: bool) -> None:
        self.entered, self.gate = threading.Event(), threading.Event()
        self.first_fails, self.calls = first_fails, 0

    def ingest(self, items: Sequence[NewInbound]) -> list[Stored]:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.gate.wait()
            if self.first_fails:
                raise StoreError("could not store inbound message")
        return [Stored(100 + self.calls, False) for _ in items]


@pytest.mark.parametrize("first_fails", [False, True], ids=["commit-ok", "commit-failed"])
def test_a_caller_that_gave_up_does_not_stop_the_writer(first_fails: bool) -> None:
    store = GatedStore(first_fails)
    writer = GroupCommitWriter(store)  # type: ignore[arg-type]
    writer.start()

    async def scenario() -> Stored:
        abandoned = asyncio.create_task(writer.store(item("k1")))
        await asyncio.to_thread(store.entered.wait)
        abandoned.cancel()  # the SMTP client hung up while its message was being stored
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        store.gate.set()
        return await asyncio.wait_for(writer.store(item("k2")), timeout=30)

    try:
        assert asyncio.run(scenario()) == Stored(102, False)
    finally:
        store.gate.set()
        writer.stop()


class MiscountingStore:
    """A store with a bug: the first call answers for fewer items than it was given."""

    def __init__(self) -> None:
        self.calls = 0

    def ingest(self, items: Sequence[NewInbound]) -> list[Stored]:
        self.calls += 1
        if self.calls == 1:
            return []
        return [Stored(200 + self.calls, False) for _ in items]


def test_a_failing_batch_answers_its_callers_and_the_writer_lives_on() -> None:
    writer = GroupCommitWriter(MiscountingStore())  # type: ignore[arg-type]
    writer.start()

    async def scenario() -> Stored:
        with pytest.raises(StoreError):  # an answer (the client's 451), not a hang
            await asyncio.wait_for(writer.store(item("k1")), timeout=30)
        return await asyncio.wait_for(writer.store(item("k2")), timeout=30)

    try:
        assert asyncio.run(scenario()) == Stored(202, False)
    finally:
        writer.stop()
