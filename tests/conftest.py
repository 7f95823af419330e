"""Shared fixtures: real stores (SQLite, PostgreSQL), a real aiosmtpd relay sink, the daemon.

Logging: the suite wires JSON logs once, at import, the way the composition root does for
the daemon, so no test (in-process daemon included) falls back to structlog's rich
traceback renderer, whose locals would slow every failure path down by seconds.

PostgreSQL: every test run creates its own database on 127.0.0.1:5432 (user postgres,
override with INTAKE_TEST_PG) and drops it afterwards; the PostgreSQL half of the store
tests is skipped, with the reason, only when no server answers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from intake.app import App, build_app, serve
from intake.logs import configure_logging
from intake.settings import Settings, load_settings
from store.db import session_scope
from store.models import Ticket


def configure_test_logging() -> None:
    """What every test runs under: JSON lines on stderr at INFO, plain tracebacks."""
    configure_logging("INFO", "json")


configure_test_logging()

# Every daemon a test starts, in-process or as a subprocess, serves HTTP on a free port
# unless the test names one: many tests (and test runs) share this machine's 8025.
os.environ.setdefault("INTAKE_WEB__LISTEN", "127.0.0.1:0")
# Most tests send many mails from one sender and count tickets: the inbound flood limits
# (issue 13) would keep all but 20 an hour off new tickets. The flood tests name the
# shipped limits themselves (tests/intake/pipeline/test_strangers_floods.py).
os.environ.setdefault("INTAKE_INTAKE__FLOOD_PER_ADDRESS", "1000000")
os.environ.setdefault("INTAKE_INTAKE__FLOOD_PER_DOMAIN", "1000000")
# The same for the confirmation reflection caps (many senders at acme.example); the
# reflection tests name the shipped caps (tests/intake/pipeline/test_reflection.py).
os.environ.setdefault("INTAKE_INTAKE__REFLECTION_PER_IP", "1000000")
os.environ.setdefault("INTAKE_INTAKE__REFLECTION_PER_DOMAIN", "1000000")

PG_ADMIN = os.environ.get("INTAKE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CORPUS = Path(
    os.environ.get("INTAKE_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus")
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def make_mail(
    subject: str = "Acme Corp – 123 Main St, Denver CO – No dial tone on all lines – P1",
    body: str = "",
    sender: str = "Jane Doe <jane@acme.example>",
    to: str = "support@example.com",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@acme.example>"
    message["Date"] = "Sun, 22 Nov 2026 09:00:00 -0700"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body or COMPLETE_BODY)
    return message.as_bytes()


COMPLETE_BODY = """\
Company Name: Acme Corp
Contact Name: Jane Doe
Email: jane@acme.example
Phone: +1 303 555 0100
Board Serial Number: MX-0042-7781
Appliance S/N: MXA-0042-7782
SW Version: 17.0.4
Description: Since 08:10 no phone in the Denver office gets a dial tone, nobody can call.
Can the issue be reproduced? Yes
Call Example 1:
Date/Time: 2026-11-22 08:15 MST
Calling Number: x2201
Called Number: +1 720 555 0199
"""


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL not answering at {PG_ADMIN}: {exc}"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"intake_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs on SQLite and on PostgreSQL (a clean schema per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'intake.db'}"
        return
    url: str = request.getfixturevalue("pg_server_url")
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:  # whatever the last test left behind, start empty
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield url


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(db: str | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database.url": db or f"sqlite:///{tmp_path / 'intake.db'}",
            "smtp.port": free_port(),
            "web.listen": f"127.0.0.1:{free_port()}",
            "outbound.directory": str(tmp_path / "outbox"),
            "outbound.poll_interval": 0.05,
            "intake.sweep_interval": 0.2,
            "intake.retry_initial": 0.05,
            "intake.retry_max": 0.2,
            "intake.restart_initial": 0.1,
            "intake.restart_max": 1.0,
            "logging.format": "json",
            # In-process daemons process in their own threads, where a test can reach the
            # pipeline; the processing process has its own tests (tests/intake/test_remote.py)
            # and every `intake serve` subprocess runs it (the default).
            "intake.processing": "inline",
        }
        values.update(overrides)
        return load_settings(None, values)

    return factory


@dataclass
class Sink:
    """A real aiosmtpd server standing in for the outbound relay; it keeps what it gets."""

    host: str
    port: int
    messages: list[Envelope] = field(default_factory=list)
    refuse_with: str | None = None  # e.g. "550 5.1.1 no such user"
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self, hostname=self.host, port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.refuse_with:
            return self.refuse_with
        self.messages.append(envelope)
        return "250 2.0.0 sink accepted"


@pytest.fixture
def sink() -> Iterator[Sink]:
    handler = Sink("127.0.0.1", free_port())
    handler.start()
    yield handler
    handler.stop()


@dataclass
class RunningDaemon:
    app: App
    host: str
    port: int
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event
    thread: threading.Thread


def start_daemon(settings: Settings) -> RunningDaemon:
    app = build_app(settings)
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        stop = asyncio.Event()
        holder["loop"], holder["stop"] = loop, stop
        loop.call_soon(ready.set)
        loop.run_until_complete(serve(app, stop))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    daemon = RunningDaemon(
        app, settings.smtp.host, settings.smtp.port, holder["loop"], holder["stop"], thread
    )
    # Both of its ports: SMTP, and the HTTP server (health, metrics, the board), which
    # starts serving a moment later than the listener.
    wait_for(lambda: _port_open(daemon.host, daemon.port))
    wait_for(lambda: _port_open(settings.web.host, settings.web.port))
    return daemon


def stop_daemon(daemon: RunningDaemon) -> None:
    daemon.loop.call_soon_threadsafe(daemon.stop.set)
    daemon.thread.join(30)
    daemon.app.engine.dispose()


def tickets(daemon: RunningDaemon) -> list[Ticket]:
    """The daemon's tickets, oldest first."""
    with session_scope(daemon.app.sessions) as session:
        return list(session.execute(select(Ticket).order_by(Ticket.id)).scalars())


needs_swaks = pytest.mark.skipif(
    shutil.which("swaks") is None, reason="swaks is not installed (apt-get install swaks)"
)


def swaks(daemon: RunningDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    """One swaks session to the daemon's listener; its transcript is in ``stdout``."""
    return subprocess.run(
        ["swaks", "--server", f"{daemon.host}:{daemon.port}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def daemon(make_settings: Callable[..., Settings], db_url: str) -> Iterator[RunningDaemon]:
    running = start_daemon(make_settings(db_url))
    yield running
    stop_daemon(running)
