"""Readiness: named checks over the store, the backlog, the mailboxes and the outbox.

One list of checks serves ``/readyz`` inside the daemon and ``intake health`` outside it,
so both say the same thing. A check is a name and a probe that returns ``None`` when all
is well, else one line saying what is wrong; a probe that raises fails with the error's
first line (never SQL parameters: the engine hides them). The composition root builds the
list (``intake.app.readiness_checks``) and may add its own (the schema check).

What "ready" means (ARCHITECTURE invariant 9): the store answers; its schema is the one
this version runs on (``store.migrate``); no message this
instance can take (SMTP and pipe mail, and the IMAP mail of the mailboxes it polls) has
waited past ``intake.stall_after``; none of its mailboxes has been failing past
``imap.failing_after``; and the outbox can take replies (the directory is writable, and the
sender's last attempt reached the relay or the directory).
"""

from __future__ import annotations

import json
import os
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from intake.replies.sender import DeliveryState
from intake.schema import schema_refusal
from intake.settings import OutboundSettings, Settings, SmtpSettings, WebSettings
from store import repository as repo
from store.db import session_scope
from store.migrate import schema_status
from store.models import MailboxState

Clock = Callable[[], datetime]
Probe = Callable[[], str | None]
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - listening on all, probing one


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    probe: Probe


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str  # "ok", or what is wrong


def run_checks(checks: Iterable[Check]) -> tuple[CheckResult, ...]:
    """Every check, each on its own: one failing or raising never hides the others."""
    results = []
    for check in checks:
        try:
            problem = check.probe()
        except Exception as exc:
            problem = first_line(exc)
        results.append(CheckResult(check.name, problem is None, problem or "ok"))
    return tuple(results)


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def readiness(
    engine: Engine,
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: Clock,
    last_delivery: Callable[[], DeliveryState | None] = lambda: None,
) -> list[Check]:
    """The checks for one instance: its settings say which mailboxes it polls."""
    mailboxes = tuple(m.name for m in settings.imap.mailboxes)
    return [
        Check("store", lambda: store_problem(sessions)),
        Check("schema", lambda: schema_problem(engine, settings)),
        Check("stall", lambda: stall_problem(sessions, mailboxes, settings, clock())),
        Check("mailboxes", lambda: mailboxes_problem(sessions, mailboxes, settings, clock())),
        Check("outbox", lambda: outbox_problem(settings.outbound, last_delivery())),
    ]


def store_problem(sessions: sessionmaker[Session]) -> str | None:
    with session_scope(sessions) as session:
        repo.ping(session)
    return None


def schema_problem(engine: Engine, settings: Settings) -> str | None:
    """The schema is the one this version runs on (``store.migrate``): what the daemon
    would refuse at start fails here, in the same words (``intake.schema``)."""
    return schema_refusal(schema_status(engine), settings)


def stall_problem(
    sessions: sessionmaker[Session], mailboxes: Sequence[str], settings: Settings, now: datetime
) -> str | None:
    with session_scope(sessions) as session:
        oldest = repo.oldest_waiting(session, mailboxes)
    if oldest is not None and now - oldest > timedelta(seconds=settings.intake.stall_after):
        return f"a message has waited to be processed since {iso(oldest)}"
    return None


def mailboxes_problem(
    sessions: sessionmaker[Session], mailboxes: Sequence[str], settings: Settings, now: datetime
) -> str | None:
    if not mailboxes:
        return None
    with session_scope(sessions) as session:
        rows = repo.list_mailbox_states(session)
        problems = mailbox_problems(rows, mailboxes, settings.imap.failing_after, now)
    return "; ".join(problems) or None


def mailbox_problems(
    rows: Iterable[MailboxState], mailboxes: Collection[str], failing_after: float, now: datetime
) -> list[str]:
    """This instance's mailboxes that have been failing longer than ``failing_after``."""
    limit = timedelta(seconds=failing_after)
    return [
        f"IMAP {row.name} failing since {iso(row.failing_since)}: {row.last_error}"
        for row in rows
        if row.name in mailboxes and row.failing_since and now - row.failing_since > limit
    ]


def outbox_problem(settings: OutboundSettings, last: DeliveryState | None) -> str | None:
    """The directory must take files; the last attempt must have reached its target."""
    if not settings.uses_relay and (problem := directory_problem(settings.directory)):
        return problem
    if last is not None and not last.ok:
        target = f"relay {settings.relay_host}:{settings.relay_port}"
        where = target if settings.uses_relay else str(settings.directory)
        return f"the last delivery to {where} failed at {iso(last.at)}: {last.error}"
    return None


def directory_problem(directory: Path) -> str | None:
    """None when replies can be written there, or it can be created (its parent is ours)."""
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"outbox directory {directory}: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"outbox directory {directory}: {existing} is not writable"
    return None


# -- probes of a running daemon, for `intake health` (another process) -------------------


def smtp_check(settings: SmtpSettings, timeout: float = 5.0) -> Check:
    """The listener greets and answers NOOP."""
    host = "127.0.0.1" if settings.host in _WILDCARDS else settings.host

    def probe() -> str | None:
        try:
            with smtplib.SMTP(host, settings.port, timeout=timeout) as client:
                client.noop()
        except (OSError, smtplib.SMTPException) as exc:
            return f"{host}:{settings.port} does not answer: {exc}"
        return None

    return Check("smtp", probe)


def tasks_check(settings: WebSettings, timeout: float = 5.0) -> Check:
    """The daemon's ``/healthz``: every supervised task alive; names the ones that are not."""
    host = "127.0.0.1" if settings.host in _WILDCARDS else settings.host
    url = f"http://{host}:{settings.port}/healthz"
    if ":" in host:
        url = f"http://[{host}]:{settings.port}/healthz"

    def probe() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:  # 503: some task is down
            return down_tasks(json.loads(exc.read() or b"{}"))
        except OSError as exc:
            return f"{url} does not answer: {exc}"
        return None

    return Check("tasks", probe)


def down_tasks(body: dict[str, object]) -> str:
    tasks = body.get("tasks")
    names = [
        f"{t.get('name')} ({t.get('last_error')})"
        for t in (tasks if isinstance(tasks, list) else [])
        if isinstance(t, dict) and not t.get("alive")
    ]
    return "down: " + (", ".join(names) or "unknown")


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
