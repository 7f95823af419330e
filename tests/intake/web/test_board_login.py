"""The board's login (``web.auth``) over plain HTTP against a real daemon bound off loopback:
the board needs a session, the login refuses wrong passwords and throttles guessing per
account and per client IP, a forged, tampered or expired cookie is no session, and the
staff action records the logged-in name. The limiter and the ``next`` check are pure and
table-driven here too."""

from __future__ import annotations

import hashlib
import http.client
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from structlog.testing import capture_logs

from intake.settings import Settings
from intake.web.auth import SESSION_COOKIE, SESSION_SALT, SESSION_SECRET, LoginLimiter, local_path
from intake.web.staff import remove_user, set_password
from store import repository as repo
from store.db import session_scope
from store.models import AppSecret
from tests.conftest import RunningDaemon, free_port, start_daemon, stop_daemon
from tests.intake.web.board_support import send

# The shipped RFC 9106 parameters cost 64 MiB and ~0.1 s a check; the tests' accounts use
# argon2's cheapest ones (the daemon verifies whatever parameters the hash names).
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORDS = {"ann": "correct horse battery", "bob": "tr0ub4dor&3 staple"}
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", "/"),
        ("/tickets/TKT-000001", "/tickets/TKT-000001"),
        ("/?status=closed&priority=1", "/?status=closed&priority=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("tickets/1", "/"),
        ("/login?next=/", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("", "/"),
    ],
    ids=[
        "root",
        "ticket",
        "query-kept",
        "other-host",
        "scheme-relative",
        "backslash",
        "javascript",
        "relative",
        "login-loop",
        "header-injection",
        "empty",
    ],
)
def test_next_is_only_ever_a_local_path(value: str, expected: str) -> None:
    assert local_path(value) == expected


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize(
    ("failures_at", "asked_at", "wait"),
    [
        ([0, 1, 2, 3], 4, None),  # four: a fifth try is allowed
        ([0, 1, 2, 3, 4], 5, 895),  # five: until the first leaves the 15 minutes
        ([0, 1, 2, 3, 4], 900, None),  # the first left: four in the window
        ([0, 100, 200, 300, 400, 500], 901, 99),  # rolling: 0 left, 100 is the oldest now
        ([0, 1, 2, 3, 4, 5, 6], 10, 892),  # more than five: until the fifth-newest (2) leaves
    ],
    ids=["under", "at-limit", "window-passed", "rolling", "over"],
)
def test_limiter_counts_failures_in_a_rolling_window(
    failures_at: list[int], asked_at: int, wait: int | None
) -> None:
    clock = Clock()
    limiter = LoginLimiter(5, timedelta(minutes=15), clock)
    for second in failures_at:
        clock.now = T0 + timedelta(seconds=second)
        limiter.failed(["user:ann"])
    clock.now = T0 + timedelta(seconds=asked_at)
    assert limiter.retry_after(["user:ann"]) == wait


def test_limiter_forgives_the_account_not_the_address() -> None:
    limiter = LoginLimiter(2, timedelta(minutes=15), Clock())
    limiter.failed(["user:ann", "ip:192.0.2.1"])
    limiter.failed(["user:ann", "ip:192.0.2.1"])
    limiter.forgive("user:ann")
    assert limiter.retry_after(["user:ann"]) is None
    assert limiter.retry_after(["user:ann", "ip:192.0.2.1"]) == 900


# --------------------------------------------------------------------------- a real daemon


class Client:
    """A browser stand-in over http.client: keeps cookies, never follows redirects, and
    can speak from another loopback address (a second client IP)."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.port, self.source = port, source
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, **extra: str
    ) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=60, source_address=(self.source, 0)
        )
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        headers |= {k.replace("_", "-"): v for k, v in extra.items()}
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    self._keep(value)
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            connection.close()

    def _keep(self, header: str) -> None:
        pair, *attributes = header.split(";")
        name, _, value = pair.strip().partition("=")
        expired = any(a.strip().lower() in {"max-age=0", 'max-age="0"'} for a in attributes)
        if expired or not value.strip('"'):
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

    def csrf(self, path: str = "/login") -> str:
        status, _headers, html = self.request("GET", path)
        assert status == 200, html
        match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, name: str, password: str, next_path: str = "/") -> tuple[int, dict[str, str]]:
        form = {"csrf": self.csrf(), "name": name, "password": password, "next": next_path}
        status, headers, _html = self.request("POST", "/login", form)
        return status, headers


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "staff.passwd"
    for name, password in PASSWORDS.items():
        set_password(path, name, password, FAST)
    return path


@pytest.fixture
def auth_daemon(
    make_settings: Callable[..., Settings], users_file: Path
) -> Iterator[RunningDaemon]:
    """Bound to every address (not loopback): the login is required."""
    overrides: dict[str, Any] = {
        "web.listen": f"0.0.0.0:{free_port()}",
        "web.auth.users_file": str(users_file),
    }
    running = start_daemon(make_settings(**overrides))
    yield running
    stop_daemon(running)


def port(daemon: RunningDaemon) -> int:
    return daemon.app.settings.web.port


def test_off_loopback_every_board_page_needs_a_login(auth_daemon: RunningDaemon) -> None:
    number = send(auth_daemon, "Acme Corp – 1 Main St, Denver CO – Slow calls – P3")
    anonymous = Client(port(auth_daemon))
    for path, expected in [
        ("/", "/login?next=%2F"),
        ("/?status=closed", "/login?next=%2F%3Fstatus%3Dclosed"),
        (f"/tickets/{number}", f"/login?next=%2Ftickets%2F{number}"),
        ("/ops/quarantine", "/login?next=%2Fops%2Fquarantine"),
        ("/ops/quarantine/1", "/login?next=%2Fops%2Fquarantine%2F1"),
        ("/ops/outbox?status=dead", "/login?next=%2Fops%2Foutbox%3Fstatus%3Ddead"),
        ("/ops/mailboxes", "/login?next=%2Fops%2Fmailboxes"),
        ("/ops/customers", "/login?next=%2Fops%2Fcustomers"),
    ]:
        status, headers, _ = anonymous.request("GET", path)
        assert (status, headers["location"]) == (303, expected), path
    status, headers, _ = anonymous.request("POST", f"/tickets/{number}/close", {"by": "eve"})
    assert (status, headers["location"]) == (303, f"/login?next=%2Ftickets%2F{number}")
    with session_scope(auth_daemon.app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None and ticket.status == "open"  # nothing was done
    for retry in ("/ops/quarantine/1/retry", "/ops/outbox/1/retry"):
        status, headers, _ = anonymous.request("POST", retry, {"by": "eve"})
        assert status == 303 and headers["location"].startswith("/login"), retry
    # The page script's fetches get 401 (it reloads into the login); the API keeps its token.
    for script_path in ("/queue/rows", f"/tickets/{number}/body", "/events"):
        status, _, _ = anonymous.request("GET", script_path, Sec_Fetch_Mode="cors")
        assert status == 401, script_path
    assert anonymous.request("GET", "/api/tickets")[0] == 401
    for open_path in ("/healthz", "/readyz", "/metrics", "/static/board.css", "/login"):
        assert anonymous.request("GET", open_path)[0] == 200, open_path


def test_login_shows_the_queue_and_actions_record_the_account(
    auth_daemon: RunningDaemon,
) -> None:
    number = send(auth_daemon, "Initech – 9 Elm St, Austin TX – Total outage – P1")
    ann = Client(port(auth_daemon))
    with capture_logs() as logs:
        status, headers = ann.login("ann", PASSWORDS["ann"], f"/tickets/{number}")
    assert (status, headers["location"]) == (303, f"/tickets/{number}")
    cookie = next(v for k, v in headers.items() if k.lower() == "set-cookie")
    attributes = {a.strip().lower() for a in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain http here: a Secure cookie would never return
    assert f"max-age={12 * 3600}" in attributes
    assert [e for e in logs if e["event"] == "web.login"] == [
        {
            "event": "web.login",
            "outcome": "ok",
            "user": "ann",
            "known": True,
            "client": "127.0.0.1",
            "log_level": "info",
        }
    ]
    assert PASSWORDS["ann"] not in repr(logs)

    status, _, html = ann.request("GET", "/")
    assert status == 200 and f'data-number="{number}"' in html
    assert "signed in as <b>ann</b>" in html
    status, _, page = ann.request("GET", f"/tickets/{number}")
    assert 'name="by"' not in page  # the account is who: no field to type another name
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert token
    form = {"csrf": token.group(1), "by": "mallory"}  # a forged "by" is ignored
    assert ann.request("POST", f"/tickets/{number}/close", form)[0] == 303
    with session_scope(auth_daemon.app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None and ticket.status == "closed"
        assert [(e.actor, e.action) for e in repo.ticket_events(session, ticket.id)] == [
            ("ann", "close")
        ]

    assert ann.request("POST", "/logout", {"csrf": "0" * 64})[0] == 403  # CSRF on logout too
    status, headers, _ = ann.request("POST", "/logout", {"csrf": token.group(1)})
    assert (status, headers["location"]) == (303, "/login")
    assert SESSION_COOKIE not in ann.cookies
    assert ann.request("GET", "/")[0] == 303


def test_the_session_cookie_is_secure_when_the_proxy_says_https(
    auth_daemon: RunningDaemon,
) -> None:
    """uvicorn believes X-Forwarded-Proto from a proxy on loopback (its default)."""
    client = Client(port(auth_daemon))
    form = {"csrf": client.csrf(), "name": "ann", "password": PASSWORDS["ann"], "next": "/"}
    status, headers, _ = client.request("POST", "/login", form, X_Forwarded_Proto="https")
    assert status == 303
    cookie = next(v for k, v in headers.items() if k.lower() == "set-cookie")
    assert "secure" in {a.strip().lower() for a in cookie.split(";")}


@pytest.mark.parametrize(
    ("name", "password"),
    [("ann", "wrong password"), ("zed", PASSWORDS["ann"]), ("ann", ""), ("", "")],
    ids=["wrong-password", "unknown-user", "empty-password", "empty"],
)
def test_a_wrong_login_is_refused_and_logged_without_the_password(
    auth_daemon: RunningDaemon, name: str, password: str
) -> None:
    client = Client(port(auth_daemon))
    form = {"csrf": client.csrf(), "name": name, "password": password, "next": "/"}
    with capture_logs() as logs:
        status, _, html = client.request("POST", "/login", form)
    assert status == 401
    assert "Wrong name or password." in html  # the same answer for a name that is no account
    assert SESSION_COOKIE not in client.cookies
    assert client.request("GET", "/")[0] == 303
    [event] = [e for e in logs if e["event"] == "web.login"]
    assert event["outcome"] == "refused"
    assert event["user"] == (name if name == "ann" else None)
    assert not password or password not in repr(logs)


def test_login_needs_its_csrf_token(auth_daemon: RunningDaemon) -> None:
    client = Client(port(auth_daemon))
    client.csrf()  # the browser cookie, but a token from elsewhere
    form = {"csrf": "0" * 64, "name": "ann", "password": PASSWORDS["ann"]}
    assert client.request("POST", "/login", form)[0] == 403
    assert SESSION_COOKIE not in client.cookies


def test_guessing_is_throttled_per_account_and_per_address(auth_daemon: RunningDaemon) -> None:
    here, there = Client(port(auth_daemon)), Client(port(auth_daemon), source="127.0.0.2")
    for attempt in range(5):
        assert here.login("ann", f"guess {attempt}")[0] == 401
    # The sixth try is refused before the password is checked, even the right one ...
    status, _, html = here.request(
        "POST",
        "/login",
        {"csrf": here.csrf(), "name": "ann", "password": PASSWORDS["ann"], "next": "/"},
    )
    assert status == 429 and "Too many failed logins" in html
    # ... and from another address: the account is throttled, wherever guesses come from.
    status, headers = there.login("ann", PASSWORDS["ann"])
    assert status == 429
    assert 0 < int(headers["retry-after"]) <= 15 * 60
    # The address that guessed is throttled for every account; another address is not.
    assert here.login("bob", PASSWORDS["bob"])[0] == 429
    assert there.login("bob", PASSWORDS["bob"])[0] == 303
    assert there.request("GET", "/")[0] == 200


def test_unknown_names_count_against_the_address(auth_daemon: RunningDaemon) -> None:
    sprayer = Client(port(auth_daemon), source="127.0.0.3")
    for name in ("admin", "root", "noc", "support", "test"):
        assert sprayer.login(name, "password123")[0] == 401
    assert sprayer.login("ann", PASSWORDS["ann"])[0] == 429


def session_serializer(daemon: RunningDaemon, signer: type[TimestampSigner]) -> Any:
    with session_scope(daemon.app.sessions) as session:
        secret = session.execute(
            select(AppSecret.value).where(AppSecret.name == SESSION_SECRET)
        ).scalar_one()
    return URLSafeTimedSerializer(
        secret, salt=SESSION_SALT, signer=signer, signer_kwargs={"digest_method": hashlib.sha256}
    )


class ThirteenHoursAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 13 * 3600  # past web.auth.session_hours (12)


def test_forged_tampered_and_expired_cookies_are_no_session(auth_daemon: RunningDaemon) -> None:
    ann = Client(port(auth_daemon))
    assert ann.login("ann", PASSWORDS["ann"])[0] == 303
    valid = ann.cookies[SESSION_COOKIE]
    assert ann.request("GET", "/")[0] == 200

    payload, _, signature = valid.partition(".")
    fingerprint = session_serializer(auth_daemon, TimestampSigner).loads(valid)["f"]
    other_key = URLSafeTimedSerializer("not the stored secret", salt=SESSION_SALT)
    expired = session_serializer(auth_daemon, ThirteenHoursAgo).dumps(
        {"u": "ann", "f": fingerprint}
    )
    forged: dict[str, str] = {
        "other-key": other_key.dumps({"u": "ann", "f": fingerprint}),
        "tampered": session_serializer(auth_daemon, TimestampSigner).dumps({"u": "ann"})[:-2]
        + "xx",
        "unsigned": payload,
        "expired": expired,
        "no-fingerprint": session_serializer(auth_daemon, TimestampSigner).dumps({"u": "ann"}),
    }
    for why, cookie in forged.items():
        eve = Client(port(auth_daemon))
        eve.cookies[SESSION_COOKIE] = cookie
        assert eve.request("GET", "/")[0] == 303, why
    assert signature  # the real one had a signature, and still works:
    assert ann.request("GET", "/")[0] == 200


def test_a_changed_password_or_removed_account_ends_its_sessions(
    auth_daemon: RunningDaemon, users_file: Path
) -> None:
    ann, bob = Client(port(auth_daemon)), Client(port(auth_daemon))
    assert ann.login("ann", PASSWORDS["ann"])[0] == 303
    assert bob.login("bob", PASSWORDS["bob"])[0] == 303
    set_password(users_file, "ann", "a brand new password", FAST)  # as `intake staff add`
    assert ann.request("GET", "/")[0] == 303
    assert ann.login("ann", "a brand new password")[0] == 303  # read without a restart
    remove_user(users_file, "bob")
    assert bob.request("GET", "/")[0] == 303
    assert bob.login("bob", PASSWORDS["bob"])[0] == 401


def test_on_loopback_without_web_auth_the_board_is_open(
    make_settings: Callable[..., Settings],
) -> None:
    running = start_daemon(make_settings())
    try:
        client = Client(port(running))
        assert client.request("GET", "/")[0] == 200
        assert client.request("GET", "/login")[0] == 404  # no login to go to
    finally:
        stop_daemon(running)
