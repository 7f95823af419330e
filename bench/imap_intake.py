"""Benchmark: messages per second from a local Dovecot into the store and on to tickets.

Starts a throw-away Dovecot (the test suite's fixture, tests/intake/dovecot.py), APPENDs
N ~5 KB messages, then runs `intake poll --once` as a subprocess against a fresh SQLite
store (or --database URL), twice on fresh mailboxes:
  * edge rate: `--no-process`: UID SEARCH, batched FETCH BODY.PEEK[], COMMIT 1 per
    batch, MOVE to Processed — messages per second off the IMAP server;
  * ticket rate: the same plus processing every message into a ticket and a queued
    confirmation — messages per second from the mailbox to tickets.
Not part of the test suite. Run:  .venv/bin/python bench/imap_intake.py --messages 2000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select  # noqa: E402

from store.models import InboundMessage, Ticket  # noqa: E402
from tests.intake.edges.dovecot import make_dovecot  # noqa: E402

BODY = (
    "Company Name: Acme Corp\nContact Name: Jane Doe\nPhone: +1 303 555 0100\n"
    "Serial Number: MX-0042\nSW Version: 17.0.4\n"
    "Description: no dial tone on any handset in the Denver office since eight this morning\n"
    "Can the issue be reproduced? Yes\n"
) * 20  # about 5 KB


def message(i: int) -> bytes:
    m = EmailMessage()
    m["From"] = "Jane Doe <jane@acme.example>"
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


def run(messages: int, batch: int, database: str | None, process: bool) -> tuple[float, str]:
    server = make_dovecot()
    try:
        server.append(message(i) for i in range(messages))
        with tempfile.TemporaryDirectory() as tmp:
            url = database or f"sqlite:///{tmp}/bench.db"
            env = {
                **os.environ,
                "INTAKE_IMAP__BATCH_SIZE": str(batch),
                "INTAKE_OUTBOUND__DIRECTORY": f"{tmp}/outbox",
                "INTAKE_LOGGING__LEVEL": "WARNING",
            }
            command = [sys.executable, "-m", "intake", "poll", "--once", "--imap", server.url()]
            command += ["--database", url] + ([] if process else ["--no-process"])
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True, cwd=ROOT)
            elapsed = time.perf_counter() - started
            stored, tickets = count(url, InboundMessage), count(url, Ticket)
    finally:
        server.destroy()
    assert stored == messages, f"stored {stored} of {messages}"
    assert not process or tickets == messages, f"{tickets} tickets for {messages} messages"
    return elapsed, f"stored={stored} tickets={tickets}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200, help="imap.batch_size")
    parser.add_argument("--database", help="SQLAlchemy URL (default: fresh SQLite)")
    args = parser.parse_args()
    for label, process in (("edge (store + MOVE)", False), ("to tickets", True)):
        elapsed, detail = run(args.messages, args.batch, args.database, process)
        rate = args.messages / elapsed
        print(f"{label:20s} {args.messages} msgs in {elapsed:6.2f}s = {rate:7.0f} msg/s  {detail}")


if __name__ == "__main__":
    main()
