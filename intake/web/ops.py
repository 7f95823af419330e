"""The board's operations pages: quarantine, outbox, mailboxes and the customer directory.

It owns their view model (``QuarantineRow``, ``HeaderView``, ``OutboxRow``, ``MailboxRow``,
``CustomerRow``: loaded through ``store.repository``, shared with the JSON API in
``intake.web.ops_api``), the pages (``templates/ops_*.html``) and the two writes: a
quarantined message's **Retry** (``repo.requeue_inbound``, as ``intake quarantine retry``;
the daemon's workers process it at their next sweep) and a dead reply's **Retry**
(``repo.retry_outbox``, as ``intake outbox retry``; the daemon's sender delivers it). Both
are POSTs with the board's CSRF token (``intake.web.actions``), logged with the staff name.

A quarantined message is shown by its header section only, never its body: the store gives
the first ``HEAD_BYTES`` of the raw message, the section ends at the first empty line
(RFC 5322 §2.1), and the text shown is capped at ``MAX_HEADER_TEXT`` characters. Mailboxes
are shown by name (``user@host:port/folder``), never with a password.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from intake.pipeline.customers import CustomerRecord, load_directory, normalize_name
from intake.web.actions import actor_of, done_redirect, set_browser_cookie
from intake.web.auth import Endpoint
from parsing import header_section, read_headers
from store import repository as repo
from store.db import session_scope
from store.models import InboundMessage, InboundStatus, MailboxState, OutboxMessage, OutboxStatus

if TYPE_CHECKING:
    from intake.web.board import Board

HEAD_BYTES = 64 * 1024  # read from the store per message: where its header section is
MAX_HEADER_TEXT = 32 * 1024  # characters of header text a page shows
MAX_VALUE = 998  # characters of a subject or sender: RFC 5322 §2.1.1's line limit
# The outbox page's order: what needs a person first (dead, then suppressed), then the rest.
OUTBOX_ORDER = (
    OutboxStatus.DEAD,
    OutboxStatus.SUPPRESSED,
    OutboxStatus.QUEUED,
    OutboxStatus.SENDING,
    OutboxStatus.SENT,
)
_RETRYABLE = {"quarantine": "a quarantined message", "outbox": "a dead reply"}


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    id: int
    message_id: str
    received_at: datetime
    origin: str
    origin_ref: str | None
    attempts: int
    error: str | None
    size: int
    sender: str  # the From header as text (else the envelope sender)
    subject: str


@dataclass(frozen=True, slots=True)
class HeaderView:
    text: str  # the raw header section, decoded as UTF-8 (RFC 6532), never the body
    truncated: bool  # longer than the page shows


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    status: str
    kind: str
    recipients: tuple[str, ...]
    attempts: int
    last_error: str | None  # a suppressed reply: whom it spared and why
    ticket: str | None  # the ticket's number
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    retryable: bool  # dead: the page offers Retry


@dataclass(frozen=True, slots=True)
class OutboxPage:
    rows: tuple[OutboxRow, ...]
    status: str  # the filter: "" for all
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class MailboxRow:
    name: str  # user@host:port/folder: no password
    configured: bool  # listed in this instance's imap.mailboxes
    state: str  # ok | failing | unknown (never polled yet)
    last_ok_at: datetime | None
    failing_since: datetime | None
    last_error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    uidvalidity: int | None


@dataclass(frozen=True, slots=True)
class CustomerRow:
    name: str
    aliases: tuple[str, ...]
    domains: tuple[str, ...]
    support_id: str | None
    policy: str | None  # None: the configured default
    timezone: str | None
    authorized_contacts: tuple[str, ...]
    subscription_expires: str | None  # ISO date


# --------------------------------------------------------------------------- view model


def header_view(head: bytes, size: int) -> HeaderView:
    whole = header_section(head)
    section = whole.rstrip(b"\r\n")  # shown without the empty line that ends it
    text = section.decode("utf-8", "replace")
    unfinished = len(whole) == len(head) and size > len(head)  # cut by HEAD_BYTES
    return HeaderView(text[:MAX_HEADER_TEXT], unfinished or len(text) > MAX_HEADER_TEXT)


def quarantine_row(row: InboundMessage, head: bytes) -> QuarantineRow:
    headers = dict(reversed(read_headers(header_section(head))))  # the first of each wins
    return QuarantineRow(
        id=row.id,
        message_id=row.message_id,
        received_at=row.received_at,
        origin=row.origin,
        origin_ref=row.origin_ref,
        attempts=row.attempts,
        error=row.last_error,
        size=row.size,
        sender=(headers.get("from") or row.envelope_from or "")[:MAX_VALUE],
        subject=headers.get("subject", "")[:MAX_VALUE],
    )


def load_quarantine(session: Session, limit: int = 100) -> list[QuarantineRow]:
    """The oldest ``limit`` quarantined messages (``intake quarantine list``'s rows)."""
    heads = repo.list_inbound_heads(session, InboundStatus.QUARANTINED, HEAD_BYTES, limit)
    return [quarantine_row(row, head) for row, head in heads]


def load_headers(session: Session, inbound_id: int) -> tuple[QuarantineRow, HeaderView] | None:
    found = repo.inbound_head(session, inbound_id, HEAD_BYTES)
    if found is None or found[0].status != InboundStatus.QUARANTINED:
        return None
    row, head = found
    return quarantine_row(row, head), header_view(head, row.size)


def outbox_row(row: OutboxMessage, numbers: dict[int, str]) -> OutboxRow:
    return OutboxRow(
        id=row.id,
        status=row.status,
        kind=row.kind,
        recipients=tuple(row.recipients),
        attempts=row.attempts,
        last_error=row.last_error,
        ticket=numbers.get(row.ticket_id) if row.ticket_id is not None else None,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at if row.status == OutboxStatus.QUEUED else None,
        sent_at=row.sent_at,
        retryable=row.status == OutboxStatus.DEAD,
    )


def outbox_status(query: str) -> str:
    """The filter from the query string: a known status, else "" (all)."""
    return query if query in set(OUTBOX_ORDER) else ""


def load_outbox(session: Session, status: str, limit: int = 100) -> OutboxPage:
    """The newest ``limit`` replies of each status, in ``OUTBOX_ORDER``."""
    chosen = [OutboxStatus(status)] if status else list(OUTBOX_ORDER)
    rows = [r for s in chosen for r in repo.list_outbox(session, s, limit)]
    numbers = repo.ticket_numbers(session, [r.ticket_id for r in rows if r.ticket_id])
    counts = repo.count_outbox_by_status(session)
    if "failed" in counts:  # queued after a failed attempt: still queued on this page
        counts[OutboxStatus.QUEUED] = counts.get(OutboxStatus.QUEUED, 0) + counts.pop("failed")
    return OutboxPage(tuple(outbox_row(r, numbers) for r in rows), status, counts)


def mailbox_row(name: str, state: MailboxState | None, configured: bool) -> MailboxRow:
    if state is None:
        return MailboxRow(name, configured, "unknown", None, None, None, None, None, None)
    health = "failing" if state.failing_since else ("ok" if state.last_ok_at else "unknown")
    return MailboxRow(
        name=name,
        configured=configured,
        state=health,
        last_ok_at=state.last_ok_at,
        failing_since=state.failing_since,
        last_error=state.last_error,
        lease_owner=state.lease_owner,
        lease_expires_at=state.lease_expires_at,
        uidvalidity=state.uidvalidity,
    )


def load_mailboxes(session: Session, configured: Sequence[str]) -> list[MailboxRow]:
    """This instance's mailboxes first (in config order), then any other the store has a
    state for (polled by another instance on the same database, or no longer listed)."""
    states = {s.name: s for s in repo.list_mailbox_states(session)}
    rows = [mailbox_row(name, states.get(name), True) for name in configured]
    rows += [mailbox_row(n, s, False) for n, s in states.items() if n not in set(configured)]
    return rows


def customer_matches(record: CustomerRecord, wanted: str) -> bool:
    """Whether the filter text finds the customer, compared as the directory compares:
    names and aliases by ``normalize_name`` (case, punctuation and legal suffixes ignored;
    part of a name is enough, so "acme" finds "Acme Corp"), the support ID and the
    domains case-insensitively."""
    key, folded = normalize_name(wanted), wanted.strip().casefold()
    if not folded:
        return True
    names = (record.name, *record.aliases)
    return (
        any(key in normalize_name(name) for name in names)
        or (record.support_id or "").casefold() == folded
        or any(folded == d or d.endswith("." + folded) for d in record.domains)
    )


def customer_row(record: CustomerRecord) -> CustomerRow:
    expires = record.subscription_expires
    return CustomerRow(
        name=record.name,
        aliases=record.aliases,
        domains=record.domains,
        support_id=record.support_id,
        policy=record.policy,
        timezone=record.timezone,
        authorized_contacts=record.authorized_contacts,
        subscription_expires=expires.isoformat() if expires else None,
    )


def load_customers(session: Session, wanted: str) -> list[CustomerRow]:
    found = [r for r in load_directory(session) if customer_matches(r, wanted)]
    return [customer_row(r) for r in sorted(found, key=lambda r: normalize_name(r.name))]


# --------------------------------------------------------------------------- HTTP


class Ops:
    """The operations pages' routes, over the board's store, templates and CSRF secret."""

    def __init__(self, board: Board, mailboxes: Sequence[str]) -> None:
        self.board, self.mailboxes = board, tuple(mailboxes)

    def routes(self, gate: Callable[[Endpoint], Endpoint]) -> list[BaseRoute]:
        """Every page and retry behind the board's login ``gate`` (open on loopback)."""
        return [
            Route("/ops/quarantine", gate(self.quarantine), methods=["GET"]),
            Route("/ops/quarantine/{id:int}", gate(self.headers), methods=["GET"]),
            Route("/ops/quarantine/{id:int}/retry", gate(self.retry_inbound), methods=["POST"]),
            Route("/ops/outbox", gate(self.outbox), methods=["GET"]),
            Route("/ops/outbox/{id:int}/retry", gate(self.retry_reply), methods=["POST"]),
            Route("/ops/mailboxes", gate(self.mailbox_states), methods=["GET"]),
            Route("/ops/customers", gate(self.customers), methods=["GET"]),
        ]

    def _render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page with the nav, who is looking and a CSRF token for its forms."""
        who = self.board.who(request)
        browser = who.pop("browser")
        html = self.board.env.get_template(template).render(
            **who,
            current=template.removeprefix("ops_").removesuffix(".html"),
            now=self.board.clock(),
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        set_browser_cookie(response, browser)
        return response

    def quarantine(self, request: Request) -> HTMLResponse:
        with session_scope(self.board.sessions) as session:
            rows = load_quarantine(session)
            total = repo.count_inbound_by_status(session).get(InboundStatus.QUARANTINED, 0)
        return self._render(request, "ops_quarantine.html", rows=rows, total=total)

    def headers(self, request: Request) -> HTMLResponse:
        inbound_id: int = request.path_params["id"]
        with session_scope(self.board.sessions) as session:
            found = load_headers(session, inbound_id)
        if found is None:
            return self._render(request, "ops_missing.html", 404, what=f"message {inbound_id}")
        row, view = found
        return self._render(request, "ops_headers.html", row=row, view=view)

    def outbox(self, request: Request) -> HTMLResponse:
        status = outbox_status(request.query_params.get("status", ""))
        with session_scope(self.board.sessions) as session:
            page = load_outbox(session, status)
        return self._render(request, "ops_outbox.html", page=page, statuses=OUTBOX_ORDER)

    def mailbox_states(self, request: Request) -> HTMLResponse:
        with session_scope(self.board.sessions) as session:
            rows = load_mailboxes(session, self.mailboxes)
        return self._render(request, "ops_mailboxes.html", rows=rows)

    def customers(self, request: Request) -> HTMLResponse:
        wanted = request.query_params.get("q", "").strip()[:256]
        with session_scope(self.board.sessions) as session:
            rows = load_customers(session, wanted)
        return self._render(request, "ops_customers.html", rows=rows, wanted=wanted)

    async def retry_inbound(self, request: Request) -> Response:
        """``intake quarantine retry`` from the page: a fresh set of attempts."""
        return await self._retry(request, "quarantine", self._requeue)

    async def retry_reply(self, request: Request) -> Response:
        """``intake outbox retry`` from the page, for a dead reply."""
        return await self._retry(request, "outbox", self._requeue_reply)

    async def _retry(self, request: Request, page: str, write: Callable[[int], bool]) -> Response:
        form, refused = await self.board.actions.checked_form(request)
        if refused is not None:
            return refused
        actor = actor_of(request, form)
        if isinstance(actor, Response):
            return actor
        target: int = request.path_params["id"]
        done: bool = await run_in_threadpool(write, target)
        structlog.get_logger("intake.board").info(
            f"board.{page}_retry", id=target, by=actor, outcome="queued" if done else "refused"
        )
        if not done:
            return PlainTextResponse(f"{target} is not {_RETRYABLE[page]}", status_code=409)
        return done_redirect(request, f"/ops/{page}", actor)

    def _requeue(self, inbound_id: int) -> bool:
        with session_scope(self.board.sessions, write=True) as session:
            found = repo.get_inbound(session, inbound_id)
            if found is None or found.status != InboundStatus.QUARANTINED:
                return False  # a failed one retries by itself; the page lists quarantine
            return repo.requeue_inbound(session, inbound_id)

    def _requeue_reply(self, outbox_id: int) -> bool:
        with session_scope(self.board.sessions, write=True) as session:
            found = repo.get_outbox(session, outbox_id)
            if found is None or found.status != OutboxStatus.DEAD:
                return False  # a suppressed reply stays unsent: the budget decided
            return repo.retry_outbox(session, outbox_id, self.board.clock())
