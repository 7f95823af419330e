"""The pipe edge: once stored, nothing turns the exit status into anything but 0.

In-process for the edge itself; subprocesses for what only a real process shows: a
broken stderr pipe (an MTA that stopped reading) and the exit status Python would give.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from intake.app import build_app, utc_now
from intake.edges.pipe import MtaOutput, PipeEdge
from intake.errors import RelayError
from intake.pipeline.core import Envelope
from intake.settings import Settings, load_settings
from store import repository as repo
from store.db import session_scope
from tests.conftest import make_mail

ENVELOPE = Envelope("pipe", "stdin", "jane@acme.example", ("support@example.com",))


class BrokenRelay:
    """Stands in for the outbox sender when the relay is down."""

    async def flush_once(self, limit: int = 20) -> int:
        raise RelayError("relay unreachable")


def test_a_reply_failure_after_storing_still_exits_0_and_stores_once(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = build_app(make_settings(db_url))
    edge = PipeEdge(app.pipeline, BrokenRelay(), utc_now, 1_000_000)  # type: ignore[arg-type]
    raw = make_mail()
    assert edge.deliver_bytes(raw, ENVELOPE) == os.EX_OK
    assert edge.deliver_bytes(raw, ENVELOPE) == os.EX_OK  # the MTA retried: a duplicate
    with session_scope(app.sessions) as session:
        assert len(repo.list_tickets(session)) == 1
        assert [r.status for r in repo.list_outbox(session)] == ["queued"]  # sent later


def test_a_store_failure_exits_75_so_the_mta_keeps_the_mail(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = build_app(make_settings(db_url))
    app.engine.dispose()
    app.pipeline.sessions.configure(bind=None)  # no database behind the pipeline any more
    edge = PipeEdge(app.pipeline, app.outbox, utc_now, 1_000_000)
    assert edge.deliver_bytes(make_mail(), ENVELOPE) == os.EX_TEMPFAIL


def test_a_store_failure_names_the_reason_but_never_the_message(
    make_settings: Callable[..., Settings], db_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    app = build_app(make_settings(db_url))
    with app.engine.begin() as conn:  # break the real store underneath the edge
        conn.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_gone"))
    edge = PipeEdge(app.pipeline, app.outbox, utc_now, 1_000_000)
    envelope = Envelope("pipe", "stdin", "zebra-7731@acme.example", ("support@example.com",))
    assert edge.deliver_bytes(make_mail(), envelope) == os.EX_TEMPFAIL
    out, err = capfd.readouterr()
    assert "inbound_message" in err  # the driver's reason reaches the MTA's log
    # ...but not the SQL parameters (here: the envelope sender; the message itself).
    assert "zebra-7731" not in out + err and "parameters" not in out + err


def test_a_redelivery_finishes_what_an_earlier_run_left_unprocessed(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """The MTA re-delivers only when a run stored but never exited 0 (killed, timed out)."""
    app = build_app(make_settings(db_url))
    edge = PipeEdge(app.pipeline, app.outbox, utc_now, 1_000_000)
    raw = make_mail()
    assert edge.deliver_bytes(raw, ENVELOPE, process=False) == os.EX_OK  # the cut-short run
    assert edge.deliver_bytes(raw, ENVELOPE) == os.EX_OK  # the MTA's retry: a duplicate
    with session_scope(app.sessions) as session:
        assert len(repo.list_tickets(session)) == 1
        assert [r.status for r in repo.list_outbox(session)] == ["sent"]


class HangingRelay:
    """An outbox sender whose relay never answers."""

    async def flush_once(self, limit: int = 20) -> int:
        await asyncio.sleep(600)
        return 0


def test_the_work_after_storing_is_cut_at_the_time_limit_and_still_exits_0(
    make_settings: Callable[..., Settings], capfd: pytest.CaptureFixture[str]
) -> None:
    # Postfix bounces a command that outlives command_time_limit, stored message or not.
    app = build_app(make_settings())
    edge = PipeEdge(app.pipeline, HangingRelay(), utc_now, 1_000_000)  # type: ignore[arg-type]
    assert edge.deliver_bytes(make_mail(), ENVELOPE, process_timeout=0.5) == os.EX_OK
    assert "pipe.time_limit" in capfd.readouterr().err
    with session_scope(app.sessions) as session:
        assert len(repo.list_tickets(session)) == 1  # processed before the relay hung
        assert [r.status for r in repo.list_outbox(session)] == ["queued"]


def test_mta_output_is_bounded_and_cuts_long_lines_without_blank_ones() -> None:
    sink = io.StringIO()
    out = MtaOutput(sink, limit=1000, line_limit=100)
    out.write("x" * 250)  # a long line written in two calls, as print() does
    out.write("\n")
    for n in range(200):
        out.write(f"line {n}\n")
    lines = sink.getvalue().splitlines()
    assert lines[0] == "x" * 99 + "…" and all(lines)
    assert len(sink.getvalue().encode()) <= 1000
    assert lines[-1] == MtaOutput.MARKER.strip() and "line 199" not in lines


def test_mta_output_swallows_a_broken_pipe_and_silences_the_descriptor() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the MTA stopped reading
    stream = open(write_end, "w", encoding="utf-8")  # noqa: SIM115  # closed below
    out = MtaOutput(stream)
    out.write("first\n")  # EPIPE underneath
    out.write("second\n")
    assert out.silent
    stream.write("the interpreter's own flush at exit\n")
    stream.close()  # /dev/null now: no BrokenPipeError


REPO = Path(__file__).resolve().parents[3]


def deliver_with_closed_stderr(
    args: list[str], raw: bytes, cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    """``intake deliver`` whose stderr reader went away before it wrote (pipe(8) did)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "intake", "deliver", *args],
            input=raw,
            stdout=write_end,
            stderr=write_end,
            cwd=cwd,
            env={k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")},
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    ("fault", "status"),
    [(None, os.EX_OK), ("processing", os.EX_OK), ("store", os.EX_TEMPFAIL)],
    ids=["stored", "processing-fails", "store-fails"],
)
def test_a_broken_stderr_pipe_never_changes_the_exit_status(
    tmp_path: Path, fault: str | None, status: int
) -> None:
    db = tmp_path / "intake.db"
    config = tmp_path / "intake.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n[outbound]\ndirectory = "{tmp_path / "out"}"\n'
    )
    app = build_app(load_settings(config, {}))
    with app.engine.begin() as conn:
        if fault == "processing":  # COMMIT 2 fails with a long traceback
            conn.execute(text("CREATE TABLE gone (x INTEGER)"))
            trigger = (
                "CREATE TRIGGER f BEFORE INSERT ON ticket BEGIN INSERT INTO gone VALUES (1); END"
            )
            conn.execute(text(trigger))
            conn.execute(text("DROP TABLE gone"))
        if fault == "store":
            conn.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_gone"))
    app.engine.dispose()
    done = deliver_with_closed_stderr(
        ["--config", str(config), "--sender", "jane@acme.example"], make_mail(), tmp_path
    )
    assert done.returncode == status
    if fault != "store":
        with session_scope(app.sessions) as session:
            assert len(repo.list_inbound(session, "failed" if fault else "processed")) == 1


@pytest.mark.parametrize(
    "args",
    [["--recipent", "x@example.com"], ["--config", "/nonexistent/intake.toml"]],
    ids=["usage", "config"],
)
def test_a_command_line_mistake_defers_instead_of_bouncing(tmp_path: Path, args: list[str]) -> None:
    """A typo in master.cf's argv: 75, so the MTA keeps the mail until it is fixed."""
    done = deliver_with_closed_stderr(args, make_mail(), tmp_path)
    assert done.returncode == os.EX_TEMPFAIL
