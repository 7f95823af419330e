"""Staff actions from the board: close, reopen, assign, an internal note, waive a charge,
set the priority, record a first response given by phone, settle (bill or waive) a
pending charge.

Each is one write transaction through ``store.repository`` (the CLI's functions), recorded
on the ticket with who and when. Every POST carries a CSRF token (OWASP's "signed double
submit cookie"): the browser holds a random id in a SameSite=Strict, HttpOnly cookie and
the form carries HMAC-SHA256(secret, id), the secret kept in the store (``app_secret``) so
every instance on one database accepts the others' forms. A POST whose token does not
match is refused with 403 before anything is read from the store.

"Who" is the logged-in staff account when ``web.auth`` is on (``intake.web.auth`` puts it
on ``request.state.staff``); on an open loopback board it is the name the person types in
the *By* field, remembered in a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from intake.pipeline import staff
from intake.policy.policy import PolicyBook
from store import repository as repo
from store.db import session_scope

Clock = Callable[[], datetime]
BROWSER_COOKIE = "intake_board"
STAFF_COOKIE = "intake_staff"
SECRET_NAME = "board_csrf"  # noqa: S105 - the name of the stored secret, not one
ACTIONS = ("close", "reopen", "assign", "note", "waive", "priority", "phone", "settle")
CONTRACT_ACTIONS = ("priority", "phone", "settle")  # ``_apply_contract``
MAX_FORM = 64 * 1024  # bytes: a note, not an upload
MAX_NAME = 64


def browser_id(request: Request) -> str:
    """The browser's CSRF id: its cookie, or a new one (set on the response by the page)."""
    found = request.cookies.get(BROWSER_COOKIE, "")
    return found if 16 <= len(found) <= 64 and found.isalnum() else secrets.token_hex(16)


def csrf_token(secret: str, browser: str) -> str:
    return hmac.new(secret.encode(), browser.encode(), hashlib.sha256).hexdigest()


def set_browser_cookie(response: Response, browser: str) -> None:
    response.set_cookie(BROWSER_COOKIE, browser, httponly=True, samesite="strict", path="/")


class StoredSecret:
    """A random secret kept in the store (``app_secret``), created by the first instance
    that needs it, so every instance on one database signs and checks alike."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, name: str) -> None:
        self.sessions, self.clock, self.name = sessions, clock, name
        self._value: str | None = None

    def __call__(self) -> str:
        if self._value is None:
            with session_scope(self.sessions, write=True) as session:
                fresh = secrets.token_hex(32)
                self._value = repo.get_or_create_secret(session, self.name, fresh, self.clock())
        return self._value


async def read_form(request: Request) -> tuple[dict[str, str], Response | None]:
    """A small urlencoded form (the first value of each field), or 413."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}, PlainTextResponse("form too large", status_code=413)
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}, None


def csrf_refusal(request: Request, form: dict[str, str], secret: str) -> Response | None:
    """403 unless the form's token is the HMAC of this browser's cookie id."""
    browser = request.cookies.get(BROWSER_COOKIE, "")
    expected = csrf_token(secret, browser)
    if not browser or not hmac.compare_digest(form.get("csrf", ""), expected):
        return PlainTextResponse("CSRF token missing or wrong: reload the page", 403)
    return None


def actor_of(request: Request, form: dict[str, str]) -> str | Response:
    """Who acts: the logged-in account, or on an open loopback board the name typed in the
    form's *By* field; else a 400 asking for it."""
    actor = getattr(request.state, "staff", None) or form.get("by", "").strip()[:MAX_NAME]
    if not isinstance(actor, str) or not actor:
        return PlainTextResponse("say who you are (the 'by' field)", status_code=400)
    return actor


def done_redirect(request: Request, to: str, actor: str) -> Response:
    """303 back to the page; the open board remembers the typed name for the next form."""
    response = RedirectResponse(to, status_code=303)
    if getattr(request.state, "staff", None) is None:
        response.set_cookie(STAFF_COOKIE, quote(actor), samesite="strict", path="/")
    return response


class Actions:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, policies: PolicyBook) -> None:
        self.sessions, self.clock, self.policies = sessions, clock, policies
        self.secret = StoredSecret(sessions, clock, SECRET_NAME)

    async def post(self, request: Request) -> Response:
        number, action = request.path_params["number"], request.path_params["action"]
        form, refused = await self._checked_form(request, action)
        if refused is not None:
            return refused
        actor = actor_of(request, form)
        if isinstance(actor, Response):
            return actor
        try:
            await run_in_threadpool(self._apply, number, action, actor, form)
        except repo.StaffActionError as exc:
            return PlainTextResponse(str(exc), status_code=409)
        except ValueError as exc:  # a malformed field (a charge id that is not a number)
            return PlainTextResponse(str(exc), status_code=400)
        return done_redirect(request, f"/tickets/{quote(number)}", actor)

    async def _checked_form(
        self, request: Request, action: str
    ) -> tuple[dict[str, str], Response | None]:
        """The form, once the action exists, the body is small and the CSRF token holds."""
        if action not in ACTIONS:
            return {}, PlainTextResponse("no such action", status_code=404)
        return await self.checked_form(request)

    async def checked_form(self, request: Request) -> tuple[dict[str, str], Response | None]:
        """A board POST's form once the body is small and the CSRF token holds (every
        board form: the ticket's actions and the operations pages' retries)."""
        form, refused = await read_form(request)
        if refused is None:
            refused = csrf_refusal(request, form, await run_in_threadpool(self.secret))
        return form, refused

    def _apply(self, number: str, action: str, actor: str, form: dict[str, str]) -> None:
        now = self.clock()
        note = form.get("note", "").strip()
        with session_scope(self.sessions, write=True) as session:
            if action in CONTRACT_ACTIONS:
                self._apply_contract(session, number, action, actor, form, now)
            elif action == "close":
                repo.close_ticket(session, number, actor, now)
            elif action == "reopen":
                repo.reopen_ticket(session, number, actor, now)
            elif action == "assign":
                assignee = form.get("assignee", "").strip()[:MAX_NAME] or None
                repo.assign_ticket(session, number, assignee, actor, now)
            elif action == "note":
                if not note:
                    raise ValueError("the note is empty")
                repo.note_ticket(session, number, note, actor, now)
            else:
                if not note:
                    raise ValueError("a waiver needs a note saying why")
                charge = int(form.get("charge", ""))
                repo.waive_ticket_charge(session, number, charge, note, actor, now)

    def _apply_contract(
        self,
        session: Session,
        number: str,
        action: str,
        actor: str,
        form: dict[str, str],
        now: datetime,
    ) -> None:
        """The actions the contract's rules shape (deadlines, the response, a charge)."""
        note = form.get("note", "").strip()
        if action == "priority":
            level = form.get("priority", "").strip()
            if not level.isdigit():
                raise ValueError("choose a priority level")
            staff.set_priority(session, self.policies, number, int(level), actor, now)
        elif action == "phone":
            at = parse_instant(form.get("at", ""))
            staff.record_phone_response(session, number, at, note, actor, now)
        else:
            if not note:
                raise ValueError("settling a charge needs a note saying why")
            charge = int(form.get("charge", ""))
            outcome = form.get("outcome", "")
            repo.settle_ticket_charge(session, number, charge, outcome, note, actor, now)


def parse_instant(text: str) -> datetime | None:
    """A form's time (ISO 8601, as ``<input type="datetime-local">`` sends it): without
    an offset it is UTC, which the form says; empty: None (now)."""
    text = text.strip()
    if not text:
        return None
    when = datetime.fromisoformat(text)  # ValueError: a 400
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
