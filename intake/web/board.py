"""The NOC board's queue: open tickets by their next deadline, filtered, paged, live.

It owns the queue's view model (``QueueRow``: every number comes from the ticket row and
its policy, nothing from the mail again), the page's filters, the server-rendered pages
(jinja2, autoescaped: a subject is text, never markup), and the event stream that tells
open pages the queue changed. On PostgreSQL every write the board shows sends
``NOTIFY intake_board`` and one LISTEN connection per process wakes the open streams at
once (``store.notify``), whichever instance wrote; on SQLite, and on PostgreSQL while that
connection is down, the streams poll the store's ``board_version`` (four aggregate reads
per open page and interval). The browser runs one static script (``static/board.js``: the
countdowns and the refresh on each event); the CSP forbids any inline one.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlencode

import jinja2
import structlog
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from intake.pipeline.customers import CustomerRecord, load_directory, normalize_name
from intake.policy.policy import PolicyBook
from intake.settings import WebAuthSettings
from intake.web import ticket as ticket_page
from intake.web.actions import (
    STAFF_COOKIE,
    Actions,
    browser_id,
    csrf_token,
    set_browser_cookie,
)
from intake.web.auth import Endpoint, Login
from intake.web.staff import StaffAccounts
from store import repository as repo
from store.db import session_scope
from store.models import ChargeRow, Ticket, TicketStatus
from store.notify import BoardChanges

Clock = Callable[[], datetime]
State = Literal["breached", "soon", "ok", "none"]
HERE = Path(__file__).parent
PAGE_SIZE = 50
SOON = timedelta(hours=1)  # "due within the hour": amber
KEEPALIVE = 15.0  # seconds of a quiet stream before a comment keeps proxies from closing it
COALESCE = 0.25  # seconds after a "changed" in which more writes make no second one
QUEUE_STATUSES = (TicketStatus.OPEN, TicketStatus.WAITING_CUSTOMER)
STATUS_CHOICES = {"queue": QUEUE_STATUSES, **{s.value: (s,) for s in TicketStatus}}


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """The queue page's query string, validated: unknown values fall back to the default."""

    status: str = "queue"  # "queue": open and waiting on the customer
    priority: int | None = None
    customer: str = ""
    policy: str = ""
    breached: bool = False
    assignee: str = ""  # the board's "assigned to me" link fills in the staff name
    q: str = ""  # free text: every word (or "quoted phrase") in the subject or the mail
    page: int = 1

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> QueueFilter:
        status = query.get("status", "queue")
        priority = query.get("priority", "")
        page = query.get("page", "1")
        return cls(
            status=status if status in STATUS_CHOICES else "queue",
            priority=int(priority) if priority.isdigit() else None,
            customer=query.get("customer", "").strip()[:256],
            policy=query.get("policy", "").strip()[:64],
            breached=query.get("breached", "") in {"1", "on", "true"},
            assignee=query.get("assignee", "").strip()[:64],
            q=query.get("q", "").strip()[:256],
            page=max(1, int(page)) if page.isdigit() else 1,
        )

    def query(self, **changes: Any) -> str:
        """This filter as a query string, with ``changes`` (the pager's links)."""
        chosen = replace(self, **changes)
        pairs = {
            "status": chosen.status if chosen.status != "queue" else "",
            "priority": "" if chosen.priority is None else str(chosen.priority),
            "customer": chosen.customer,
            "policy": chosen.policy,
            "breached": "1" if chosen.breached else "",
            "assignee": chosen.assignee,
            "q": chosen.q,
            "page": str(chosen.page) if chosen.page > 1 else "",
        }
        return urlencode({k: v for k, v in pairs.items() if v})


@dataclass(frozen=True, slots=True)
class QueueRow:
    number: str
    subject: str
    status: str
    customer: str | None
    location: str | None
    issue: str | None
    priority: int
    priority_name: str
    priority_meaning: str
    policy: str
    missing_fields: tuple[str, ...]
    charges: tuple[str, ...]  # "150.00 USD pending", one per line of the ledger
    assignee: str | None
    deadline_name: str | None  # the next deadline: "response" until answered
    due: datetime | None
    state: State
    breached: bool  # the response target was missed (or the next deadline passed)


@dataclass(frozen=True, slots=True)
class QueuePage:
    rows: tuple[QueueRow, ...]
    total: int
    page: int
    pages: int


def next_deadline(ticket: Ticket) -> tuple[str | None, datetime | None]:
    """The deadline the NOC works to now: the response until the first response is given,
    then the earliest of the contract's other deadlines (resolution, restoration, ...)."""
    if ticket.first_response_at is None and ticket.response_due_at is not None:
        return "response", ticket.response_due_at
    others = [
        (datetime.fromisoformat(value), name)
        for name, value in (ticket.deadlines or {}).items()
        if name != "response" and isinstance(value, str)
    ]
    if not others:
        return None, None
    due, name = min(others)
    return name, due


def deadline_state(due: datetime | None, now: datetime, response_missed: bool) -> State:
    if response_missed or (due is not None and due <= now):
        return "breached"
    if due is None:
        return "none"
    return "soon" if due - now <= SOON else "ok"


def response_missed(ticket: Ticket, now: datetime) -> bool:
    """No first response by the response deadline (the contract's breach)."""
    due = ticket.response_due_at
    if due is None:
        return False
    answered = ticket.first_response_at
    return answered > due if answered else now > due


def charge_lines(charges: Sequence[ChargeRow]) -> tuple[str, ...]:
    return tuple(
        f"{Decimal(c.amount):.2f} {c.currency} {c.kind} {c.status}"
        for c in sorted(charges, key=lambda c: c.id)
    )


def queue_row(ticket: Ticket, policies: PolicyBook, now: datetime) -> QueueRow:
    policy = policies.by_name(ticket.policy_name)
    level = next((p for p in policy.priorities if p.level == ticket.priority), None)
    name, due = next_deadline(ticket)
    missed = response_missed(ticket, now)
    state = deadline_state(due, now, missed)
    return QueueRow(
        number=ticket.number or f"#{ticket.id}",
        subject=ticket.subject,
        status=ticket.status,
        customer=ticket.customer,
        location=ticket.location,
        issue=ticket.issue,
        priority=ticket.priority,
        priority_name=level.name if level else f"P{ticket.priority}",
        priority_meaning=level.definition if level else "",
        policy=f"{ticket.policy_name} {ticket.policy_version}",
        missing_fields=tuple(ticket.missing_fields or ()),
        charges=charge_lines(ticket.charges),
        assignee=ticket.assignee,
        deadline_name=name,
        due=due,
        state=state,
        breached=state == "breached",
    )


def matching_customers(
    wanted: str, stored: Sequence[str], directory: Sequence[CustomerRecord]
) -> list[str]:
    """The stored customer names ``wanted`` means, compared as the directory compares
    names (``normalize_name``: "Acme" finds "Acme Corp"), or naming a directory
    customer by one of its aliases or its support ID."""
    key = normalize_name(wanted)
    folded = wanted.strip().casefold()
    aliased = {
        normalize_name(c.name)
        for c in directory
        if key in {normalize_name(a) for a in c.aliases}
        or (c.support_id is not None and c.support_id.casefold() == folded)
    }
    return [name for name in stored if normalize_name(name) in {key, *aliased}]


def customer_names(session: Session, wanted: str) -> list[str]:
    """The customer names on stored tickets that ``wanted`` means (the board, the CLI)."""
    stored = repo.ticket_customer_names(session)
    return matching_customers(wanted, stored, load_directory(session))


def load_queue(
    session: Session, policies: PolicyBook, wanted: QueueFilter, now: datetime
) -> QueuePage:
    customers = customer_names(session, wanted.customer) if wanted.customer else None
    tickets = repo.queue_tickets(
        session,
        statuses=STATUS_CHOICES[wanted.status],
        priority=wanted.priority,
        customers=customers,
        policy=wanted.policy or None,
        assignee=wanted.assignee or None,
        search=wanted.q or None,
    )
    rows = [queue_row(t, policies, now) for t in tickets]
    if wanted.breached:
        rows = [r for r in rows if r.breached]
    rows.sort(key=sort_key)
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    page = min(wanted.page, pages)
    chosen = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return QueuePage(tuple(chosen), len(rows), page, pages)


def sort_key(row: QueueRow) -> tuple[bool, float, int, str]:
    """Soonest deadline first (the most overdue leads), no deadline last, then priority."""
    due = row.due.timestamp() if row.due is not None else math.inf
    return (row.due is None, due, row.priority, row.number)


# --------------------------------------------------------------------------- HTTP


def _open(endpoint: Endpoint) -> Endpoint:
    """No gate: the open board on loopback (``web.auth`` unset)."""
    return endpoint


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is text; nothing a customer wrote becomes markup
        undefined=jinja2.StrictUndefined,
    )
    env.filters["iso"] = _iso
    env.filters["countdown"] = lambda due, now: countdown(due - now) if due else "no deadline"
    return env


def countdown(left: timedelta) -> str:
    """``2h 05m``, ``in 4m``-style text the script keeps ticking; negative: overdue."""
    seconds = int(left.total_seconds())
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d {hours:02d}h"
    elif hours:
        text = f"{hours}h {minutes:02d}m"
    else:
        text = f"{minutes}m {secs:02d}s"
    return f"overdue {text}" if sign else text


def _iso(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ""


class Board:
    """The board's routes over one store; ``close`` ends every open event stream (the
    daemon's stop would otherwise wait on them: a stream never completes by itself)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        policies: PolicyBook,
        clock: Clock,
        poll_interval: float = 0.5,
        api_token: SecretStr | None = None,
        mailboxes: Sequence[str] = (),
        auth: WebAuthSettings | None = None,
        changes: BoardChanges | None = None,
    ) -> None:
        self.sessions, self.policies, self.clock = sessions, policies, clock
        self.mailboxes = tuple(mailboxes)  # imap.mailboxes' names, for the operations pages
        self.api_token = api_token
        self.poll_interval = poll_interval
        self.changes = changes or BoardChanges()  # no listener given: the streams poll
        self.env = templates()
        self.actions = Actions(sessions, clock, policies)
        self.login = self._login(auth) if auth is not None and auth.enabled else None
        self._generation = 0  # bumped by close: streams of an earlier generation end

    def _login(self, auth: WebAuthSettings) -> Login:
        """The login gate; ConfigError now when the users file is malformed."""
        accounts = StaffAccounts(auth)
        if not accounts.users():  # closed, not open: nobody gets in until one is added
            structlog.get_logger("intake.web").warning(
                "web.auth.no_accounts", users_file=str(auth.users_file)
            )
        return Login(auth, accounts, self.sessions, self.clock, self.env, self.actions.secret)

    def close(self) -> None:
        """End the streams open now (the server stops; a restarted one serves new ones)."""
        self._generation += 1
        self.changes.wake()  # a stream waiting for a notice ends now, not at its timeout

    def routes(self) -> list[BaseRoute]:
        from intake.web.api import Api  # it reuses this module's view model
        from intake.web.ops import Ops
        from intake.web.ops_api import OpsApi

        gate = self.login.guard if self.login is not None else _open
        return [
            Route("/", gate(self.queue), methods=["GET"]),
            Route("/queue/rows", gate(self.queue_rows), methods=["GET"]),
            Route("/tickets/{number}", gate(self.ticket), methods=["GET"]),
            Route("/tickets/{number}/body", gate(self.ticket_body), methods=["GET"]),
            Route("/tickets/{number}/{action}", gate(self.actions.post), methods=["POST"]),
            Route("/events", gate(self.events), methods=["GET"]),
            *(self.login.routes() if self.login is not None else []),
            # The API has its own credential (web.api_token); the styles serve the login.
            *Api(self.sessions, self.policies, self.clock, self.api_token).routes(),
            *Ops(self, self.mailboxes).routes(gate),
            *OpsApi(
                self.sessions, self.policies, self.clock, self.api_token, self.mailboxes
            ).routes(),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

    def who(self, request: Request) -> dict[str, Any]:
        """Who is looking: the logged-in account (``user``; None on an open board) and the
        name the forms and "assigned to me" use (``staff``), with the CSRF token the
        header's logout form needs."""
        user: str | None = getattr(request.state, "staff", None)
        typed = unquote(request.cookies.get(STAFF_COOKIE, ""))
        browser = browser_id(request)
        return {
            "user": user,
            "staff": user or typed,
            "browser": browser,
            "csrf": csrf_token(self.actions.secret(), browser),
        }

    def _context(self, request: Request) -> dict[str, Any]:
        wanted = QueueFilter.from_query(request.query_params)
        now = self.clock()
        with session_scope(self.sessions) as session:
            page = load_queue(session, self.policies, wanted, now)
            policies = repo.ticket_policy_names(session)
        return {
            "page": page,
            "wanted": wanted,
            "now": now,
            "statuses": list(STATUS_CHOICES),
            "policies": policies,
            **self.who(request),
        }

    def queue(self, request: Request) -> HTMLResponse:
        context = self._context(request)
        response = HTMLResponse(self.env.get_template("queue.html").render(context))
        set_browser_cookie(response, context["browser"])
        return response

    def queue_rows(self, request: Request) -> HTMLResponse:
        """The queue's table body and pager alone: what the script swaps in on a change."""
        html = self.env.get_template("rows.html").render(self._context(request))
        return HTMLResponse(html)

    def _render_ticket(self, request: Request, template: str) -> HTMLResponse:
        """Rendered inside the read transaction: the template reads the ticket's rows."""
        number = request.path_params["number"]
        now = self.clock()
        who = self.who(request)
        with session_scope(self.sessions) as session:
            ticket = repo.ticket_by_number(session, number)
            if ticket is None:
                return self._not_found(request, who)
            html = self.env.get_template(template).render(
                **who,
                events=repo.ticket_events(session, ticket.id),
                ticket=ticket,
                row=queue_row(ticket, self.policies, now),
                thread=ticket_page.thread(session, ticket),
                deadlines=ticket_page.deadlines(ticket),
                ledger=ticket_page.ledger(ticket.charges),
                now=now,
                **self._contract_context(session, ticket),
            )
        response = HTMLResponse(html)
        set_browser_cookie(response, who["browser"])
        return response

    def _contract_context(self, session: Session, ticket: Ticket) -> dict[str, Any]:
        """What the ticket's policy says about it: its levels, this one, the fields read."""
        policy = self.policies.by_name(ticket.policy_name)
        inbound = repo.inbound_for_ticket(session, ticket.id)
        return {
            "priorities": policy.priorities,
            "level": policy.priority(ticket.priority),
            "fields": ticket_page.fields_read(ticket, policy, inbound),
        }

    def ticket(self, request: Request) -> HTMLResponse:
        return self._render_ticket(request, "ticket.html")

    def ticket_body(self, request: Request) -> HTMLResponse:
        """The ticket page without its frame: what the script swaps in on a change."""
        return self._render_ticket(request, "ticket_body.html")

    def _not_found(self, request: Request, who: dict[str, Any]) -> HTMLResponse:
        template = self.env.get_template("missing.html")
        html = template.render(number=request.path_params["number"], **who)
        return HTMLResponse(html, status_code=404)

    async def events(self, request: Request) -> Response:
        return StreamingResponse(
            self._stream(request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, request: Request) -> AsyncIterator[str]:
        """Server-sent events (WHATWG HTML §9.2): ``changed`` when the board may show
        something new, a comment after 15 s of quiet to keep proxies from timing it out.

        While this process listens (PostgreSQL, ``store.notify``), a notice wakes the
        stream at once and nothing is polled; otherwise (SQLite, or the LISTEN connection
        lost) it polls the store's board version every ``poll_interval``. The comments
        ``: listening`` and ``: polling`` say which, whenever that changes.
        """
        generation = self._generation
        yield "retry: 1000\n\n"
        last = await run_in_threadpool(self._version)
        seen, mode = self.changes.wakes, None
        clock = asyncio.get_running_loop().time
        spoke = clock()
        while generation == self._generation and not await request.is_disconnected():
            listening = self.changes.listening
            if listening != mode:  # a comment (EventSource ignores it) for who watches
                mode, spoke = listening, clock()
                yield ": listening\n\n" if listening else ": polling\n\n"
            woken = await self.changes.wait(seen, KEEPALIVE if listening else self.poll_interval)
            if generation != self._generation:
                break
            changed, seen = woken != seen, woken
            if not changed and not listening:
                try:
                    version = await run_in_threadpool(self._version)
                except Exception:  # noqa: S112 - the store is down: the readiness check says so; retry
                    continue
                changed, last = version != last, version
            if changed:
                spoke = clock()
                yield "event: changed\ndata: {}\n\n"
                await asyncio.sleep(COALESCE)  # a burst of writes: one refresh, not one each
            elif clock() - spoke >= KEEPALIVE:
                spoke = clock()
                yield ": keep-alive\n\n"

    def _version(self) -> tuple[Any, ...]:
        with session_scope(self.sessions) as session:
            return repo.board_version(session)
