"""The pipe edge: ``intake deliver`` reads one message on stdin for an MTA.

Contract with the MTA (sysexits.h, as Postfix's pipe(8) and Exim's pipe transport read
it): exit 0 once the message is stored (COMMIT 1), 75 (EX_TEMPFAIL) when it could not
be, so the MTA keeps it queued and retries; 65 (EX_DATAERR) for a message over the size
limit, which the MTA bounces. Any other status is a bounce to Postfix (5.3.0), so after
COMMIT 1 nothing may change it: processing and the reply follow in the same run, within
a time limit, and their failures are only logged; the daemon's sweep retries them.

This module also owns what the run writes under an MTA (:class:`MtaOutput`). Postfix's
pipe(8) runs the command with stdout and stderr on one non-blocking pipe, reads at most
4 KB of it once the command has finished reading the message, then closes its end: a
longer output (a traceback) makes the next write fail with EPIPE, which would turn into
an exit status Postfix bounces. So the output is bounded, cut into short lines, and a
write that fails is dropped, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TextIO

import structlog

from intake.pipeline.core import Clock, Envelope, Pipeline, prepare_inbound, stored_fields
from intake.replies.sender import OutboxSender

# Well under pipe(8)'s 4 KB capture (VSTREAM_BUFSIZE), so Postfix reads all of it until
# EOF and never closes the pipe under us; the bounce text Postfix builds from it stays short.
OUTPUT_LIMIT = 3000
LINE_LIMIT = 600
# Postfix kills a command after command_time_limit (1000 s by default) and then *bounces*
# the message (5.3.0), stored or not: the work after COMMIT 1 must end well before that.
PROCESS_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class PipeEdge:
    """One delivery from an MTA: what it needs is the pipeline, the outbox and the clock."""

    pipeline: Pipeline
    outbox: OutboxSender
    clock: Clock
    max_message_size: int

    def deliver_from_stdin(
        self,
        mail_from: str | None,
        rcpt_to: tuple[str, ...],
        *,
        process: bool = True,
        process_timeout: float = PROCESS_TIMEOUT,
    ) -> int:
        limit = self.max_message_size
        raw = sys.stdin.buffer.read(limit + 1)
        if len(raw) > limit:
            structlog.get_logger("intake.pipe").error("pipe.too_large", limit=limit)
            print(f"intake deliver: message larger than {limit} bytes", file=sys.stderr)
            return os.EX_DATAERR
        envelope = Envelope("pipe", "stdin", mail_from, rcpt_to)
        return self.deliver_bytes(raw, envelope, process=process, process_timeout=process_timeout)

    def deliver_bytes(
        self,
        raw: bytes,
        envelope: Envelope,
        *,
        process: bool = True,
        process_timeout: float = PROCESS_TIMEOUT,
    ) -> int:
        log = structlog.get_logger("intake.pipe")
        try:
            item = prepare_inbound(raw, envelope, self.clock())
            stored = self.pipeline.ingest([item])[0]
        except Exception as exc:  # ingest says only the driver's first line (driver_reason)
            log.error("pipe.store_failed", error=str(exc))
            print(f"intake deliver: could not store the message: {exc}", file=sys.stderr)
            return os.EX_TEMPFAIL
        # Stored: from here on nothing may turn the exit status into a failure, or the MTA
        # would bounce a message we hold (or deliver it a second time).
        try:
            log.info("message.stored", **stored_fields(item, stored))
            if process:
                # A duplicate too: the MTA only re-delivers when an earlier run did not exit
                # 0 after storing (killed, timed out); process() skips what is finished.
                with time_limit(process_timeout):
                    self.pipeline.process(stored.inbound_id)
                    asyncio.run(self.outbox.flush_once())
        except TimeLimitReached:
            log.warning("pipe.time_limit", inbound_id=stored.inbound_id, limit=process_timeout)
        except Exception as exc:  # processing/reply stay due for the daemon or `outbox flush`
            log.warning(
                "pipe.after_store_failed",
                inbound_id=stored.inbound_id,
                error=str(exc).partition("\n")[0],
                exc_type=type(exc).__name__,
            )
        return os.EX_OK


class TimeLimitReached(BaseException):
    """The work after COMMIT 1 ran past its limit (a BaseException: no ``except Exception``
    on the way may count it as a processing failure of the message)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TimeLimitReached` in the block after ``seconds`` (0: no limit).

    SIGALRM, so only in the main thread (where the CLI runs); elsewhere no limit applies.
    Whatever the block had open is rolled back (session_scope rolls back on BaseException).
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise TimeLimitReached

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class MtaOutput:
    """A text stream for stdout/stderr under an MTA: bounded, line-cut, and never failing.

    Lines longer than ``line_limit`` are cut; once ``limit`` bytes are written the rest is
    dropped after one marker line. A write or flush that fails (EPIPE once the MTA stopped
    reading, EAGAIN on its non-blocking pipe) silences the stream for good and points the
    file descriptor at /dev/null, so Python's own flush at exit cannot fail either (that
    failure is exit status 120, a bounce).
    """

    MARKER = "intake deliver: further output suppressed\n"

    def __init__(
        self, stream: TextIO, limit: int = OUTPUT_LIMIT, line_limit: int = LINE_LIMIT
    ) -> None:
        self.stream = stream
        self.limit = limit
        self.line_limit = line_limit
        self.written = 0
        self.silent = False
        self._partial = ""
        self._cut = False  # the current line was emitted cut: drop it up to its newline

    def write(self, text: str) -> int:
        *lines, rest = text.split("\n")
        for line in lines:
            if not self._cut:
                self._emit(self._partial + line)
            self._partial, self._cut = "", False
        if not self._cut:
            self._partial += rest
            if len(self._partial) > self.line_limit:  # emit the cut line now, drop the rest
                self._emit(self._partial)
                self._partial, self._cut = "", True
        return len(text)

    def _emit(self, line: str) -> None:
        if self.silent:
            return
        if len(line) > self.line_limit:
            line = line[: self.line_limit - 1] + "…"
        data = line + "\n"
        size = len(data.encode("utf-8", "replace"))
        if self.written + size > self.limit - len(self.MARKER):
            data, self.silent = self.MARKER, True
        self.written += size
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):  # EPIPE, EAGAIN, a closed stream
            self._silence()

    def _silence(self) -> None:
        self.silent = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def flush(self) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = ""

    def isatty(self) -> bool:  # a person running it by hand still gets the console format
        try:
            return self.stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


@contextlib.contextmanager
def mta_output(limit: int = OUTPUT_LIMIT) -> Iterator[None]:
    """stdout and stderr as :class:`MtaOutput` (sharing one budget) for the block."""
    saved = sys.stdout, sys.stderr
    out = MtaOutput(sys.stderr, limit)
    sys.stdout = sys.stderr = out
    try:
        yield
    finally:
        out.flush()
        sys.stdout, sys.stderr = saved
