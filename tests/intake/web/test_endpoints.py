"""/healthz, /readyz and /metrics of a real daemon, over real HTTP, after real SMTP mail.

Faults are injected the way they happen: a writer thread that crashes (a test double of
its loop), a store table that vanishes under the outbox sender, an outbox directory that
is a file. Each test asserts on the HTTP answers, never on calls.
"""

from __future__ import annotations

import json
import smtplib
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from structlog.testing import capture_logs

from intake.edges.groupcommit import GroupCommitWriter
from intake.edges.imap import MailboxPoller
from intake.settings import Settings
from tests.conftest import (
    RunningDaemon,
    free_port,
    make_mail,
    start_daemon,
    stop_daemon,
    wait_for,
)

BOUND = 60.0  # seconds: generous on a loaded machine, reached only when something is wrong


def get(daemon: RunningDaemon, path: str) -> tuple[int, Any]:
    web = daemon.app.settings.web
    url = f"http://{web.host}:{web.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return status, body.decode() if path == "/metrics" else json.loads(body)


def task(daemon: RunningDaemon, name: str) -> tuple[int, dict[str, Any]]:
    status, body = get(daemon, "/healthz")
    [entry] = [t for t in body["tasks"] if t["name"] == name]
    return status, entry


def check(daemon: RunningDaemon, name: str) -> tuple[int, dict[str, Any]]:
    status, body = get(daemon, "/readyz")
    [entry] = [c for c in body["checks"] if c["name"] == name]
    return status, entry


def samples(daemon: RunningDaemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    status, body = get(daemon, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def send(
    daemon: RunningDaemon, raw: bytes, rcpts: tuple[str, ...] = ("support@example.com",)
) -> int:
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("jane@acme.example")
        accepted = [r for r in rcpts if client.rcpt(r)[0] == 250]
        if not accepted:
            return 0
        code, _ = client.data(raw)
        return code


@pytest.fixture
def running(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., RunningDaemon]]:
    started: list[RunningDaemon] = []

    def start(**overrides: Any) -> RunningDaemon:
        started.append(start_daemon(make_settings(**overrides)))
        return started[-1]

    yield start
    for daemon in started:
        stop_daemon(daemon)


@pytest.mark.fault
def test_a_crashed_writer_thread_is_logged_once_reported_down_then_restarted(
    running: Callable[..., RunningDaemon], monkeypatch: pytest.MonkeyPatch
) -> None:
    crash, calls = threading.Event(), []
    real_run = GroupCommitWriter.run

    def crashing_once(self: GroupCommitWriter) -> None:
        calls.append(1)
        if len(calls) == 1:
            crash.wait(BOUND)
            raise RuntimeError("injected writer crash")
        real_run(self)

    monkeypatch.setattr(GroupCommitWriter, "run", crashing_once)
    # 5 s (±20 %) down before the restart: a window the probes below cannot miss.
    daemon = running(**{"intake.restart_initial": 5.0, "intake.restart_max": 5.0})
    assert task(daemon, "writer")[0] == 200
    with capture_logs() as logs:
        crash.set()
        status, down = wait_for(lambda: (s := task(daemon, "writer"))[0] == 503 and s, BOUND)
        assert (down["alive"], down["restarts"]) == (False, 0)
        assert down["last_error"] == "RuntimeError: injected writer crash" and down["down_since"]
        wait_for(lambda: task(daemon, "writer")[1]["restarts"] == 1, BOUND)
    assert get(daemon, "/healthz")[0] == 200
    assert send(daemon, make_mail()) == 250  # the restarted writer stores mail again
    failed = [e for e in logs if e["event"] == "task.failed" and e["task"] == "writer"]
    assert len(failed) == 1 and isinstance(failed[0]["exc_info"], RuntimeError)


def test_a_dead_imap_poller_thread_is_reported_and_restarted(
    running: Callable[..., RunningDaemon], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run, calls = MailboxPoller.run, []

    def dying_once(self: MailboxPoller, stop: threading.Event) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("poller thread died")
        real_run(self, stop)

    monkeypatch.setattr(MailboxPoller, "run", dying_once)
    url = f"imap://alice:pw@127.0.0.1:{free_port()}/INBOX"  # nothing listens: it just fails
    daemon = running(**{"imap.mailboxes": [{"url": url}]})
    name = f"imap {daemon.app.settings.imap.mailboxes[0].name}"
    # restarts counts when the supervisor starts the task again, just before its thread runs.
    status, entry = wait_for(
        lambda: (s := task(daemon, name))[1]["restarts"] == 1 and len(calls) == 2 and s, BOUND
    )
    assert entry["alive"] and entry["last_error"] == "RuntimeError: poller thread died"


@pytest.mark.fault
def test_the_outbox_sender_survives_a_store_error_and_health_shows_it_meanwhile(
    running: Callable[..., RunningDaemon],
) -> None:
    daemon = running()
    wait_for(lambda: get(daemon, "/healthz")[0] == 200, BOUND)
    with capture_logs() as logs:
        with daemon.app.engine.begin() as conn:  # the sender's next claim fails
            conn.execute(text("ALTER TABLE outbox RENAME TO outbox_gone"))
        status, down = wait_for(lambda: (s := task(daemon, "outbox"))[0] == 503 and s, BOUND)
        assert "no such table: outbox" in down["last_error"]
        assert "[SQL" not in down["last_error"]  # the first line only
        wait_for(lambda: samples(daemon)[("intake_task_up", (("task", "outbox"),))] == 0, BOUND)
        with daemon.app.engine.begin() as conn:
            conn.execute(text("ALTER TABLE outbox_gone RENAME TO outbox"))
        wait_for(lambda: get(daemon, "/healthz")[0] == 200, BOUND)
    assert task(daemon, "outbox")[1]["restarts"] >= 1
    assert send(daemon, make_mail()) == 250
    wait_for(lambda: list(daemon.app.settings.outbound.directory.glob("*.eml")), BOUND)
    failed = [e for e in logs if e["event"] == "task.failed" and e["task"] == "outbox"]
    assert len(failed) == 1  # repeats during the outage are one short line each


@pytest.mark.fault
def test_an_outbox_path_that_is_a_file_fails_readiness_and_shows_in_metrics_until_fixed(
    running: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    blocked = tmp_path / "outbox-is-a-file"
    blocked.write_text("not a directory")
    daemon = running(
        **{
            "outbound.directory": str(blocked),
            "outbound.backoff_initial": 0.2,
            "outbound.backoff_max": 0.5,
        }
    )
    assert get(daemon, "/readyz")[0] == 503
    assert send(daemon, make_mail()) == 250
    failed = ("intake_outbox_deliveries_total", (("result", "failed"),))
    wait_for(lambda: samples(daemon).get(failed, 0) >= 1, BOUND)
    status, outbox = check(daemon, "outbox")
    assert status == 503 and not outbox["ok"] and "is not a directory" in outbox["detail"]
    assert samples(daemon)[("intake_ready", (("check", "outbox"),))] == 0
    assert task(daemon, "outbox")[0] == 200  # alive: a failed delivery is retried, not fatal

    blocked.unlink()  # the operator fixes it: the queued reply goes out, readiness recovers
    wait_for(lambda: list(blocked.glob("*.eml")), BOUND)
    wait_for(lambda: get(daemon, "/readyz")[0] == 200, BOUND)
    assert samples(daemon)[("intake_ready", (("check", "outbox"),))] == 1


def test_readyz_names_every_check_and_is_ready_on_a_fresh_daemon(
    running: Callable[..., RunningDaemon],
) -> None:
    status, body = get(running(), "/readyz")
    assert status == 200 and body["status"] == "ok"
    assert [c["name"] for c in body["checks"]] == [
        "store",
        "schema",
        "stall",
        "mailboxes",
        "outbox",
    ]
    assert all(c["ok"] and c["detail"] == "ok" for c in body["checks"])


def test_metrics_parse_and_count_real_smtp_mail(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    daemon = start_daemon(make_settings(db_url))
    try:
        assert send(daemon, make_mail()) == 250
        assert send(daemon, make_mail(subject="Acme Corp – Denver – Noise – P3")) == 250
        assert send(daemon, make_mail(), ("nobody@example.com",)) == 0
        outbox = daemon.app.settings.outbound.directory
        wait_for(lambda: len(list(outbox.glob("*.eml"))) == 2, BOUND)
        seen = wait_for(
            lambda: (
                (s := samples(daemon)).get(("intake_replies", (("status", "sent"),))) == 2 and s
            ),
            BOUND,
        )
    finally:
        stop_daemon(daemon)
    assert seen[("intake_smtp_replies_total", (("code", "250"), ("command", "DATA")))] == 2
    assert seen[("intake_smtp_replies_total", (("code", "550"), ("command", "RCPT")))] == 1
    assert seen[("intake_smtp_accept_seconds_count", ())] == 2
    assert seen[("intake_processed_total", (("outcome", "ticket_created"),))] == 2
    # Each message is tried once: a sweep that read a row as due just before its hand-over
    # committed does not try it again (seen once in CI on PostgreSQL before the worker
    # remembered its finishes: 3 attempts for 2 tickets).
    attempts = {
        dict(k[1])["outcome"]: v for k, v in seen.items() if k[0] == "intake_processed_total"
    }
    assert {o: n for o, n in attempts.items() if n} == {"ticket_created": 2}
    assert seen[("intake_processing_seconds_count", ())] == 2
    assert seen[("intake_outbox_deliveries_total", (("result", "sent"),))] == 2
    assert seen[("intake_inbound_messages", (("status", "processed"),))] == 2
    assert seen[("intake_received_backlog", ())] == 0
    assert seen[("intake_received_oldest_age_seconds", ())] == 0
    assert seen[("intake_store_up", ())] == 1
    tasks = {dict(k[1])["task"]: v for k, v in seen.items() if k[0] == "intake_task_up"}
    units = ["smtp", "writer", "worker", "outbox", "autoclose", "web"]
    if db_url.startswith("postgresql"):
        units.append("board-listen")  # the board's LISTEN connection (store.notify)
    assert tasks == dict.fromkeys(units, 1)
