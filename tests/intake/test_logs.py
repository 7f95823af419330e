"""Logging as the composition root wires it: JSON at the configured level, plain tracebacks."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import text

from intake.app import build_app
from intake.logs import Format, StderrLoggerFactory, configure_logging
from intake.settings import Settings
from tests.conftest import configure_test_logging, make_mail, start_daemon, stop_daemon

# What structlog's fallback renderer (rich) draws around a traceback and its locals.
RICH_FRAME = "╭"


@pytest.fixture
def unconfigured() -> Iterator[None]:
    """A process nobody has wired yet (as when a program embeds build_app + serve)."""
    structlog.reset_defaults()
    yield
    configure_test_logging()


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_an_in_process_daemon_logs_json_at_its_configured_level(
    unconfigured: None,
    make_settings: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    daemon = start_daemon(make_settings(**{"logging.level": "WARNING"}))
    try:
        with daemon.app.engine.begin() as conn:  # a store error on the accept path
            conn.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_gone"))
        with smtplib.SMTP(daemon.host, daemon.port, timeout=10) as client:
            client.sendmail("jane@acme.example", ["support@example.com"], make_mail())
    except smtplib.SMTPDataError as exc:
        assert exc.smtp_code == 451
    else:
        pytest.fail("the broken store did not answer 451")
    finally:
        stop_daemon(daemon)

    err = capsys.readouterr().err
    assert "jane@acme.example" not in err  # SQL parameters (the envelope) stay out of logs
    events = json_lines(err)
    assert {e["level"] for e in events} <= {"warning", "error", "critical"}
    assert "intake.started" not in {e["event"] for e in events}  # INFO is filtered out
    [failed] = [e for e in events if e["event"] == "ingest.failed"]
    assert failed["level"] == "error" and failed["message_id"]
    assert RICH_FRAME not in err  # no rich traceback (with its locals) on any line


def test_a_second_app_keeps_the_logging_the_process_has(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    app = build_app(make_settings(**{"logging.level": "ERROR", "logging.format": "console"}))
    app.engine.dispose()
    structlog.get_logger("tests").info("still.wired", ticket="TKT-1")
    [event] = json_lines(capsys.readouterr().err)
    assert (event["event"], event["level"], event["ticket"]) == ("still.wired", "info", "TKT-1")


@pytest.mark.parametrize("fmt", ["json", "console"], ids=["json", "console"])
def test_exceptions_render_as_plain_text_without_locals(unconfigured: None, fmt: Format) -> None:
    stream = io.StringIO()
    configure_logging("INFO", fmt, stream)
    try:
        body_text = "the customer's message body"
        raise ValueError(len(body_text))
    except ValueError:
        structlog.get_logger("tests").exception("message.failed", inbound_id=7)
    out = stream.getvalue()
    assert "Traceback (most recent call last):" in out and "ValueError: 27" in out
    assert "the customer's message body" not in out  # a local's value, shown only by rich
    assert RICH_FRAME not in out


@pytest.mark.parametrize("fmt", ["json", "console"], ids=["json", "console"])
def test_without_tracebacks_an_exception_is_one_line_naming_its_type(
    unconfigured: None, fmt: Format
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", fmt, stream, tracebacks=False)  # as `intake deliver` runs
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("tests").exception("message.failed", inbound_id=7)
    out = stream.getvalue()
    assert out.count("\n") == 1 and "Traceback" not in out
    assert "ValueError" in out and "message.failed" in out


@pytest.mark.parametrize(
    ("level", "announced"), [("DEBUG", True), ("INFO", False)], ids=["debug", "info"]
)
def test_debug_logging_says_it_may_show_message_content(
    unconfigured: None, level: Any, announced: bool
) -> None:
    stream = io.StringIO()
    configure_logging(level, "json", stream)
    events = [line["event"] for line in json_lines(stream.getvalue())]
    assert ("logging.debug_enabled" in events) is announced


def _log_lines_to(path: str, tag: str) -> None:
    """A spawned process logging through intake's logger factory onto a shared stderr."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 2)  # stderr is the shared file, as a daemon's and its child's are
    logger = StderrLoggerFactory()()
    for n in range(2000):
        logger.msg(json.dumps({"who": tag, "n": n, "pad": "x" * 1200}))


def test_processes_sharing_stderr_never_split_each_others_lines(tmp_path: Path) -> None:
    """The daemon and its processing process write to one stderr: every line stays whole
    (print() wrote a line and its newline apart, and another process's line landed
    between them)."""
    path = str(tmp_path / "shared.log")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_log_lines_to, args=(path, t)) for t in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    lines = Path(path).read_text().splitlines()
    assert len(lines) == 4000
    assert all(json.loads(line)["pad"] for line in lines)
