"""The board's live updates across instances: LISTEN/NOTIFY on one PostgreSQL database.

Two daemons share the database. Instance A's board polls the store only once an hour, so
a ``changed`` on its event stream can only come from a notice its LISTEN connection got;
the mail goes to instance B's SMTP port. The stream's ``: listening`` / ``: polling``
comments say how it learns of changes, so the test knows when the listener is up again.
On SQLite the stream polls, as it always has.
"""

from __future__ import annotations

import http.client
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from intake.settings import Settings
from store import notify
from tests.conftest import RunningDaemon, start_daemon, stop_daemon, wait_for
from tests.intake.web.board_support import BOUND, send


@dataclass
class Stream:
    """One open ``/events`` stream, read line by line in a thread."""

    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def next_event(self) -> str:
        """The next event name or comment (``changed``, ``: listening``); not keep-alives."""
        deadline = time.monotonic() + BOUND
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line.startswith("event: "):
                return line.removeprefix("event: ")
            if line.startswith(":") and line != ": keep-alive":
                return line

    def until(self, wanted: str) -> list[str]:
        """Every event up to and including ``wanted``."""
        seen = []
        while not seen or seen[-1] != wanted:
            seen.append(self.next_event())
        return seen


def open_stream(daemon: RunningDaemon) -> Stream:
    web = daemon.app.settings.web
    connection = http.client.HTTPConnection(web.host, web.port, timeout=3600)
    connection.request("GET", "/events")
    response = connection.getresponse()
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = Stream()

    def read() -> None:  # until the daemon's stop ends the stream
        try:
            for raw in response:
                stream.lines.put(raw.decode().rstrip("\n"))
        finally:
            connection.close()

    threading.Thread(target=read, daemon=True).start()
    return stream


@pytest.fixture
def pg_url(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite polls (test_board.py)")
    return db_url


@pytest.fixture
def two_instances(
    make_settings: Callable[..., Settings], pg_url: str
) -> Iterator[tuple[RunningDaemon, RunningDaemon]]:
    a = start_daemon(make_settings(pg_url, **{"web.board_poll_interval": 3600.0}))
    b = start_daemon(make_settings(pg_url))
    yield a, b
    stop_daemon(b)
    stop_daemon(a)


def listener_pids(pg_url: str) -> set[int]:
    with psycopg.connect(notify.libpq_url(pg_url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (notify.APPLICATION_NAME,),
        ).fetchall()
    return {pid for (pid,) in rows}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_mail_processed_by_one_instance_wakes_the_others_board_at_once(
    two_instances: tuple[RunningDaemon, RunningDaemon],
) -> None:
    a, b = two_instances
    stream = open_stream(a)
    stream.until(": listening")
    send(b, "Acme Corp – 1 Main St, Denver CO – Crackling lines – P2")
    assert stream.next_event() == "changed"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_stream_polls_while_the_listener_is_gone_and_listens_again(
    two_instances: tuple[RunningDaemon, RunningDaemon], pg_url: str
) -> None:
    a, b = two_instances
    stream = open_stream(a)
    stream.until(": listening")
    before = wait_for(lambda: len(pids := listener_pids(pg_url)) == 2 and pids, BOUND)
    with psycopg.connect(notify.libpq_url(pg_url), autocommit=True) as connection:
        for pid in before:
            connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
    stream.until(": polling")
    stream.until(": listening")  # reconnected (with backoff): the same stream goes on
    after = wait_for(lambda: len(pids := listener_pids(pg_url)) == 2 and pids, BOUND)
    assert after.isdisjoint(before)
    send(b, "Initech – 9 Elm St, Austin TX – Total outage – P1")
    assert stream.next_event() == "changed"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_on_sqlite_the_stream_polls_the_store(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    daemon = start_daemon(make_settings(db_url))
    try:
        stream = open_stream(daemon)
        assert stream.next_event() == ": polling"  # no listener on SQLite, ever
        send(daemon, "Acme Corp – 1 Main St, Denver CO – Crackling lines – P2")
        assert stream.next_event() == "changed"
    finally:
        stop_daemon(daemon)
