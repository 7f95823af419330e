"""Group commit for COMMIT 1: one writer thread, one transaction per group of waiting mail.

One fsync per accepted message caps intake at 1/fsync-latency; committing everything
that is waiting in one transaction keeps throughput while every caller still gets its
answer only after *its own* commit (ARCHITECTURE, performance facts). The event loop
never runs database code: callers await a future the thread resolves.

``intake serve`` runs ``run`` under the supervisor, which restarts the thread if it dies;
what waits in the queue survives a restart. ``start``/``stop`` run it standalone.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import structlog

from intake.errors import StoreError
from intake.pipeline.core import NewInbound, Pipeline, Stored

_STOP = object()


@dataclass
class GroupCommitWriter:
    pipeline: Pipeline
    max_batch: int = 64
    _queue: queue.Queue[object] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="intake-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        if self._thread is not None:
            self.request_stop()
            self._thread.join()
            self._thread = None

    def request_stop(self) -> None:
        """Ask ``run`` to return once everything queued before now is committed."""
        self._queue.put(_STOP)

    async def store(self, item: NewInbound) -> Stored:
        future: Future[Stored] = Future()
        self._queue.put((item, future))
        return await asyncio.wrap_future(future)

    def run(self) -> None:
        """The writer loop (blocking): commit what waits, group by group, until asked to stop."""
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop_after = self._drain_into(batch)
            try:
                self._commit(batch)  # type: ignore[arg-type]
            except Exception as exc:  # a bug here must not end the thread: SMTP would hang
                structlog.get_logger("intake.writer").error(
                    "writer.batch_failed", size=len(batch), error=type(exc).__name__
                )
                _fail_unanswered(batch)  # type: ignore[arg-type]
            if stop_after:
                return

    def _drain_into(self, batch: list[object]) -> bool:
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
        return False

    def _commit(self, batch: list[tuple[NewInbound, Future[Stored]]]) -> None:
        try:
            results = self.pipeline.ingest([item for item, _ in batch])
        except Exception as exc:
            if len(batch) > 1:  # one bad message must not fail its neighbours
                for single in batch:
                    self._commit([single])
                return
            item, future = batch[0]
            # Only the exception's type: its text and traceback carry the SQL parameters,
            # i.e. the message itself, and rendering them stalled the writer for seconds.
            cause = exc.__cause__ or exc
            structlog.get_logger("intake.writer").error(
                "ingest.failed", message_id=item.message_id, error=type(cause).__name__
            )
            _answer(future, StoreError("could not store the message"))
            return
        for (_, future), result in zip(batch, results, strict=True):
            _answer(future, result)


def _answer(future: Future[Stored], outcome: Stored | Exception) -> None:
    """Answer a caller, unless it gave up (its SMTP session ended): the writer lives on."""
    if not future.set_running_or_notify_cancel():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _fail_unanswered(batch: list[tuple[NewInbound, Future[Stored]]]) -> None:
    """After a failed batch, every caller still waiting gets its 451, none waits forever."""
    for _, future in batch:
        if future.done():
            continue
        if future.running():
            future.set_exception(StoreError("could not store the message"))
        else:
            _answer(future, StoreError("could not store the message"))
