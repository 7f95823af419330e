"""Benchmark: messages per second from a local Dovecot through the IMAP edge (issue 11).

Starts a throw-away Dovecot (the test suite's fixture, ``tests/intake/edges/dovecot.py``),
APPENDs N ~5 KB messages (one sender per message, so the flood limits and the reply
budget do not decide the ticket run), and polls them into a fresh SQLite store (or
``--database URL``). Three measurements, each on a fresh mailbox and a fresh store:

* **edge** (the issue's target): one ``MailboxPoller.poll_once`` in this process, timed
  from the first ``UID FETCH`` sent to the last ``UID MOVE`` answered (process start-up,
  the app's construction, LOGIN, SELECT and the first SEARCH are outside the window).
  Inside it: FETCH sizes and ``BODY.PEEK[]``, COMMIT 1 per batch, the MOVE per batch.
  ``--profile`` runs it under cProfile and prints the top functions.
* **plain**: bare imapclient on the same mailbox, ``UID FETCH BODY.PEEK[]`` and
  ``UID MOVE`` per batch with no store: the floor, run between the edge runs.
* **cli**: ``intake poll --once --no-process`` as a subprocess, wall time including the
  CLI's start-up (what a cron job sees).
* **tickets** (``--tickets``): the same CLI without ``--no-process``: mailbox to tickets
  and queued confirmations.

Not part of the test suite. Run:  .venv/bin/python bench/imap_intake.py --messages 2000
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compare import median, verdict  # noqa: E402
from imapclient import IMAPClient  # noqa: E402
from sqlalchemy import create_engine, func, select  # noqa: E402

from intake.app import build_app, imap_pollers  # noqa: E402
from intake.edges import imap as edge  # noqa: E402
from intake.settings import load_settings  # noqa: E402
from store.models import InboundMessage, Ticket  # noqa: E402
from tests.intake.edges.dovecot import Dovecot, make_dovecot  # noqa: E402

GOAL = 2000.0  # issue 11: msg/s from the first FETCH to the last MOVE

BODY = (
    "Company Name: Acme Corp\nContact Name: Jane Doe\nPhone: +1 303 555 0100\n"
    "Serial Number: MX-0042\nSW Version: 17.0.4\n"
    "Description: no dial tone on any handset in the Denver office since eight this morning\n"
    "Can the issue be reproduced? Yes\n"
) * 20  # about 5 KB with the headers


def message(i: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"Jane Doe {i} <jane.{i}@customer-{i}.example>"  # one sender per message
    m["To"] = "support@example.com"
    m["Subject"] = f"Acme Corp – 123 Main St – Issue {i} – P2"
    m["Message-ID"] = f"<bench-{i}-{time.time_ns()}@acme.example>"
    m.set_content(BODY)
    return m.as_bytes()


def count(url: str, model: type) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(select(func.count()).select_from(model)).scalar_one()
    engine.dispose()
    return int(value)


@contextmanager
def mailbox(messages: int) -> Iterator[Dovecot]:
    server = make_dovecot()
    try:
        server.append(message(i) for i in range(messages))
        yield server
    finally:
        server.destroy()


def _env(batch: int, tmp: str) -> dict[str, str]:
    return {
        "INTAKE_IMAP__BATCH_SIZE": str(batch),
        "INTAKE_OUTBOUND__DIRECTORY": f"{tmp}/outbox",
        "INTAKE_LOGGING__LEVEL": "WARNING",
    }


class Window:
    """First FETCH sent to last MOVE answered, by wrapping the two calls the edge makes."""

    def __init__(self) -> None:
        self.first_fetch: float | None = None
        self.last_move = 0.0
        self.fetches = self.moves = 0

    @contextmanager
    def watching(self) -> Iterator[None]:
        fetch, move = IMAPClient.fetch, edge.move

        def timed_fetch(client: IMAPClient, *args: Any, **kwargs: Any) -> Any:
            if self.first_fetch is None:
                self.first_fetch = time.perf_counter()
            self.fetches += 1
            return fetch(client, *args, **kwargs)

        def timed_move(*args: Any, **kwargs: Any) -> None:
            move(*args, **kwargs)
            self.moves += 1
            self.last_move = time.perf_counter()

        IMAPClient.fetch = timed_fetch  # type: ignore[method-assign]
        edge.move = timed_move
        try:
            yield
        finally:
            IMAPClient.fetch = fetch  # type: ignore[method-assign]
            edge.move = move

    @property
    def seconds(self) -> float:
        assert self.first_fetch is not None, "the edge never fetched"
        return self.last_move - self.first_fetch


def run_edge(
    messages: int, batch: int, database: str | None, profile: int, rates: list[float]
) -> str:
    """One edge run; its msg/s is appended to ``rates`` for the verdict."""
    with mailbox(messages) as server, tempfile.TemporaryDirectory() as tmp:
        url = database or f"sqlite:///{tmp}/bench.db"
        os.environ.update(_env(batch, tmp))
        overrides = {"database.url": url, "imap.mailboxes": [{"url": server.url()}]}
        app = build_app(load_settings(None, overrides), create=True)
        (poller,) = imap_pollers(app, lambda _id: None)
        window, profiler = Window(), cProfile.Profile()
        with window.watching():
            if profile:
                profiler.enable()
            result = poller.poll_once()
            profiler.disable()
        app.engine.dispose()
        stored = count(url, InboundMessage)
    assert stored == messages == result.moved, f"stored {stored}, moved {result.moved}"
    if profile:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(profile)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(profile)
    rate = messages / window.seconds
    rates.append(rate)
    return (
        f"edge, first FETCH to last MOVE  {messages} msgs in {window.seconds:6.3f}s = "
        f"{rate:7.0f} msg/s  ({window.fetches} FETCH, {window.moves} MOVE, stored={stored})"
    )


def run_plain(messages: int, batch: int) -> tuple[float, str]:
    """The floor: bare imapclient, UID FETCH BODY.PEEK[] and UID MOVE per batch, no store."""
    with mailbox(messages) as server:
        client = server.client()
        client.create_folder("Processed")
        client.select_folder("INBOX")
        uids = client.search("ALL")
        started = time.perf_counter()
        for start in range(0, len(uids), batch):
            chunk = uids[start : start + batch]
            client.fetch(chunk, ["BODY.PEEK[]"])
            client.move(chunk, "Processed")
        elapsed = time.perf_counter() - started
        client.logout()
    rate = messages / elapsed
    return (
        elapsed,
        f"plain imapclient FETCH + MOVE   {messages} msgs in {elapsed:6.3f}s = {rate:7.0f} msg/s",
    )


def run_cli(messages: int, batch: int, database: str | None, process: bool) -> str:
    with mailbox(messages) as server, tempfile.TemporaryDirectory() as tmp:
        url = database or f"sqlite:///{tmp}/bench.db"
        command = [sys.executable, "-m", "intake", "poll", "--once", "--imap", server.url()]
        command += ["--database", url] + ([] if process else ["--no-process"])
        started = time.perf_counter()
        subprocess.run(
            command, env={**os.environ, **_env(batch, tmp)}, check=True, capture_output=True
        )
        elapsed = time.perf_counter() - started
        stored, tickets = count(url, InboundMessage), count(url, Ticket)
    assert stored == messages, f"stored {stored} of {messages}"
    assert not process or tickets == messages, f"{tickets} tickets for {messages} messages"
    label = "cli, to tickets" if process else "cli --no-process, with start-up"
    rate = messages / elapsed
    return f"{label:30s}  {messages} msgs in {elapsed:6.2f}s = {rate:7.0f} msg/s  tickets={tickets}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=None, help="imap.batch_size (default: config)")
    parser.add_argument("--database", help="SQLAlchemy URL (default: fresh SQLite)")
    parser.add_argument("--rounds", type=int, default=3, help="edge runs (each printed)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile, top N")
    parser.add_argument("--no-cli", action="store_true", help="skip the subprocess run")
    parser.add_argument("--tickets", action="store_true", help="also mailbox to tickets")
    args = parser.parse_args()
    batch = args.batch or load_settings().imap.batch_size
    runs: list[Callable[[], str]] = []
    rates: list[float] = []
    for _ in range(args.rounds):  # interleaved: the machine's load changes from run to run
        runs.append(lambda: run_edge(args.messages, batch, args.database, args.profile, rates))
        runs.append(lambda: run_plain(args.messages, batch)[1])
    if not args.no_cli:
        runs.append(lambda: run_cli(args.messages, batch, args.database, process=False))
    if args.tickets:
        runs.append(lambda: run_cli(args.messages, batch, args.database, process=True))
    print(f"imap.batch_size={batch}, load average {os.getloadavg()[0]:.1f}")
    for run in runs:
        print(run(), flush=True)
    print(
        verdict(
            "IMAP edge, first FETCH to last MOVE (median)",
            median(rates),
            GOAL,
            True,
            " msg/s",
            "imap",
        )
    )


if __name__ == "__main__":
    main()
