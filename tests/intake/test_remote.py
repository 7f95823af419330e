"""The processing process (intake.pipeline.remote): COMMIT 2 outside the listener's process.

Real daemons, real SMTP, a real child process: each test counts rows and files, never
calls. The in-process daemons of the other tests process inline (tests/conftest.py); every
``intake serve`` subprocess (the fault tests, the Postfix and pipe tests) runs this mode,
which is the default.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake.settings import Settings
from store.db import session_scope
from store.models import InboundMessage, InboundStatus, OutboxMessage, Ticket
from tests.conftest import (
    RunningDaemon,
    free_port,
    make_mail,
    start_daemon,
    stop_daemon,
    wait_for,
)
from tests.faults.harness import ServeProcess

pytestmark = pytest.mark.timeout(300)

FINISHED = (InboundStatus.PROCESSED, InboundStatus.IGNORED)


@pytest.fixture
def remote(make_settings: Callable[..., Settings], db_url: str) -> Iterator[RunningDaemon]:
    settings = make_settings(
        db_url,
        **{
            "intake.processing": "process",
            "intake.replies_per_hour": 1000,
            "intake.flood_per_address": 1000,
        },
    )
    running = start_daemon(settings)
    yield running
    stop_daemon(running)


def send(daemon: RunningDaemon, count: int, tag: str) -> None:
    with smtplib.SMTP(daemon.host, daemon.port, timeout=60) as client:
        for n in range(count):
            sender = f"user{n}@acme.example"
            mail = make_mail(sender=sender, subject=f"Acme Corp – 1 Main St – {tag} {n} – P2")
            client.sendmail(sender, ["support@example.com"], mail)


def counts(daemon: RunningDaemon) -> tuple[int, int, int]:
    """(inbound rows, finished rows, tickets), and the confirmations queued or sent."""
    with session_scope(daemon.app.sessions) as session:
        inbound = session.scalar(select(func.count()).select_from(InboundMessage)) or 0
        done = session.scalar(select(func.count()).where(InboundMessage.status.in_(FINISHED))) or 0
        tickets = session.scalar(select(func.count()).select_from(Ticket)) or 0
    return inbound, done, tickets


def confirmations(daemon: RunningDaemon) -> list[int]:
    with session_scope(daemon.app.sessions) as session:
        return list(session.scalars(select(OutboxMessage.inbound_message_id)))


def children_processing(parent: int) -> list[int]:
    """Live spawned children of ``parent`` running COMMIT 2 (not the resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent and fields[0] != "Z" and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def test_tickets_are_made_in_the_child_and_counted_in_the_daemons_metrics(
    remote: RunningDaemon,
) -> None:
    send(remote, 12, "remote")
    wait_for(lambda: counts(remote) == (12, 12, 12), timeout=120)
    assert sorted(confirmations(remote)) == sorted(set(confirmations(remote)))
    assert len(confirmations(remote)) == 12
    [child] = children_processing(os.getpid())
    assert child != os.getpid()  # the tickets were not made in this process
    registry = remote.app.metrics.registry
    created = lambda: registry.get_sample_value(  # noqa: E731
        "intake_processed_total", {"outcome": "ticket_created"}
    )
    wait_for(lambda: created() == 12, timeout=60)  # outcomes travel back over the pipe


def test_a_killed_processing_process_is_restarted_and_loses_nothing(
    remote: RunningDaemon,
) -> None:
    """SIGKILL mid-stream: health says so, a new child sweeps what the old one held, and
    every message ends with exactly one ticket and one confirmation."""
    [first] = wait_for(lambda: children_processing(os.getpid()) or None, timeout=60)
    sending = threading.Thread(target=send, args=(remote, 40, "kill"))
    sending.start()
    wait_for(lambda: counts(remote)[2] >= 1, timeout=120)  # processing is under way
    os.kill(first, signal.SIGKILL)
    sending.join(120)
    wait_for(lambda: counts(remote) == (40, 40, 40), timeout=180)
    assert sorted(confirmations(remote)) == sorted(set(confirmations(remote)))
    assert len(confirmations(remote)) == 40
    [second] = wait_for(lambda: children_processing(os.getpid()) or None, timeout=60)
    assert second != first
    with urllib.request.urlopen(  # noqa: S310 - loopback
        f"http://{remote.app.settings.web.host}:{remote.app.settings.web.port}/healthz"
    ) as answer:
        tasks = {t["name"]: t for t in json.load(answer)["tasks"]}
    assert tasks["worker"]["restarts"] >= 1
    assert "processing process exited" in (tasks["worker"]["last_error"] or "")


def test_the_processing_process_ends_when_the_daemon_is_killed(tmp_path: Path, db_url: str) -> None:
    """A parent gone without a word (SIGKILL) closes the pipe: the child stops on its own,
    so no orphan keeps working on a store the operator thinks is idle."""
    serve = ServeProcess(db_url, str(tmp_path / "outbox"), tmp_path / "serve.log")
    serve.env = {"INTAKE_WEB__LISTEN": f"127.0.0.1:{free_port()}"}
    serve.start(timeout=120)
    try:
        assert serve.process is not None
        [child] = wait_for(lambda: children_processing(serve.process.pid) or None, timeout=120)
        serve.process.kill()  # the daemon alone, not its process group
        serve.process.wait(30)
        wait_for(lambda: not _alive(child), timeout=120)
    finally:
        serve.kill()  # whatever is left of the group


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2 :].split()[0] != "Z"
