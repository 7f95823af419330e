"""Benchmark: durable SMTP accept rate and end-to-end ticket rate of `intake serve`.

Starts the daemon as a subprocess on a free loopback port with a fresh SQLite store (or
--database URL), sends N messages over C concurrent reused SMTP sessions, and reports
  * accept rate: messages answered 250 per second (each after its own COMMIT 1),
  * ticket rate: messages turned into tickets + queued confirmations per second.
Not part of the test suite. Run:  .venv/bin/python bench/smtp_intake.py --messages 2000
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from sqlalchemy import create_engine, func, select

from store.models import Ticket

BODY = (
    "Company Name: Acme Corp\nContact Name: Jane Doe\nPhone: +1 303 555 0100\n"
    "Serial Number: MX-0042\nSW Version: 17.0.4\n"
    "Description: no dial tone on any handset in the Denver office since eight this morning\n"
    "Can the issue be reproduced? Yes\n"
) * 18  # about 5 KB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(i: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"Contact {i} <contact{i}@customer{i % 997}.example>"  # one sender each
    m["To"] = "support@example.com"
    m["Subject"] = f"Acme Corp – 123 Main St – Issue {i} – P2"
    m["Message-ID"] = f"<bench-{i}-{time.time_ns()}@acme.example>"
    m.set_content(BODY)
    return m.as_bytes(policy=SMTP)  # CRLF on the wire (RFC 5321 §2.3.8)


def sender(port: int, items: list[bytes]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for raw in items:
            # The envelope sender is the From address: one sender per message, so the reply
            # budget (10 an hour per address) does not suppress the confirmations.
            sender = raw.split(b"<", 1)[1].split(b">", 1)[0].decode()
            client.sendmail(sender, ["support@example.com"], raw)


def count_tickets(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = int(conn.execute(select(func.count()).select_from(Ticket)).scalar_one())
    engine.dispose()
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--database", default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    url = args.database or f"sqlite:///{work / 'bench.db'}"
    port = free_port()
    env = {**os.environ, "INTAKE_LOGGING__LEVEL": "WARNING"}
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "intake",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--database",
            url,
            "--deliver",
            str(work / "outbox"),
        ],
        cwd=work,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        payloads = [message(i) for i in range(args.messages)]
        shares = [payloads[i :: args.connections] for i in range(args.connections)]
        start = time.perf_counter()
        threads = [threading.Thread(target=sender, args=(port, s)) for s in shares]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted = time.perf_counter() - start
        while count_tickets(url) < args.messages:
            time.sleep(0.2)
        processed = time.perf_counter() - start
    finally:
        daemon.terminate()
        daemon.wait(30)
    size = sum(len(p) for p in payloads) / len(payloads)
    print(f"{args.messages} messages of {size / 1024:.1f} KB over {args.connections} connections")
    print(f"accept (250 after COMMIT 1): {args.messages / accepted:8.1f} msg/s")
    print(f"tickets + confirmations:     {args.messages / processed:8.1f} msg/s")


if __name__ == "__main__":
    main()
