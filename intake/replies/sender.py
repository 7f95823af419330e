"""The outbox sender (COMMIT 3): deliver queued replies, with retry, backoff and a dead state.

Replies go to the configured relay with aiosmtplib (plain, STARTTLS per RFC 3207 or
implicit TLS per RFC 8314, optional AUTH), or — with no relay — into a directory as
``.eml`` files. Every reply keeps the Message-ID it was rendered with, and the file name
derives from the outbox row, so a delivery repeated after a crash is the same mail.

The sender remembers how its last attempt went (``last_delivery``: the relay answered or
not, the directory took the file or not) for ``/readyz``, and counts its attempts. Errors
that are not the relay's (the store down) end ``run``; the supervisor logs and restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import structlog
from sqlalchemy.orm import Session, sessionmaker

from intake.backoff import backoff_delay
from intake.errors import RelayError
from intake.instance import instance_id
from intake.metrics import Metrics
from intake.settings import OutboundSettings
from store import repository as repo
from store.db import session_scope

_JITTER = 0.1  # ±10 % around each retry delay


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """How the sender's last attempt went: did the relay (or the directory) take mail?"""

    ok: bool
    at: datetime
    error: str | None = None


class Transport:
    """Hands one rendered reply to its destination; raises RelayError on failure."""

    def __init__(self, settings: OutboundSettings) -> None:
        self.settings = settings

    async def deliver(self, reply: Claimed) -> None:
        if self.settings.uses_relay:
            await self._relay(reply)
        else:
            await asyncio.to_thread(write_eml, self.settings.directory, reply)

    async def _relay(self, reply: Claimed) -> None:
        s = self.settings
        try:
            errors, _ = await aiosmtplib.send(
                reply.raw,
                sender=reply.sender,
                recipients=list(reply.recipients),
                hostname=s.relay_host,
                port=s.relay_port,
                use_tls=s.security == "tls",
                # "none" means no STARTTLS at all; "starttls" fails rather than fall back.
                start_tls=s.security == "starttls",
                username=s.username,
                password=s.password.get_secret_value() if s.password else None,
                tls_context=None if s.verify_certificates else _insecure_context(),
                timeout=s.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise RelayError(f"all recipients refused: {exc}", permanent=min(codes) >= 500) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise RelayError(
                f"relay answered {exc.code} {exc.message}", permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise RelayError(f"relay unreachable: {exc}") from exc
        if errors:
            structlog.get_logger("intake.outbox").warning(
                "outbox.partially_refused",
                message_id=reply.message_id,
                refused={k: str(v) for k, v in errors.items()},
            )


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def eml_path(directory: Path, reply: Claimed) -> Path:
    return directory / f"{reply.id:08d}-{reply.message_id.split('@')[0]}.eml"


def write_eml(directory: Path, reply: Claimed) -> Path:
    """Write atomically (temp file + fsync + rename): a reader never sees half a mail.

    Any OSError (a file where the directory should be, no permission, a full disk) is a
    failed delivery, retried with backoff like a relay that is down.
    """
    target = eml_path(directory, reply)
    temp = target.with_suffix(".tmp")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with temp.open("wb") as handle:
            handle.write(reply.raw)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(target)
    except OSError as exc:
        raise RelayError(f"cannot write {target}: {exc}") from exc
    return target


@dataclass
class OutboxSender:
    """COMMIT 3 for one instance. ``owner`` names its claims (``intake.instance``).

    A batch is claimed for ``outbound.claim_ttl`` and the claim renewed every third of
    that while the batch is sent (a heartbeat), so a slow relay never lets another
    instance take a reply mid-delivery, and a dead sender's replies are free again
    within one TTL. Outcomes are recorded only while the claim is still this sender's
    (``repository.mark_sent``); one that no longer applies is logged, never forced.
    """

    sessions: sessionmaker[Session]
    transport: Transport
    settings: OutboundSettings
    clock: Callable[[], datetime]
    owner: str = field(default_factory=instance_id)
    metrics: Metrics = field(default_factory=Metrics.create)
    last_delivery: DeliveryState | None = None

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.claim_ttl)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            sent = await self.flush_once()
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_interval)

    async def flush_once(self, limit: int = 20) -> int:
        """Deliver what is due now; returns how many replies were claimed."""
        claimed = await asyncio.to_thread(self._claim, limit)
        if not claimed:
            return 0
        claim = _Claim({r.id for r in claimed}, self.clock() + self.ttl)
        heartbeat = asyncio.create_task(self._heartbeat(claim))
        try:
            for reply in claimed:
                if not claim.holds(reply.id, self.clock()):
                    self._log(reply).warning("outbox.claim_lost", owner=self.owner)
                    continue  # another sender has it (or may take it): leave it alone
                await self._deliver_one(reply)
                claim.ids.discard(reply.id)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return len(claimed)

    async def _heartbeat(self, claim: _Claim) -> None:
        """Renew the batch's claims every third of the TTL until the batch is done."""
        log = structlog.get_logger("intake.outbox")
        while claim.ids:
            await asyncio.sleep(self.settings.claim_ttl / 3)
            asked = frozenset(claim.ids)
            until = self.clock() + self.ttl
            try:
                kept = await asyncio.to_thread(self._renew, asked, until)
            except Exception as exc:  # the store is down: the claim may run out, say so
                log.warning("outbox.claim_renew_failed", owner=self.owner, error=str(exc))
                continue
            lost = (asked - kept) & claim.ids
            claim.ids -= lost
            claim.until = until
            for outbox_id in sorted(lost):
                log.warning("outbox.claim_lost", outbox_id=outbox_id, owner=self.owner)

    def _claim(self, limit: int) -> list[Claimed]:
        with session_scope(self.sessions, write=True) as session:
            rows = repo.claim_outbox(session, self.clock(), self.ttl, self.owner, limit)
            return [
                Claimed(r.id, r.message_id, r.sender, tuple(r.recipients), r.raw, r.attempts)
                for r in rows
            ]

    def _renew(self, outbox_ids: frozenset[int], until: datetime) -> set[int]:
        with session_scope(self.sessions) as session:
            return repo.renew_outbox_claims(session, sorted(outbox_ids), self.owner, until)

    @staticmethod
    def _log(reply: Claimed) -> Any:
        return structlog.get_logger("intake.outbox").bind(
            outbox_id=reply.id, message_id=reply.message_id
        )

    async def _deliver_one(self, reply: Claimed) -> None:
        log = self._log(reply)
        try:
            await self.transport.deliver(reply)
        except RelayError as exc:
            # A permanent refusal is an answer: the relay itself works.
            self.last_delivery = DeliveryState(exc.permanent, self.clock(), str(exc))
            next_at = self._next_attempt(reply.attempts + 1, exc.permanent)
            self.metrics.deliveries.labels(result="failed" if next_at else "dead").inc()
            applied = await asyncio.to_thread(self._failed, reply.id, str(exc), next_at)
            log.warning(
                "outbox.failed",
                error=str(exc),
                attempts=reply.attempts + 1,
                dead=next_at is None,
                recorded=applied,  # False: the claim was no longer ours; the row is as it was
            )
            return
        self.last_delivery = DeliveryState(True, self.clock())
        self.metrics.deliveries.labels(result="sent").inc()
        if await asyncio.to_thread(self._sent, reply.id):
            log.info("outbox.sent", recipients=list(reply.recipients))
        else:  # delivered, but another sender claimed it meanwhile and may deliver again
            log.warning("outbox.sent_claim_lost", owner=self.owner)

    def _next_attempt(self, attempts: int, permanent: bool) -> datetime | None:
        if permanent or attempts >= self.settings.max_attempts:
            return None
        s = self.settings
        delay = backoff_delay(attempts, s.backoff_initial, s.backoff_max, _JITTER)
        return self.clock() + timedelta(seconds=delay)

    def _failed(self, outbox_id: int, error: str, next_at: datetime | None) -> bool:
        with session_scope(self.sessions) as session:
            return repo.mark_delivery_failed(session, outbox_id, self.owner, error, next_at)

    def _sent(self, outbox_id: int) -> bool:
        with session_scope(self.sessions) as session:
            return repo.mark_sent(session, outbox_id, self.owner, self.clock())


@dataclass
class _Claim:
    """One batch's claim as this sender knows it: the ids still held, and until when."""

    ids: set[int]
    until: datetime

    def holds(self, outbox_id: int, now: datetime) -> bool:
        # Past ``until`` without a renewal (the store did not answer) another sender may
        # have taken the reply: starting its delivery now could send it twice.
        return outbox_id in self.ids and now < self.until
