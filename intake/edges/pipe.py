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

import structlog

from intake.app import App, utc_now
from intake.pipeline.core import Envelope, prepare_inbound


def deliver_from_stdin(
    app: App, mail_from: str | None, rcpt_to: tuple[str, ...], *, process: bool = True
) -> int:
    log = structlog.get_logger("intake.pipe")
    limit = app.settings.smtp.max_message_size
    raw = sys.stdin.buffer.read(limit + 1)
    if len(raw) > limit:
        log.error("pipe.too_large", limit=limit)
        print(f"intake deliver: message larger than {limit} bytes", file=sys.stderr)
        return os.EX_DATAERR
    return deliver_bytes(app, raw, Envelope("pipe", "stdin", mail_from, rcpt_to), process=process)


def deliver_bytes(app: App, raw: bytes, envelope: Envelope, *, process: bool = True) -> int:
    log = structlog.get_logger("intake.pipe")
    try:
        item = prepare_inbound(raw, envelope, utc_now())
        stored = app.pipeline.ingest([item])[0]
    except Exception as exc:
        log.error("pipe.store_failed", error=str(exc))
        print(f"intake deliver: could not store the message: {exc}", file=sys.stderr)
        return os.EX_TEMPFAIL
    # Stored: from here on nothing may turn the exit status into a failure, or the MTA
    # would deliver the message a second time.
    try:
        log.info(
            "message.stored",
            inbound_id=stored.inbound_id,
            message_id=item.message_id,
            origin="pipe",
            size=len(raw),
            duplicate=stored.duplicate,
        )
        if process and not stored.duplicate:
            app.pipeline.process(stored.inbound_id)
            asyncio.run(app.outbox.flush_once())
    except Exception as exc:  # processing/reply stay due for the daemon or `outbox flush`
        log.warning("pipe.after_store_failed", inbound_id=stored.inbound_id, error=str(exc))
    return os.EX_OK
