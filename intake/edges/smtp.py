"""The SMTP edge: an aiosmtpd handler that accepts mail for the support addresses only.

Thin by design: it turns SMTP events into ``(bytes, Envelope)``, stores them through the
group-commit writer (COMMIT 1) and maps the result onto reply codes (RFC 5321 §4.2,
enhanced status codes per RFC 3463): 250 only after the commit, 451 when the store
failed so the client retries, 550 5.1.1 for any other recipient (never an open relay),
552 above the size limit (enforced by aiosmtpd's ``data_size_limit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from intake.edges.groupcommit import GroupCommitWriter
from intake.pipeline.core import Clock, prepare_inbound
from intake.pipeline.core import Envelope as IntakeEnvelope
from intake.settings import SmtpSettings
from parsing import address_key


class IntakeHandler:
    """aiosmtpd handler hooks (``handle_RCPT``, ``handle_DATA``)."""

    def __init__(
        self,
        support_addresses: Iterable[str],
        max_recipients: int,
        writer: GroupCommitWriter,
        on_stored: Callable[[int], None],
        clock: Clock,
    ) -> None:
        self.support = frozenset(address_key(a) for a in support_addresses)
        self.max_recipients = max_recipients
        self.writer = writer
        self.on_stored = on_stored
        self.clock = clock
        self.log = structlog.get_logger("intake.smtp")

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address_key(address) not in self.support:
            self.log.info("smtp.rcpt_refused", peer=_peer(session), rcpt=address)
            return f"550 5.1.1 <{address}>: recipient address rejected: not a support address"
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"  # RFC 5321 §4.5.3.1.10
        if address_key(address) not in (address_key(a) for a in envelope.rcpt_tos):
            envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        origin = IntakeEnvelope(
            origin="smtp",
            origin_ref=_peer(session),
            mail_from=envelope.mail_from if envelope.mail_from != "<>" else "",
            rcpt_to=tuple(envelope.rcpt_tos),
        )
        try:
            item = await asyncio.to_thread(prepare_inbound, raw, origin, self.clock())
            stored = await self.writer.store(item)
        except Exception as exc:
            self.log.error("smtp.store_failed", peer=origin.origin_ref, error=str(exc))
            return "451 4.3.0 Requested action aborted: message could not be stored, try again"
        self.log.info(
            "message.stored",
            inbound_id=stored.inbound_id,
            message_id=item.message_id,
            origin="smtp",
            size=len(raw),
            duplicate=stored.duplicate,
        )
        if not stored.duplicate:
            self.on_stored(stored.inbound_id)
        return f"250 2.0.0 Ok: queued as {stored.inbound_id}"


def make_smtp_factory(handler: IntakeHandler, settings: SmtpSettings) -> Callable[[], SMTP]:
    def factory() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,  # RFC 6531: internationalised addresses
            decode_data=False,
            hostname=settings.hostname,  # avoids socket.getfqdn() per connection
            ident="ticket-intake ESMTP",
            timeout=settings.timeout,
        )

    return factory


def _peer(session: Session) -> str:
    peer: Any = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
