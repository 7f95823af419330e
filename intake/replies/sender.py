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
from collections.abc import AsyncIterator, Callable
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
    """Hands rendered replies to their destination; raises RelayError on failure.

    Inside ``batch()`` the replies of one claimed batch share one relay connection (RFC
    5321 §3.3: a session carries several mail transactions; no TCP, TLS and EHLO per
    reply), and in directory mode the directory is fsynced once by ``settle()``, not per
    file.
    """

    def __init__(self, settings: OutboundSettings) -> None:
        self.settings = settings
        self._batching = False
        self._client: aiosmtplib.SMTP | None = None

    @property
    def idempotent(self) -> bool:
        """A repeated delivery is the same file (its name comes from the outbox row), so
        a batch may be recorded as sent once all of it is written and settled."""
        return not self.settings.uses_relay

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            await self._drop()

    async def deliver(self, reply: Claimed) -> None:
        if self.settings.uses_relay:
            await self._relay(reply)
        else:
            await asyncio.to_thread(write_eml, self.settings.directory, reply)

    async def settle(self) -> None:
        """Make the batch's deliveries durable before they are recorded as sent: the
        renames into the outbox directory last only once the directory is fsynced."""
        if not self.settings.uses_relay:
            await asyncio.to_thread(sync_directory, self.settings.directory)

    async def _relay(self, reply: Claimed) -> None:
        try:
            client = self._client or await self._connect()
            if self._batching:
                self._client = client
            try:
                errors, _ = await client.sendmail(
                    reply.sender, list(reply.recipients), reply.raw, timeout=self.settings.timeout
                )
            finally:
                if not self._batching or not client.is_connected:
                    await self._drop(client)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise RelayError(f"all recipients refused: {exc}", permanent=min(codes) >= 500) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise RelayError(
                f"relay answered {exc.code} {exc.message}", permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._drop()  # the connection is in an unknown state: the next one is new
            raise RelayError(f"relay unreachable: {exc}") from exc
        if errors:
            structlog.get_logger("intake.outbox").warning(
                "outbox.partially_refused",
                message_id=reply.message_id,
                refused={k: str(v) for k, v in errors.items()},
            )

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
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
        await client.connect()  # EHLO, STARTTLS and AUTH as configured
        return client

    async def _drop(self, client: aiosmtplib.SMTP | None = None) -> None:
        """QUIT and close ``client`` (default: the batch's connection), ignoring errors:
        every reply it carried has its outcome already."""
        if client is None or client is self._client:
            client, self._client = client or self._client, None
        if client is None:
            return
        if client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await client.quit()
        client.close()


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def eml_path(directory: Path, reply: Claimed) -> Path:
    return directory / f"{reply.id:08d}-{reply.message_id.split('@')[0]}.eml"


def write_eml(directory: Path, reply: Claimed) -> Path:
    """Write atomically (temp file + fsync + rename): a reader never sees half a mail.
    The rename is durable once the directory is synced (``sync_directory``, per batch).

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


def sync_directory(directory: Path) -> None:
    """fsync the directory itself, so the renames into it survive a power loss (POSIX
    leaves a rename's durability to the directory's own fsync)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise RelayError(f"cannot sync {directory}: {exc}") from exc


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
        written: list[Claimed] = []  # idempotent deliveries, recorded once settled
        try:
            async with self.transport.batch():
                for reply in claimed:
                    if not claim.holds(reply.id, self.clock()):
                        self._log(reply).warning("outbox.claim_lost", owner=self.owner)
                        continue  # another sender has it (or may take it): leave it alone
                    batched = self.transport.idempotent
                    if await self._deliver_one(reply, record=not batched) and batched:
                        written.append(reply)  # still claimed (and renewed) until recorded
                    else:
                        claim.ids.discard(reply.id)
            await self._record_written(written)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return len(claimed)

    async def _record_written(self, written: list[Claimed]) -> None:
        """Settle the batch's files (one directory fsync), then mark them sent in one
        transaction. If the directory cannot be synced, they are retried: writing the
        same file again is the same delivery."""
        if not written:
            return
        try:
            await self.transport.settle()
        except RelayError as exc:
            for reply in written:
                await self._record_failure(reply, exc)
            return
        applied = await asyncio.to_thread(self._sent, [r.id for r in written])
        for reply in written:
            self._log_sent(reply, reply.id in applied)

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

    async def _deliver_one(self, reply: Claimed, *, record: bool) -> bool:
        """Deliver ``reply``; True when it was taken. A failure is recorded now; a success
        is recorded now when ``record``, else by the caller with the rest of the batch."""
        try:
            await self.transport.deliver(reply)
        except RelayError as exc:
            await self._record_failure(reply, exc)
            return False
        self.last_delivery = DeliveryState(True, self.clock())
        self.metrics.deliveries.labels(result="sent").inc()
        if record:
            self._log_sent(reply, reply.id in await asyncio.to_thread(self._sent, [reply.id]))
        return True

    async def _record_failure(self, reply: Claimed, exc: RelayError) -> None:
        # A permanent refusal is an answer: the relay itself works.
        self.last_delivery = DeliveryState(exc.permanent, self.clock(), str(exc))
        next_at = self._next_attempt(reply.attempts + 1, exc.permanent)
        self.metrics.deliveries.labels(result="failed" if next_at else "dead").inc()
        applied = await asyncio.to_thread(self._failed, reply.id, str(exc), next_at)
        self._log(reply).warning(
            "outbox.failed",
            error=str(exc),
            attempts=reply.attempts + 1,
            dead=next_at is None,
            recorded=applied,  # False: the claim was no longer ours; the row is as it was
        )

    def _log_sent(self, reply: Claimed, applied: bool) -> None:
        if applied:
            self._log(reply).info("outbox.sent", recipients=list(reply.recipients))
        else:  # delivered, but another sender claimed it meanwhile and may deliver again
            self._log(reply).warning("outbox.sent_claim_lost", owner=self.owner)

    def _next_attempt(self, attempts: int, permanent: bool) -> datetime | None:
        if permanent or attempts >= self.settings.max_attempts:
            return None
        s = self.settings
        delay = backoff_delay(attempts, s.backoff_initial, s.backoff_max, _JITTER)
        return self.clock() + timedelta(seconds=delay)

    def _failed(self, outbox_id: int, error: str, next_at: datetime | None) -> bool:
        with session_scope(self.sessions) as session:
            return repo.mark_delivery_failed(session, outbox_id, self.owner, error, next_at)

    def _sent(self, outbox_ids: list[int]) -> set[int]:
        with session_scope(self.sessions) as session:
            return repo.mark_sent_many(session, outbox_ids, self.owner, self.clock())


@dataclass
class _Claim:
    """One batch's claim as this sender knows it: the ids still held, and until when."""

    ids: set[int]
    until: datetime

    def holds(self, outbox_id: int, now: datetime) -> bool:
        # Past ``until`` without a renewal (the store did not answer) another sender may
        # have taken the reply: starting its delivery now could send it twice.
        return outbox_id in self.ids and now < self.until
