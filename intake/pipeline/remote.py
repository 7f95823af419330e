"""Processing in its own process: the SMTP listener never waits on processing's GIL or CPU.

This module owns ``intake.processing = "process"`` (the default), issue 11's first
direction. ``intake serve`` keeps the edges (SMTP, IMAP, the pipe), COMMIT 1, the outbox
sender and HTTP in the daemon's process; COMMIT 2 (parse, assess, decide, the ticket and
its confirmation) runs in one child process, which runs the same ``ProcessingWorker`` over
its own store connections, with its own pool of reading processes under the time budget.
Its reading workers run at a lower CPU priority (``intake.reading_nice``), so on a busy
machine the listener's 250s win the CPU and parsing catches up once arrivals stop (what is
stored is already safe: COMMIT 1). The child itself keeps the daemon's priority: it takes
store locks, and on SQLite a niced holder of the one write lock, descheduled, held up
every COMMIT 1 behind it (p99 of the 250 at 50 msg/s: 409 ms niced, on 2 cores).

``ProcessingProcess`` is the daemon's side, one supervised unit named ``worker``, as the
in-process worker is:

* ``submit`` (any thread) queues the id a writer or poller just stored; a sender thread
  passes the ids to the child in batches over a pipe, so the event loop never blocks on it.
* The child reports each message's outcome back (``("done", Outcome, seconds)``); the
  daemon counts it in its own metrics registry, so ``/metrics`` is the same either way.
* When the child exits unasked (killed, OOM, a crash in C) the unit raises: the supervisor
  logs it, shows ``worker`` down in health and starts a new child after its backoff. The
  ids it held were never lost: they are rows in ``received`` or ``failed``, and every child
  sweeps the store when it starts, as any instance does.
* ``stop`` sends the end of input; the child finishes what it has, its worker drains, and
  it exits. One that outlives ``grace`` is killed (its rows are retried by the next start).

The child ignores SIGINT and SIGTERM (a terminal's ^C and systemd's stop reach the whole
process group): its parent decides when it stops, and a parent that dies closes the pipe,
which the child reads as the end of input.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import structlog

from intake.metrics import Metrics
from intake.pipeline.core import Outcome
from intake.pipeline.worker import record_outcome

# (settings, the child's end of the pipe): the child's entry point, ``intake.app``'s.
ChildMain = Callable[[Any, Connection], None]

_BATCH = 256  # ids per pipe message at most


@dataclass
class ProcessingProcess:
    """The daemon's side of the processing process: a supervised unit, like the worker."""

    target: ChildMain
    settings: Any  # intake.settings.Settings: pickled to the child as it is
    metrics: Metrics
    grace: float = 60.0
    _ids: queue.Queue[int] = field(default_factory=queue.Queue)

    def submit(self, inbound_id: int) -> None:
        """Queue a stored message for processing (thread-safe; never blocks)."""
        self._ids.put(inbound_id)

    async def run(self, stop: asyncio.Event) -> None:
        log = structlog.get_logger("intake.processing")
        context = multiprocessing.get_context("spawn")  # the daemon has threads: no fork
        ours, theirs = context.Pipe()
        child = context.Process(
            target=self.target, args=(self.settings, theirs), name="intake-processing"
        )
        await asyncio.to_thread(child.start)
        theirs.close()  # only the child holds its end: its exit is our EOF
        log.info("processing.started", pid=child.pid)
        loop = asyncio.get_running_loop()
        gone, ending = asyncio.Event(), threading.Event()
        sender = threading.Thread(
            target=self._send, args=(ours, ending), daemon=True, name="to-child"
        )
        receiver = threading.Thread(
            target=self._receive, args=(ours, loop, gone), daemon=True, name="from-child"
        )
        sender.start()
        receiver.start()
        waiting = asyncio.ensure_future(stop.wait())
        exited = asyncio.ensure_future(gone.wait())
        try:
            await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            ending.set()  # the sender passes on what is queued, then the end of input
            await asyncio.to_thread(sender.join, 10)
            await asyncio.to_thread(child.join, self.grace if stop.is_set() else 5)
            if child.is_alive():
                log.error("processing.killed", pid=child.pid, grace=self.grace)
                child.kill()
                await asyncio.to_thread(child.join, 10)
            await asyncio.to_thread(receiver.join, 10)
            ours.close()
        if not stop.is_set():
            raise RuntimeError(f"the processing process exited (exit code {child.exitcode})")
        log.info("processing.stopped", exit_code=child.exitcode)

    def _send(self, conn: Connection, ending: threading.Event) -> None:
        """Ids to the child in batches; once ``ending`` is set and none is left, the end
        of input. The queue outlives a child: what a dead one never got goes to the next
        (and was a row in the store all along)."""
        while True:
            try:
                batch = [self._ids.get(timeout=0.1)]
            except queue.Empty:
                if ending.is_set():
                    with contextlib.suppress(OSError):
                        conn.send(None)
                    return
                continue
            with contextlib.suppress(queue.Empty):
                while len(batch) < _BATCH:
                    batch.append(self._ids.get_nowait())
            try:
                conn.send(batch)
            except OSError:  # the child is gone: these rows wait in the store for the next
                return

    def _receive(
        self, conn: Connection, loop: asyncio.AbstractEventLoop, gone: asyncio.Event
    ) -> None:
        """Outcomes from the child into our metrics, until its end of the pipe closes."""
        try:
            while True:
                message = conn.recv()
                if isinstance(message, tuple) and message[0] == "done":
                    outcome, seconds = message[1], message[2]
                    assert isinstance(outcome, Outcome)
                    record_outcome(self.metrics, outcome, float(seconds))
        except (EOFError, OSError):
            pass
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(gone.set)


def serve_child(
    conn: Connection,
    submit: Callable[[int], None],
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
) -> Callable[[Outcome, float], None]:
    """The child's side of the pipe: ids in (to ``submit`` on ``loop``), outcomes out.

    Starts the thread that reads the parent's batches; the end of input (``None``, or the
    parent gone) sets ``stop``. Returns what the worker calls with each outcome.
    """
    lock = threading.Lock()  # the worker's threads report concurrently; one writer at a time

    def report(outcome: Outcome, seconds: float) -> None:
        with lock, contextlib.suppress(OSError):  # a parent that is gone counts nothing
            conn.send(("done", outcome, seconds))

    def read() -> None:
        try:
            while (batch := conn.recv()) is not None:
                for inbound_id in batch:
                    loop.call_soon_threadsafe(submit, inbound_id)
        except (EOFError, OSError):
            pass
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read, daemon=True, name="from-parent").start()
    return report
