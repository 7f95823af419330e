"""The processing worker: runs ``Pipeline.process`` for stored messages, several at a time.

Edges hand it the ids they just stored; a periodic sweep also picks up whatever the store
says is due — messages stored before a crash or restart, and failed ones whose backoff
has passed — so nothing acknowledged waits forever. Processing runs in threads, never on
the event loop, at most ``concurrency`` messages at once (one per worker process of the
reader, ``intake.workers``), so a slow message occupies one slot and never starves the
others; a message already in hand is not started twice, and neither is one that finished
after the edge's hand-over or the sweep's read that named it (that read was stale: the
message's own commit came after it). Each one is counted by outcome
and timed (``intake.metrics``), and so are the flood limits and reflection caps it hit.

The reader (``intake.pipeline.isolation``) is made when the unit starts and closed when
it ends, so a supervisor restart of this unit also starts fresh worker processes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import structlog
from sqlalchemy.orm import Session, sessionmaker

from intake.metrics import Metrics
from intake.pipeline.core import Outcome, Pipeline
from intake.pipeline.isolation import ProcessReader, Reader
from store import repository as repo
from store.db import session_scope

# Recent finishes remembered (see ProcessingWorker._finished): far more than a sweep's batch
# or the hand-overs in flight, a few hundred KB at most.
FINISHED_KEPT = 4096


@dataclass
class ProcessingWorker:
    pipeline: Pipeline
    sessions: sessionmaker[Session]
    sweep_interval: float
    metrics: Metrics = field(default_factory=Metrics.create)
    # Makes the reader when the unit starts (None: read in this process, no budget).
    reader_factory: Callable[[], ProcessReader] | None = None
    concurrency: int = 1
    # Where each outcome and its seconds go (None: this process's metrics); the processing
    # process sends them to the daemon's (intake.pipeline.remote).
    on_done: Callable[[Outcome, float], None] | None = None
    # Each id with the tick at which it was handed over (see _finished).
    _queue: asyncio.Queue[tuple[int, int]] = field(default_factory=asyncio.Queue)
    _reader: Reader | None = None
    _in_hand: set[int] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None
    # A counter of the loop's own events, and the tick at which each recent id finished:
    # an id named by a hand-over or a sweep read at tick t, that finished after t, was
    # named before its outcome was committed, so trying it again could only find it done.
    # Bounded: an id that falls out costs at most one harmless ``already_done`` attempt.
    _tick: int = 0
    _finished: OrderedDict[int, int] = field(default_factory=OrderedDict)

    def submit(self, inbound_id: int) -> None:
        self._queue.put_nowait((inbound_id, self._next_tick()))

    def _next_tick(self) -> int:
        self._tick += 1
        return self._tick

    async def run(self, stop: asyncio.Event) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)
        pool = await asyncio.to_thread(self.reader_factory) if self.reader_factory else None
        self._reader = pool
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await self.sweep()
            while not stop.is_set():
                # The next id, the sweep's turn, or stop: a stop never waits out the interval.
                getter = asyncio.ensure_future(self._queue.get())
                done, _ = await asyncio.wait(
                    {getter, stopping},
                    timeout=self.sweep_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if getter in done:
                    await self._start(*getter.result())
                    continue
                getter.cancel()  # not done: cancelling a Queue.get loses no item
                if not stop.is_set():
                    await self.sweep()
            await self._drain()
        finally:
            stopping.cancel()
            await self._settle()
            self._reader = None
            if pool is not None:
                await asyncio.to_thread(pool.close)

    async def sweep(self) -> int:
        """Process everything the store says is due; returns how many were tried."""
        read_at = self._next_tick()
        due = await asyncio.to_thread(self._due_ids)
        for inbound_id in due:
            await self._start(inbound_id, read_at)
        await self._settle()
        return len(due)

    async def _start(self, inbound_id: int, named_at: int) -> None:
        """Process ``inbound_id`` in a free slot (waiting for one), unless it is in hand or
        finished after ``named_at``, the tick at which it was handed over or read as due."""
        if inbound_id in self._in_hand or self._finished.get(inbound_id, 0) > named_at:
            return
        slots = self._slots or asyncio.Semaphore(self.concurrency)
        self._slots = slots
        await slots.acquire()
        self._in_hand.add(inbound_id)

        async def one() -> None:
            try:
                await asyncio.to_thread(self._process, inbound_id)
            finally:
                self._in_hand.discard(inbound_id)
                self._finished[inbound_id] = self._next_tick()
                self._finished.move_to_end(inbound_id)
                if len(self._finished) > FINISHED_KEPT:
                    self._finished.popitem(last=False)
                slots.release()

        task = asyncio.create_task(one(), name=f"process {inbound_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self) -> None:
        """Wait for every message in hand (process() never raises: failures are counted)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self) -> None:
        while not self._queue.empty():
            await self._start(*self._queue.get_nowait())

    def _process(self, inbound_id: int) -> Outcome:
        started = time.perf_counter()
        outcome = self.pipeline.process(inbound_id, self._reader)
        (self.on_done or partial(record_outcome, self.metrics))(
            outcome, time.perf_counter() - started
        )
        return outcome

    def _due_ids(self) -> list[int]:
        try:
            with session_scope(self.sessions) as session:
                return repo.due_inbound_ids(session, self.pipeline.clock())
        except Exception as exc:  # store down: log, keep the daemon up, sweep again later
            structlog.get_logger("intake.worker").error("sweep.failed", error=str(exc))
            return []


def record_outcome(metrics: Metrics, outcome: Outcome, seconds: float) -> None:
    """Count one processed message by outcome, with its time and the limits it hit."""
    metrics.processing_seconds.observe(seconds)
    metrics.processed.labels(outcome=outcome.result.value).inc()
    if outcome.flood:
        metrics.floods.labels(scope=outcome.flood).inc()
    if outcome.reflection:
        metrics.reflection_suppressed.labels(scope=outcome.reflection).inc()
