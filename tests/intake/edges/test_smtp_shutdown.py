"""A real ``intake serve`` process: SIGTERM loses nothing, and a fault cannot flood the log.

SIGTERM while a session is mid-DATA: that message gets its 250, a new connection and an
idle session get 421, the process exits 0, and every acknowledged message is stored.
With file descriptors exhausted (RLIMIT_NOFILE lowered on the running process), asyncio's
failing ``accept()`` is logged once with its traceback, then as a count per interval.
"""

from __future__ import annotations

import os
import resource
import signal
import smtplib
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import make_mail, wait_for
from tests.intake.edges.conftest import Served

# A fault-injection test: pytest -m fault runs these with tests/faults.
pytestmark = pytest.mark.fault


def wire(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def stored_message_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT message_id FROM inbound_message")]


def test_sigterm_mid_data_answers_the_message_refuses_new_sessions_and_exits_0(
    served: Callable[..., Served],
) -> None:
    daemon = served(INTAKE_SMTP__SHUTDOWN_GRACE="60")
    raw = wire(make_mail(message_id="<mid-data@acme.example>"))
    half = len(raw) // 2
    sending = smtplib.SMTP("127.0.0.1", daemon.port, timeout=30)
    sending.ehlo("client.test")
    sending.mail("jane@acme.example")
    sending.rcpt("support@example.com")
    assert sending.docmd("DATA")[0] == 354
    sending.send(raw[:half])  # mid-DATA when the signal comes
    idle = smtplib.SMTP("127.0.0.1", daemon.port, timeout=30)
    idle.ehlo("client.test")

    daemon.process.send_signal(signal.SIGTERM)
    wait_for(lambda: daemon.events("smtp.draining"), timeout=30)

    with pytest.raises(smtplib.SMTPConnectError) as refused:  # a new session: 421 greeting
        smtplib.SMTP("127.0.0.1", daemon.port, timeout=30)
    assert refused.value.smtp_code == 421
    assert refused.value.smtp_error.startswith(b"4.3.2")
    assert idle.getreply()[0] == 421  # told, not just dropped (RFC 5321 §3.8)

    sending.send(raw[half:] + b".\r\n")
    code, reply = sending.getreply()
    assert code == 250, reply  # the message in DATA got its answer
    assert sending.getreply()[0] == 421  # and then the session ends politely
    assert daemon.stop() == 0, daemon.log.read_text()[-3000:]
    assert stored_message_ids(daemon.db) == ["mid-data@acme.example"]
    assert daemon.events("intake.stopped")


def test_sigterm_cuts_off_a_session_stuck_in_data_after_the_grace(
    served: Callable[..., Served],
) -> None:
    daemon = served(INTAKE_SMTP__SHUTDOWN_GRACE="0.5")
    stuck = smtplib.SMTP("127.0.0.1", daemon.port, timeout=30)
    stuck.ehlo("client.test")
    stuck.mail("jane@acme.example")
    stuck.rcpt("support@example.com")
    assert stuck.docmd("DATA")[0] == 354
    stuck.send(b"Subject: never finished\r\n")
    daemon.process.send_signal(signal.SIGTERM)
    assert stuck.getreply()[0] == 421  # cut off with a 4xx: its MTA sends it again
    assert daemon.process.wait(timeout=60) == 0
    assert stored_message_ids(daemon.db) == []
    [drained] = daemon.events("smtp.drained")
    assert (drained["complete"], drained["cut_off"]) == (False, 1)


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit(2)")
def test_exhausted_file_descriptors_log_a_bounded_number_of_lines(
    served: Callable[..., Served],
) -> None:
    daemon = served(INTAKE_LOGGING__REPEAT_INTERVAL="1")
    pid = daemon.process.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    clients: list[socket.socket] = []
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 2, hard))
        for _ in range(20):  # the kernel completes these; the daemon cannot accept them
            clients.append(socket.create_connection(("127.0.0.1", daemon.port), timeout=10))
        wait_for(lambda: daemon.events("loop.error_repeated"), timeout=30)
    finally:
        for sock in clients:
            sock.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert daemon.stop() == 0, daemon.log.read_text()[-3000:]
    text = daemon.log.read_text(errors="replace")
    firsts = daemon.events("loop.error")
    [emfile] = [e for e in firsts if "EMFILE" in e["kind"]]  # once with its traceback
    assert "Traceback" in emfile["exception"]
    repeated = [e for e in daemon.events("loop.error_repeated") if e["kind"] == emfile["kind"]]
    assert sum(e["count"] for e in repeated) >= 1  # the flood was there, and counted
    # Unthrottled, asyncio logs up to its backlog (100) tracebacks per loop tick, again
    # every second; throttled, each kind is a line and then a count per interval.
    emfile_lines = [line for line in text.splitlines() if "EMFILE" in line]
    assert len(emfile_lines) <= 1 + len(repeated) + 1, text[-3000:]
    assert len(text.splitlines()) < 100, text[-3000:]
