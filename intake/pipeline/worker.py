"""The processing worker: runs ``Pipeline.process`` for stored messages, one at a time.

Edges hand it the ids they just stored; a periodic sweep also picks up whatever the store
says is due — messages stored before a crash or restart, and failed ones whose backoff
has passed — so nothing acknowledged waits forever. Processing runs in a thread, never on
the event loop, and one message at a time so a bad one cannot starve the others. Each one
is counted by outcome and timed (``intake.metrics``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog
from sqlalchemy.orm import Session, sessionmaker

from intake.metrics import Metrics
from intake.pipeline.core import Outcome, Pipeline
from store import repository as repo
from store.db import session_scope


@dataclass
class ProcessingWorker:
    pipeline: Pipeline
    sessions: sessionmaker[Session]
    sweep_interval: float
    metrics: Metrics = field(default_factory=Metrics.create)
    _queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)

    def submit(self, inbound_id: int) -> None:
        self._queue.put_nowait(inbound_id)

    async def run(self, stop: asyncio.Event) -> None:
        await self.sweep()
        while not stop.is_set():
            try:
                inbound_id = await asyncio.wait_for(self._queue.get(), self.sweep_interval)
            except TimeoutError:
                await self.sweep()
                continue
            await asyncio.to_thread(self._process, inbound_id)
        await self._drain()

    async def sweep(self) -> int:
        """Process everything the store says is due; returns how many were tried."""
        due = await asyncio.to_thread(self._due_ids)
        for inbound_id in due:
            await asyncio.to_thread(self._process, inbound_id)
        return len(due)

    async def _drain(self) -> None:
        while not self._queue.empty():
            inbound_id = self._queue.get_nowait()
            await asyncio.to_thread(self._process, inbound_id)

    def _process(self, inbound_id: int) -> Outcome:
        started = time.perf_counter()
        outcome = self.pipeline.process(inbound_id)
        self.metrics.processing_seconds.observe(time.perf_counter() - started)
        self.metrics.processed.labels(outcome=outcome.result.value).inc()
        return outcome

    def _due_ids(self) -> list[int]:
        try:
            with session_scope(self.sessions) as session:
                return repo.due_inbound_ids(session, self.pipeline.clock())
        except Exception as exc:  # store down: log, keep the daemon up, sweep again later
            structlog.get_logger("intake.worker").error("sweep.failed", error=str(exc))
            return []
