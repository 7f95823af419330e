"""The one enqueue path: every automatic mail we send enters the outbox here, and only here.

Confirmations, acknowledgements and ticket notices (auto-close) all get the same four
things, inside the caller's transaction (COMMIT 2, or the auto-closer's own):

1. a stable Message-ID carrying an HMAC token (``replies/tokens.py``), so any answer to
   it threads onto its ticket, and a retry after a crash renders the very same id;
2. the per-recipient budget and bounce suppression (``replies/budget.py``; RFC 3834 §2:
   an automatic responder must not answer one address without limit), and for a
   confirmation the reflection caps per sending IP and From domain
   (``replies/reflection.py``: how many distinct addresses one source makes us write to);
3. when someone is left out, the record of why: returned in ``Enqueued.suppressed`` for
   the caller's change record (the inbound message's changes, what ``intake tickets show``
   prints; ``pipeline/changes.py`` writes it), on the outbox row (status ``suppressed`` with the
   reasons, what ``intake outbox list`` prints) and one ``outbox.suppressed`` log line;
4. the outbox row itself, through ``repository.enqueue_reply`` (one reply of a kind per
   inbound message, recipients indexed for the budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import structlog
from sqlalchemy.orm import Session

from intake.replies.budget import BudgetDecision, BudgetSettings, check_budget
from intake.replies.reflection import ReflectionSettings, Source, check_reflection
from intake.replies.render import RenderedReply, Sender
from intake.replies.tokens import make_message_id
from store import repository as repo
from store.models import OutboxMessage, OutboxStatus

_NONCE_LENGTH = 20  # characters of the inbound idempotency key (hex) in our Message-IDs


class ReplyKind(StrEnum):
    """What an outbox row is; the value is stored in ``outbox.kind``."""

    CONFIRMATION = "confirmation"
    ACKNOWLEDGEMENT = "acknowledgement"
    AUTO_CLOSE = "auto_close"
    FLOOD_NOTICE = "flood_notice"  # to staff: a sender is past its inbound flood limit

    @property
    def token(self) -> str:
        """The kind as it appears inside our Message-IDs (unchanged since 0.1.0)."""
        return _TOKEN_KINDS[self]


_TOKEN_KINDS = {
    ReplyKind.CONFIRMATION: "confirmation",
    ReplyKind.ACKNOWLEDGEMENT: "ack",
    ReplyKind.AUTO_CLOSE: "auto-close",
    ReplyKind.FLOOD_NOTICE: "flood",
}


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What ``Outbox.enqueue`` did with one rendered mail."""

    message_id: str
    added: bool  # False: a reply of this kind already answers that inbound message
    suppressed: Mapping[str, str]  # address -> why it gets nothing (empty: all allowed)
    reflection: str | None = None  # "ip" / "domain": a reflection cap suppressed someone


@dataclass(frozen=True, slots=True)
class Outbox:
    """Our side (sender, HMAC secret) and the budget: enough to queue any automatic mail."""

    sender: Sender
    secret: bytes
    budget: BudgetSettings
    reflection: ReflectionSettings = field(default_factory=ReflectionSettings)

    def reply_id(self, number: str, kind: ReplyKind, inbound_key: str) -> str:
        """The Message-ID of an answer to one inbound message: stable per message."""
        return self._message_id(number, kind, inbound_key[:_NONCE_LENGTH])

    def notice_id(self, number: str, kind: ReplyKind, since: datetime) -> str:
        """The Message-ID of a notice about a ticket: stable per ticket, kind and ``since``.

        ``since`` is when the state the notice ends began (e.g. ``waiting_since`` for an
        auto-close), never the clock: the auto-closer retried after a crash sends the
        same id, and a later wait on the same ticket gets a new one.
        """
        return self._message_id(number, kind, f"{since:%Y%m%d%H%M%S}")

    def _message_id(self, number: str, kind: ReplyKind, nonce: str) -> str:
        return make_message_id(self.secret, number, kind.token, nonce, self.sender.domain)

    def enqueue(
        self,
        session: Session,
        mail: RenderedReply,
        kind: ReplyKind,
        *,
        ticket_id: int,
        now: datetime,
        inbound_id: int | None = None,
        source: Source | None = None,
    ) -> Enqueued:
        """Queue ``mail`` within the per-recipient budget (RFC 3834 §2) and, given the
        ``source`` of the mail it answers (the inbound row ``inbound_id``), the
        reflection caps; never commits."""
        answering = inbound_id
        budget = check_budget(
            session, mail.recipients, now, self.budget, inbound_message_id=answering
        )
        scope = None
        if source is not None and budget.allowed:
            capped = check_reflection(session, budget.allowed, source, now, self.reflection)
            budget = BudgetDecision(capped.allowed, {**budget.suppressed, **capped.suppressed})
            scope = capped.scope
        if budget.suppressed:
            _log_suppression(kind, ticket_id, budget, scope)
        added = repo.enqueue_reply(
            session, self._row(mail, kind, ticket_id, answering, budget, now)
        )
        return Enqueued(mail.message_id, added, dict(budget.suppressed), scope)

    def _row(
        self,
        mail: RenderedReply,
        kind: ReplyKind,
        ticket_id: int,
        inbound_id: int | None,
        budget: BudgetDecision,
        now: datetime,
    ) -> OutboxMessage:
        # A fully suppressed row keeps its intended recipients: it shows whom we spared.
        return OutboxMessage(
            message_id=mail.message_id,
            kind=kind.value,
            ticket_id=ticket_id,
            inbound_message_id=inbound_id,
            sender=self.sender.address,
            recipients=list(budget.allowed or mail.recipients),
            raw=mail.raw,
            status=OutboxStatus.QUEUED if budget.allowed else OutboxStatus.SUPPRESSED,
            attempts=0,
            next_attempt_at=now,
            last_error="; ".join(f"{a}: {r}" for a, r in budget.suppressed.items()) or None,
            created_at=now,
        )


def _log_suppression(
    kind: ReplyKind, ticket_id: int, budget: BudgetDecision, reflection: str | None
) -> None:
    """The log line; the thread shows it through ``Enqueued.suppressed``, which the pipeline
    writes into the inbound row's change record (``pipeline/changes.py``, the one place).
    ``reflection`` names the reflection cap ("ip", "domain") when one was the reason."""
    structlog.get_logger("intake.outbox").warning(
        "outbox.suppressed",
        kind=kind.value,
        ticket_id=ticket_id,
        reasons=budget.suppressed,
        reflection=reflection,
    )
