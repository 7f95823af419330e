"""The board's change signal: ``NOTIFY intake_board`` on PostgreSQL, and one LISTEN per process.

Sending (one seam, ``announce_board_changes``, which ``store.db.make_engine`` registers on
every PostgreSQL engine): a transaction that inserts, updates or deletes rows of a table
the board shows (``BOARD_TABLES``: tickets, their events, inbound mail, the outbox, the
ledger) sends ``NOTIFY intake_board`` just before it commits, on its own connection, so
the notice is delivered when, and only if, the writes are (PostgreSQL queues a
transaction's notifications until COMMIT and drops them on ROLLBACK; one per channel and
payload per transaction). It sits on the engine, under the ORM: flushes, Core
statements and other code's repository functions all go through it, and no write path
has to remember it.

Receiving (``BoardChanges``): one autocommit psycopg connection per process runs
``LISTEN intake_board`` and wakes every waiting event stream at once. When it drops
(server restart, ``pg_terminate_backend``), ``listening`` is false, so the streams poll
the store as on SQLite, and it reconnects with exponential backoff; on reconnecting it
wakes them once, since notices sent while nobody listened are lost. On SQLite there is no
listener: ``run`` is never started and the streams poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.sql.dml import UpdateBase

CHANNEL = "intake_board"
APPLICATION_NAME = "intake board listener"  # how pg_stat_activity names the connection
BOARD_TABLES = frozenset({"ticket", "ticket_event", "inbound_message", "outbox", "charge"})
_PENDING = "intake_board_pending"  # Connection.info key: this transaction wrote board rows


def announce_board_changes(engine: Engine) -> None:
    """Send ``NOTIFY intake_board`` in every transaction of ``engine`` that changes what
    the board shows (PostgreSQL engines only; see the module docstring)."""
    event.listen(engine, "before_execute", _note_write)
    event.listen(engine, "commit", _notify_before_commit)
    event.listen(engine, "rollback", _forget)


def _note_write(
    conn: Connection, clause: Any, _multiparams: Any, _params: Any, _options: Any
) -> None:
    if isinstance(clause, UpdateBase):
        table = getattr(clause, "table", None)
        if getattr(table, "name", None) in BOARD_TABLES:
            conn.info[_PENDING] = True


def _notify_before_commit(conn: Connection) -> None:
    # The commit event runs before the DBAPI commit: the NOTIFY is part of the transaction.
    if conn.info.pop(_PENDING, False):
        cursor = conn.connection.cursor()
        try:
            cursor.execute(f"NOTIFY {CHANNEL}")
        finally:
            cursor.close()


def _forget(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as libpq takes it (no ``+psycopg`` driver suffix)."""
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=False)


class BoardChanges:
    """Wakes this process's board streams: on every notice while ``listening``, and once
    whenever ``wake`` is called (a reconnect, the board closing)."""

    def __init__(
        self, url: str | None = None, backoff_initial: float = 1.0, backoff_max: float = 30.0
    ) -> None:
        self.url = url  # None: no listener (SQLite); the streams poll
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.listening = False
        self.wakes = 0  # how many wakes so far: a stream waits for it to pass what it saw
        self._event = asyncio.Event()

    @classmethod
    def for_url(cls, url: str) -> BoardChanges:
        is_postgresql = make_url(url).get_backend_name() == "postgresql"
        return cls(libpq_url(url) if is_postgresql else None)

    def wake(self) -> None:
        """Wake every waiting stream (on the loop the streams run on)."""
        self.wakes += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int, seconds: float) -> int:
        """Until a wake after ``seen``, or ``seconds``; the wake count then."""
        if self.wakes == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), seconds)
        return self.wakes

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the LISTEN connection until ``stop``; reconnect with backoff when it drops."""
        if self.url is None:
            await stop.wait()
            return
        log = structlog.get_logger("intake.board")
        delay = self.backoff_initial
        while not stop.is_set():
            try:
                await self._listen(stop)
                delay = self.backoff_initial
            except Exception as exc:  # the driver's first line names the failure, no values
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("board.listen_lost", error=reason, retry_in=delay)
            finally:
                if self.listening:
                    self.listening = False
                    self.wake()  # the waiting streams turn to polling now, not in 15 s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self.backoff_max)

    async def _listen(self, stop: asyncio.Event) -> None:
        import psycopg  # the PostgreSQL extra: only imported where PostgreSQL is used

        assert self.url is not None
        async with await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, application_name=APPLICATION_NAME, connect_timeout=10
        ) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.listening = True
            self.wake()  # notices sent while nobody listened are lost: look once
            structlog.get_logger("intake.board").info("board.listening", channel=CHANNEL)
            while not stop.is_set():
                # A bounded wait, so ``stop`` is seen; a dropped connection raises here.
                async for _notice in conn.notifies(timeout=1.0):
                    self.wake()
