"""Benchmark: peak RSS of `intake serve` under concurrent large DATA, with the memory cap.

Starts the daemon as a subprocess (fresh SQLite store, processing as usual) with
``smtp.max_data_in_flight`` set to --limit-mib, then sends --sessions messages of
--size-mib each over as many SMTP sessions at once. A session told 452 at MAIL tries
again after a pause, as an MTA's queue would. Reports the answers and the daemon's peak
RSS (VmHWM from /proc, Linux). Not part of the test suite. Compare:
  .venv/bin/python bench/smtp_memory.py --sessions 8 --size-mib 24 --limit-mib 64
  .venv/bin/python bench/smtp_memory.py --sessions 8 --size-mib 24 --limit-mib 4096
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
from collections import Counter
from pathlib import Path

MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(i: int, size: int) -> bytes:
    head = (
        f"From: Jane Doe <jane@acme.example>\r\nTo: support@example.com\r\n"
        f"Subject: Acme Corp – 1 Main St – Large attachment {i} – P3\r\n"
        f"Message-ID: <memory-{i}-{time.time_ns()}@acme.example>\r\n\r\n"
    ).encode()
    line = b"A" * 76 + b"\r\n"
    return head + line * (size // len(line))


def sender(port: int, raw: bytes, answers: Counter[str], lock: threading.Lock) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with smtplib.SMTP("127.0.0.1", port, timeout=600) as client:
            client.ehlo("bench.test")
            code, _ = client.mail("jane@acme.example", [f"SIZE={len(raw)}"])  # as MTAs do
            with lock:
                answers[f"MAIL {code}"] += 1
            if code == 452:
                time.sleep(0.5)
                continue
            client.rcpt("support@example.com")
            code, _ = client.data(raw)
            with lock:
                answers[f"DATA {code}"] += 1
            return


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=24)
    parser.add_argument("--limit-mib", type=int, default=64)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "INTAKE_LOGGING__LEVEL": "WARNING",
        "INTAKE_WEB__LISTEN": "127.0.0.1:0",
        "INTAKE_SMTP__MAX_MESSAGE_SIZE": str((args.size_mib + 1) * MIB),
        "INTAKE_SMTP__MAX_DATA_IN_FLIGHT": str(args.limit_mib * MIB),
    }
    command = [
        sys.executable, "-m", "intake", "serve", "--listen", f"127.0.0.1:{port}",
        "--database", f"sqlite:///{work / 'bench.db'}", "--deliver", str(work / "outbox"),
    ]  # fmt: skip
    daemon = subprocess.Popen(command, cwd=work, env=env)
    answers: Counter[str] = Counter()
    lock = threading.Lock()
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        payloads = [message(i, args.size_mib * MIB) for i in range(args.sessions)]
        start = time.perf_counter()
        threads = [
            threading.Thread(target=sender, args=(port, raw, answers, lock)) for raw in payloads
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        peak = peak_rss_mib(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(60)
    print(f"{args.sessions} x {args.size_mib} MiB at once, max_data_in_flight {args.limit_mib} MiB")
    print(f"answers: {dict(sorted(answers.items()))} in {elapsed:.1f} s")
    print(f"daemon peak RSS (VmHWM): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
