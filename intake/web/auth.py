"""The board's login: the session cookie, the login and logout pages, the rate limit, the gate.

On when ``web.auth`` names accounts (``intake.web.staff``); an open loopback board never
builds it. A session is a signed, timestamped cookie (itsdangerous ``URLSafeTimedSerializer``,
HMAC-SHA256 over a key derived from a secret kept in the store, ``app_secret``
``board_session``, so every instance on one database accepts the others' cookies). It holds
the staff name and a digest of the account's hash, so changing or removing the account ends
its sessions; it is ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the request came over
https (RFC 6265 §4.1.2.5), and expires after ``web.auth.session_hours``.

Failed logins are counted per account and per client IP in a rolling window (OWASP
Authentication Cheat Sheet, "Login Throttling"); past ``max_failures`` the login answers 429
with Retry-After (RFC 6585 §4) until the oldest failure leaves the window. The counts live
in this process: each instance counts its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import structlog
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from intake.settings import WebAuthSettings
from intake.web.actions import (
    StoredSecret,
    browser_id,
    csrf_refusal,
    csrf_token,
    read_form,
    set_browser_cookie,
)
from intake.web.staff import StaffAccounts

Clock = Callable[[], datetime]
Endpoint = Callable[[Request], Any]
SESSION_COOKIE = "intake_session"
SESSION_SECRET = "board_session"  # noqa: S105 - the name of the stored secret, not one
SESSION_SALT = "intake.board.session"  # itsdangerous derives the signing key per purpose
MAX_KEYS = 10_000  # distinct names and IPs tracked: a spray of junk names stays bounded
VERIFYING_AT_ONCE = 2  # argon2 takes 64 MiB and a core each: a login flood cannot take more
log = structlog.get_logger("intake.web")


class LoginLimiter:
    """Failures per key (``user:NAME``, ``ip:ADDRESS``) in a rolling window."""

    def __init__(self, max_failures: int, window: timedelta, clock: Clock) -> None:
        self.max_failures, self.window, self.clock = max_failures, window, clock
        self._failures: dict[str, deque[datetime]] = {}

    def retry_after(self, keys: Iterable[str]) -> int | None:
        """Seconds until every key may try again; None when all may now."""
        now = self.clock()
        waits = [self._wait(key, now) for key in keys]
        longest = max((w for w in waits if w is not None), default=None)
        return None if longest is None else max(1, math.ceil(longest))

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        if len(self._failures) >= MAX_KEYS:
            self._prune(now)
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def forgive(self, key: str) -> None:
        """A correct password clears its account's count (never the IP's: one known
        password must not reset the count of guesses at the others)."""
        self._failures.pop(key, None)

    def _wait(self, key: str, now: datetime) -> float | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        if len(times) < self.max_failures:
            return None
        return (times[-self.max_failures] + self.window - now).total_seconds()

    def _prune(self, now: datetime) -> None:
        for key in list(self._failures):
            self._wait(key, now)
        while len(self._failures) >= MAX_KEYS:  # still full: forget the oldest keys
            del self._failures[next(iter(self._failures))]


def local_path(value: str) -> str:
    """``next`` only ever names a page of this board: never another host (an open redirect,
    OWASP "Unvalidated Redirects"), never a scheme, never ``//host`` or a backslash form."""
    parts = urlsplit(value)
    local = value.startswith("/") and not value.startswith("//")
    if not local or parts.scheme or parts.netloc or "\\" in value or not value.isprintable():
        return "/"
    return "/" if parts.path in {"/login", "/logout"} else value


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Login:
    """The login routes and ``guard``, which lets a request through only with a session."""

    def __init__(
        self,
        auth: WebAuthSettings,
        accounts: StaffAccounts,
        sessions: sessionmaker[Session],
        clock: Clock,
        env: jinja2.Environment,
        csrf_secret: Callable[[], str],
    ) -> None:
        self.accounts, self.clock, self.env = accounts, clock, env
        self.csrf_secret = csrf_secret
        self.max_age = int(auth.session_hours * 3600)
        self.session_secret = StoredSecret(sessions, clock, SESSION_SECRET)
        window = timedelta(minutes=auth.failure_window_minutes)
        self.limiter = LoginLimiter(auth.max_failures, window, clock)
        self._verifying = asyncio.Semaphore(VERIFYING_AT_ONCE)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
        ]

    # -- sessions

    def _serializer(self) -> URLSafeTimedSerializer:
        signer = {"digest_method": hashlib.sha256}
        secret = self.session_secret()
        return URLSafeTimedSerializer(secret, salt=SESSION_SALT, signer_kwargs=signer)

    def staff(self, request: Request) -> str | None:
        """The logged-in name: a cookie we signed, not expired, for an account that is
        still there with the same password. Blocking (the store, the users file)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            data = self._serializer().loads(cookie, max_age=self.max_age)
        except BadSignature:  # forged, tampered, or SignatureExpired (a subclass)
            return None
        if not isinstance(data, dict):
            return None
        name, tag = data.get("u"), data.get("f")
        if not isinstance(name, str) or tag is None or self.accounts.fingerprint(name) != tag:
            return None
        return name

    def _start_session(self, request: Request, response: Response, name: str) -> None:
        value = self._serializer().dumps({"u": name, "f": self.accounts.fingerprint(name)})
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.max_age,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def guard(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        """``endpoint`` behind the login: a page without a session goes to /login?next=,
        a form post to the login and back to its ticket, a script's fetch gets 401."""
        is_async = inspect.iscoroutinefunction(endpoint)

        async def guarded(request: Request) -> Response:
            name = await run_in_threadpool(self.staff, request)
            if name is None:
                return self._refusal(request)
            request.state.staff = name
            if is_async:
                response: Response = await endpoint(request)
            else:
                response = await run_in_threadpool(endpoint, request)
            return response

        return guarded

    def _refusal(self, request: Request) -> Response:
        if request.method == "POST":
            number = request.path_params.get("number")
            back = f"/tickets/{quote(number)}" if number else "/"
        elif request.headers.get("sec-fetch-mode", "navigate") == "navigate":
            query = request.url.query
            back = request.url.path + (f"?{query}" if query else "")
        else:  # the page's script (fetch, EventSource): it reloads into the login itself
            return Response("log in first", status_code=401, media_type="text/plain")
        return RedirectResponse(f"/login?next={quote(local_path(back), safe='')}", 303)

    # -- the pages

    def login_page(self, request: Request) -> Response:
        return self._render(request, local_path(request.query_params.get("next", "/")))

    def _render(
        self,
        request: Request,
        next_path: str,
        *,
        error: str = "",
        name: str = "",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        browser = browser_id(request)
        html = self.env.get_template("login.html").render(
            csrf=csrf_token(self.csrf_secret(), browser),
            next=next_path,
            error=error,
            name=name,
            user=None,
        )
        response = HTMLResponse(html, status_code=status, headers=headers)
        set_browser_cookie(response, browser)
        return response

    async def login(self, request: Request) -> Response:
        form, refused = await read_form(request)
        if refused is None:
            refused = csrf_refusal(request, form, await run_in_threadpool(self.csrf_secret))
        if refused is not None:
            return refused
        name, password = form.get("name", "").strip()[:64], form.get("password", "")
        next_path = local_path(form.get("next", "/"))
        keys = (f"user:{name.casefold()}", f"ip:{client_ip(request)}")
        wait = self.limiter.retry_after(keys)
        if wait is not None:  # refused before the (slow) check: guessing gains nothing
            known = await run_in_threadpool(self.accounts.exists, name)
            self._log(request, "rate_limited", name, known)
            return await run_in_threadpool(self._again, request, next_path, name, wait)
        async with self._verifying:
            verified = await run_in_threadpool(self.accounts.verify, name, password)
        if not verified.ok:
            self.limiter.failed(keys)
            self._log(request, "refused", name, verified.known)
            return await run_in_threadpool(self._again, request, next_path, name, None)
        self.limiter.forgive(keys[0])
        self._log(request, "ok", name, known=True)
        response = RedirectResponse(next_path, status_code=303)
        await run_in_threadpool(self._start_session, request, response, name)
        return response

    def _again(self, request: Request, next_path: str, name: str, wait: int | None) -> Response:
        """The login page again, saying why: refused (401) or throttled (429, Retry-After)."""
        if wait is None:
            error = "Wrong name or password."
            return self._render(request, next_path, error=error, name=name, status=401)
        minutes = max(1, math.ceil(wait / 60))
        error = f"Too many failed logins: try again in {minutes} minute{'s' * (minutes > 1)}."
        headers = {"Retry-After": str(wait)}
        return self._render(request, next_path, error=error, name=name, status=429, headers=headers)

    async def logout(self, request: Request) -> Response:
        form, refused = await read_form(request)
        if refused is None:
            refused = csrf_refusal(request, form, await run_in_threadpool(self.csrf_secret))
        if refused is not None:
            return refused
        name = await run_in_threadpool(self.staff, request)
        log.info("web.logout", user=name, client=client_ip(request))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    def _log(self, request: Request, outcome: str, name: str, known: bool) -> None:
        """The name only when it is an account's: a password typed into the name field
        must not reach the log."""
        user = name if known else None
        log.info("web.login", outcome=outcome, user=user, known=known, client=client_ip(request))
