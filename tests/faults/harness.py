"""The fault-test harness: a real ``intake serve`` subprocess, a retrying SMTP client, a relay.

Everything here is a real process or a real socket on loopback, so a fault test observes
the daemon the way an MTA and an operator would: by reply codes, by what reaches the relay,
by the rows in the store and by the JSON lines on stderr.

* ``ServeProcess`` runs ``python -m intake serve`` in its own process group (SIGKILL takes
  every thread and child with it) and keeps its stderr in a file, one JSON line per event.
* ``RetryingClient`` sends each message until it gets a 250, as an MTA's queue would: a 4xx
  answer, a dropped connection or a refused connect is retried with backoff (RFC 5321
  §4.5.4.1); a 5xx answer is final. It records which messages got a 250 and every code seen.
* ``Relay`` is an aiosmtpd server standing in for the outbound relay. It records every
  delivery attempt by Message-ID and In-Reply-To, and can drop the connection after the
  final dot of DATA, before answering, to simulate a lost 250.
"""

from __future__ import annotations

import contextlib
import email
import json
import os
import random
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import create_engine, func, select, text

from store.models import InboundMessage, OutboxMessage, Ticket
from tests.conftest import free_port, make_mail, wait_for

# Settings for a daemon under test: fast sweeps and retries, and a reply budget, flood
# limits and reflection caps that never hold a message back (20 senders x 100 messages
# would exceed the default 10 replies and 20 new tickets an hour per sender): these tests
# count exactly-once.
FAST_ENV = {
    "INTAKE_OUTBOUND__POLL_INTERVAL": "0.05",
    "INTAKE_OUTBOUND__BACKOFF_INITIAL": "0.2",
    "INTAKE_OUTBOUND__BACKOFF_MAX": "1",
    "INTAKE_OUTBOUND__MAX_ATTEMPTS": "1000",
    "INTAKE_OUTBOUND__TIMEOUT": "10",
    "INTAKE_INTAKE__SWEEP_INTERVAL": "0.5",
    "INTAKE_INTAKE__RETRY_INITIAL": "0.2",
    "INTAKE_INTAKE__RETRY_MAX": "1",
    "INTAKE_INTAKE__MAX_ATTEMPTS": "1000",
    "INTAKE_INTAKE__REPLIES_PER_HOUR": "1000000",
    "INTAKE_INTAKE__REPLIES_PER_DAY": "1000000",
    "INTAKE_INTAKE__FLOOD_PER_ADDRESS": "1000000",
    "INTAKE_INTAKE__FLOOD_PER_DOMAIN": "1000000",
    "INTAKE_INTAKE__REFLECTION_PER_IP": "1000000",
    "INTAKE_INTAKE__REFLECTION_PER_DOMAIN": "1000000",
}


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# -- the daemon -----------------------------------------------------------------------------


@dataclass
class ServeProcess:
    """``intake serve`` as a subprocess on ``port``, its stderr appended to ``log_path``."""

    database_url: str
    relay: str  # --deliver: smtp://127.0.0.1:PORT or a directory
    log_path: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "intake", "serve", "--listen", f"127.0.0.1:{self.port}",
            "--database", self.database_url, "--deliver", self.relay, "--log-format", "json",
        ]  # fmt: skip

    def start(self, timeout: float = 60) -> None:
        env = {**os.environ, **FAST_ENV, **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), env=env, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True,  # its own process group: SIGKILL takes everything
            )  # fmt: skip
        self.starts += 1
        wait_for(lambda: self._alive_or_raise() and port_open("127.0.0.1", self.port), timeout)

    def _alive_or_raise(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"intake serve exited {self.process.returncode}: {tail}")
        return True

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs, as in a crash or OOM kill."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop. Returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def leaks(self, secrets: Iterable[str]) -> list[str]:
        """Log lines at warning or above naming any of ``secrets`` or any SQL parameter."""
        needles = [s.lower() for s in secrets] + ["[parameters:"]
        return [
            str(line)[:600]
            for line in self.log_lines()
            if line.get("level") in {"warning", "error", "critical", "exception"}
            and any(needle in str(line).lower() for needle in needles)
        ]

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON line on stderr so far; a line that is not JSON is kept as ``raw``."""
        lines: list[dict[str, Any]] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                value = {"raw": line, "level": "error"}  # a traceback outside the renderer
            lines.append(value if isinstance(value, dict) else {"raw": line, "level": "error"})
        return lines


# -- the retrying client --------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    message_id: str  # as the store keeps it: without the angle brackets
    sender: str
    raw: bytes


def make_batch(count: int, senders: int, tag: str) -> list[Outgoing]:
    """``count`` complete reports from ``senders`` addresses, each with its own Message-ID."""
    batch = []
    for n in range(count):
        who = f"user{n % senders:02d}@customer{n % senders:02d}.example"
        message_id = f"{tag}-{n:05d}@customer.example"
        subject = f"Acme Corp – {n} Main St, Denver CO – No dial tone on line {n} – P2"
        raw = make_mail(subject=subject, sender=who, message_id=f"<{message_id}>")
        batch.append(Outgoing(message_id, who, raw))
    return batch


@dataclass
class RetryingClient:
    """Sends each message until a 250, a 5xx or the deadline, like an MTA's deferred queue."""

    host: str
    port: int
    deadline: float  # time.monotonic() after which nothing is retried
    acked: dict[str, str] = field(default_factory=dict)  # message_id -> "250"
    refused: dict[str, str] = field(default_factory=dict)  # message_id -> a 5xx line
    codes: Counter[str] = field(default_factory=Counter)  # "250", "451", "disconnect", ...
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send_all(self, batch: Sequence[Outgoing], workers: int) -> None:
        """One thread per sender address (``workers`` queues), each in order, until done."""
        queues: list[list[Outgoing]] = [[] for _ in range(workers)]
        for n, item in enumerate(batch):
            queues[n % workers].append(item)
        threads = [threading.Thread(target=self._run, args=(q,), daemon=True) for q in queues]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(1.0, self.deadline - time.monotonic() + 60))

    def _run(self, items: Iterable[Outgoing]) -> None:
        conn: smtplib.SMTP | None = None
        for item in items:
            conn = self._deliver(conn, item)
        if conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()

    def _deliver(self, conn: smtplib.SMTP | None, item: Outgoing) -> smtplib.SMTP | None:
        delay = 0.05
        while time.monotonic() < self.deadline:
            try:
                if conn is None:
                    conn = smtplib.SMTP(self.host, self.port, timeout=30)
                conn.sendmail(item.sender, ["support@example.com"], item.raw)
            except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as exc:
                code, line = _reply_of(exc)
                self._count(str(code))
                if code >= 500:
                    with self._lock:
                        self.refused[item.message_id] = line
                    return conn
            except (smtplib.SMTPException, OSError) as exc:
                self._count(
                    "connect-refused" if isinstance(exc, ConnectionRefusedError) else "disconnect"
                )
            else:
                self._count("250")
                with self._lock:
                    self.acked[item.message_id] = "250"
                return conn
            conn = _close(conn)
            time.sleep(delay * random.uniform(0.5, 1.5))  # backoff with jitter, as an MTA would
            delay = min(delay * 2, 1.0)
        return conn

    def _count(self, code: str) -> None:
        with self._lock:
            self.codes[code] += 1


def fresh_database(backend: str, request: pytest.FixtureRequest, directory: Path) -> str:
    """A SQLite file in ``directory``, or the session's PostgreSQL database emptied."""
    if backend == "sqlite":
        return f"sqlite:///{directory / 'intake.db'}"
    url: str = request.getfixturevalue("pg_server_url")
    engine = create_engine(url)
    with engine.begin() as conn:  # a clean schema, whatever ran before on this database
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def _reply_of(
    exc: smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused,
) -> tuple[int, str]:
    """The code and text of a refusal; for refused recipients, the mildest one's."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = min(exc.recipients.values())
        return code, f"{code} {text!r}"
    return exc.smtp_code, f"{exc.smtp_code} {exc.smtp_error!r}"


def _close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def send_once(host: str, port: int, item: Outgoing) -> str:
    """One attempt, as the first try of an MTA: the reply code, or ``disconnect``."""
    try:
        with smtplib.SMTP(host, port, timeout=30) as conn:
            conn.sendmail(item.sender, ["support@example.com"], item.raw)
    except smtplib.SMTPResponseException as exc:
        return str(exc.smtp_code)
    except (smtplib.SMTPException, OSError):
        return "disconnect"
    return "250"


# -- the relay ------------------------------------------------------------------------------


def bare_id(value: object) -> str:
    """A Message-ID header's value as the store keeps it: no angle brackets, no spaces."""
    return str(value or "").strip().strip("<>")


@dataclass(frozen=True)
class Attempt:
    message_id: str
    in_reply_to: str
    kind: str  # "accepted" or "dropped"


@dataclass
class Relay:
    """A real aiosmtpd relay on ``port`` that records every delivery attempt.

    ``drop_first`` drops the connection after the final dot of the first copy of each
    Message-ID, before any answer: the sender cannot know the mail arrived.
    """

    port: int = field(default_factory=free_port)
    drop_first: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    controller: Controller | None = None
    _seen: set[str] = field(default_factory=set)

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.original_content or b"", policy=default)
        message_id = bare_id(message["Message-ID"])
        attempt = Attempt(message_id, bare_id(message["In-Reply-To"]), "accepted")
        if self.drop_first and message_id not in self._seen:
            self._seen.add(message_id)
            self.attempts.append(Attempt(attempt.message_id, attempt.in_reply_to, "dropped"))
            assert server.transport is not None
            server.transport.abort()  # no answer to the final dot: the 250 is lost
            return "421 4.4.2 never sent: the connection is gone"
        self.attempts.append(attempt)
        return "250 2.0.0 relay accepted"

    def accepted(self) -> list[Attempt]:
        return [a for a in list(self.attempts) if a.kind == "accepted"]

    def ids_by_parent(self) -> dict[str, set[str]]:
        """In-Reply-To (the customer's Message-ID) -> the distinct reply Message-IDs seen."""
        found: dict[str, set[str]] = {}
        for attempt in list(self.attempts):
            found.setdefault(attempt.in_reply_to, set()).add(attempt.message_id)
        return found


# -- the store, read from outside -----------------------------------------------------------


@dataclass(frozen=True)
class StoreCounts:
    tickets_by_message: Counter[str]  # the customer's Message-ID -> tickets opened for it
    confirmations_by_message: Counter[str]  # -> confirmation rows in the outbox
    outbox_status: Counter[str]
    inbound_status: Counter[str]
    retried_replies: int  # outbox rows with at least one failed delivery attempt
    reply_ids: dict[str, str]  # the customer's Message-ID -> its confirmation's Message-ID

    def __str__(self) -> str:
        tickets, replies = self.tickets_by_message, self.confirmations_by_message
        return (
            f"{len(tickets)} messages ticketed ({sum(tickets.values())} tickets), "
            f"{len(replies)} confirmed ({sum(replies.values())} confirmations); "
            f"inbound {dict(self.inbound_status)}, outbox {dict(self.outbox_status)}"
        )


def read_store(url: str) -> StoreCounts:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tickets = conn.execute(
                select(InboundMessage.message_id, func.count(Ticket.id))
                .join(Ticket, Ticket.inbound_message_id == InboundMessage.id)
                .group_by(InboundMessage.message_id)
            ).all()
            confirmations = conn.execute(
                select(InboundMessage.message_id, func.count(OutboxMessage.id))
                .join(OutboxMessage, OutboxMessage.inbound_message_id == InboundMessage.id)
                .where(OutboxMessage.kind == "confirmation")
                .group_by(InboundMessage.message_id)
            ).all()
            outbox = conn.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            ).all()
            inbound = conn.execute(
                select(InboundMessage.status, func.count()).group_by(InboundMessage.status)
            ).all()
            retried = conn.execute(
                select(func.count()).where(OutboxMessage.attempts > 0)
            ).scalar_one()
            reply_ids = conn.execute(
                select(InboundMessage.message_id, OutboxMessage.message_id)
                .join(OutboxMessage, OutboxMessage.inbound_message_id == InboundMessage.id)
                .where(OutboxMessage.kind == "confirmation")
            ).all()
    finally:
        engine.dispose()
    return StoreCounts(
        Counter(dict(tickets)),
        Counter(dict(confirmations)),
        Counter(dict(outbox)),
        Counter(dict(inbound)),
        int(retried),
        {m: bare_id(r) for m, r in reply_ids},
    )


def outbox_claimed(url: str) -> int:
    """How many replies are claimed right now (``sending``): a crash now strands them."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            statement = select(func.count()).where(OutboxMessage.status == "sending")
            return int(conn.execute(statement).scalar_one())
    finally:
        engine.dispose()


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, detail: Callable[[], object] = str
) -> Any:
    """``wait_for`` with a message naming the condition and, from ``detail``, the state."""
    try:
        return wait_for(predicate, timeout=timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(f"{what}: not within {timeout}s; {detail()}") from None
