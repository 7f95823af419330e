"""The pipe edge: ``intake deliver`` reads one message on stdin for an MTA.

Contract with the MTA (sysexits.h, as Postfix's pipe(8) and Exim's pipe transport read
it): exit 0 once the message is stored (COMMIT 1), 75 (EX_TEMPFAIL) when it could not
be, so the MTA keeps it queued and retries; 65 (EX_DATAERR) for a message over the size
limit, which the MTA bounces. Processing and the reply follow in the same run, but their
failures no longer change the exit status: the message is safe, the daemon's sweep
retries it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

import structlog

from intake.pipeline.core import Clock, Envelope, Pipeline, prepare_inbound, stored_fields
from intake.replies.sender import OutboxSender


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
    ) -> int:
        limit = self.max_message_size
        raw = sys.stdin.buffer.read(limit + 1)
        if len(raw) > limit:
            structlog.get_logger("intake.pipe").error("pipe.too_large", limit=limit)
            print(f"intake deliver: message larger than {limit} bytes", file=sys.stderr)
            return os.EX_DATAERR
        envelope = Envelope("pipe", "stdin", mail_from, rcpt_to)
        return self.deliver_bytes(raw, envelope, process=process)

    def deliver_bytes(self, raw: bytes, envelope: Envelope, *, process: bool = True) -> int:
        log = structlog.get_logger("intake.pipe")
        try:
            item = prepare_inbound(raw, envelope, self.clock())
            stored = self.pipeline.ingest([item])[0]
        except Exception as exc:
            log.error("pipe.store_failed", error=str(exc))
            print(f"intake deliver: could not store the message: {exc}", file=sys.stderr)
            return os.EX_TEMPFAIL
        # Stored: from here on nothing may turn the exit status into a failure, or the MTA
        # would deliver the message a second time.
        try:
            log.info("message.stored", **stored_fields(item, stored))
            if process and not stored.duplicate:
                self.pipeline.process(stored.inbound_id)
                asyncio.run(self.outbox.flush_once())
        except Exception as exc:  # processing/reply stay due for the daemon or `outbox flush`
            log.warning("pipe.after_store_failed", inbound_id=stored.inbound_id, error=str(exc))
        return os.EX_OK
