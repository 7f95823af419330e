"""A real Postfix in front of intake: pipe(8) into ``intake deliver``, and relaying to serve.

Each test starts a private Postfix (tests/postfix.py) and reads its maillog: every
message must end ``status=sent`` and none ``status=bounced``, and the store must hold
one ticket per message. The pipe runs the README's master.cf line, as ``nobody``, with
``--config`` in argv (pipe(8) passes no ``INTAKE_*`` variables).
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from intake.app import build_app
from intake.settings import Settings, load_settings
from store.db import make_engine
from store.models import InboundMessage, Ticket
from tests.conftest import make_mail, wait_for
from tests.postfix import (
    PIPE_USER,
    PrivatePostfix,
    free_port,
    pipe_service,
    postfix_missing,
    python_for,
)

pytestmark = [
    pytest.mark.postfix,
    pytest.mark.fault,
    pytest.mark.skipif(postfix_missing() is not None, reason=postfix_missing() or ""),
]

INTAKE = [sys.executable, "-m", "intake"]  # serve runs as root, like the tests
SUPPORT = "support@example.com"
HELP = "help@example.com"
# What the README's master.cf says, with this venv and this test's config file.
# Each pipe(8) delivery starts a Python process: 25 keep the test near half a minute on a
# loaded 2-core machine; the relay test (one daemon) carries the 200.
PIPED = 25
ARGV = ("deliver", "--sender=${sender}", "--recipient=${recipient}")


def intake_config(base: Path) -> Path:
    """A config file and a store under ``base/intake`` that the pipe user can write."""
    home = base / "intake"
    home.mkdir()
    config = base / "intake.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{home / "intake.db"}"\n'
        f'[outbound]\ndirectory = "{home / "outbox"}"\n'
        '[logging]\nformat = "json"\n'
        # One sender sends every message here: the flood limits would hold most of them back.
        "[intake]\nflood_per_address = 1000000\nflood_per_domain = 1000000\n"
        "reflection_per_ip = 1000000\nreflection_per_domain = 1000000\n"
    )
    return config


def prepare_store(config: Path, fault: Sequence[str] = ()) -> Settings:
    """Schema and thread secret made once here (not by racing pipe runs), owned by nobody."""
    settings = load_settings(config, {})
    app = build_app(settings)
    with app.engine.begin() as conn:
        for statement in fault:
            conn.execute(text(statement))
    app.engine.dispose()
    user = pwd.getpwnam(PIPE_USER)
    home = config.parent / "intake"
    for path in [home, *home.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    return settings


def counts(settings: Settings) -> tuple[int, int, int, list[str]]:
    """(inbound rows, distinct Message-IDs, tickets, inbound statuses)."""
    engine = make_engine(settings.database.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(InboundMessage.message_id, InboundMessage.status)).all()
            tickets = conn.execute(select(func.count()).select_from(Ticket)).scalar_one()
    finally:
        engine.dispose()
    return len(rows), len({r.message_id for r in rows}), tickets, sorted({r.status for r in rows})


def envelope(settings: Settings, message_id: str) -> tuple[str | None, list[str]]:
    """The stored envelope (sender, recipients) of the one message with that Message-ID."""
    engine = make_engine(settings.database.url)
    try:
        with engine.connect() as conn:
            [row] = conn.execute(
                select(InboundMessage.envelope_from, InboundMessage.envelope_to).where(
                    InboundMessage.message_id.contains(message_id)
                )
            ).all()
    finally:
        engine.dispose()
    return row[0], sorted(row[1])


def mails(count: int, prefix: str) -> list[tuple[str, list[str], bytes]]:
    return [
        (
            "jane@acme.example",
            [SUPPORT],
            make_mail(message_id=f"<{prefix}-{n}@acme.example>"),
        )
        for n in range(count)
    ]


@pytest.fixture
def pipe_postfix() -> Iterator[tuple[PrivatePostfix, Path]]:
    """Postfix whose example.com goes to ``intake deliver`` through pipe(8)."""
    mta = PrivatePostfix.create(
        transport={"example.com": "intake:"},
        services={},
        # Four pipe runs at a time: enough to overlap, gentle on a loaded 2-core machine.
        main_extra={"intake_destination_concurrency_limit": "4"},
    )
    config = intake_config(mta.base)
    python = python_for(PIPE_USER, mta.base)
    if python is None:
        mta.destroy()
        pytest.skip(f"no python {PIPE_USER} may execute (the venv's is not world-executable)")
    argv = [*python, ARGV[0], "--config", str(config), *ARGV[1:]]
    mta.services = {"intake": pipe_service(argv)}
    mta.configure()
    try:
        yield mta, config
    finally:
        mta.destroy()


def test_postfix_pipes_every_message_into_one_ticket_and_bounces_none(
    pipe_postfix: tuple[PrivatePostfix, Path],
) -> None:
    mta, config = pipe_postfix
    settings = prepare_store(config)
    mta.start()
    batch = mails(PIPED, "pipe")
    # To two of our addresses: pipe(8) expands --recipient=${recipient} into two arguments.
    batch.append(("jane@acme.example", [SUPPORT, HELP], make_mail(message_id="<pipe-2rcpt@x>")))
    # From <>: null_sender= makes ${sender} empty instead of MAILER-DAEMON (no ticket).
    batch.append(("", [SUPPORT], make_mail(message_id="<pipe-null@x>")))
    mta.send(batch)

    mta.wait_for_status("sent", PIPED + 3, timeout=300)  # one line per recipient
    assert "bounced" not in mta.statuses()
    inbound, distinct, tickets, _ = counts(settings)
    assert (inbound, distinct, tickets) == (PIPED + 2, PIPED + 2, PIPED + 1)
    assert envelope(settings, "pipe-2rcpt@x") == ("jane@acme.example", sorted([HELP, SUPPORT]))
    assert envelope(settings, "pipe-null@x") in (("", [SUPPORT]), (None, [SUPPORT]))


def test_a_processing_failure_after_storing_is_not_bounced(
    pipe_postfix: tuple[PrivatePostfix, Path],
) -> None:
    """A store fault in COMMIT 2 (every ticket insert fails): stored, exit 0, no bounce."""
    mta, config = pipe_postfix
    # A trigger writing to a table that is gone: an OperationalError (not an integrity
    # clash) inside COMMIT 2, so the pipeline logs it with its traceback (several KB).
    fault = (
        "CREATE TABLE injected_fault (x INTEGER)",
        "CREATE TRIGGER injected_fault BEFORE INSERT ON ticket "
        "BEGIN INSERT INTO injected_fault VALUES (1); END",
        "DROP TABLE injected_fault",
    )
    settings = prepare_store(config, fault)
    mta.start()
    mta.send(mails(6, "fault"))

    sent = mta.wait_for_status("sent", 6, timeout=180)
    assert "bounced" not in mta.statuses() and "deferred" not in mta.statuses()
    assert not any("Traceback" in line for line in sent)  # what pipe(8) read: no traceback
    inbound, distinct, tickets, statuses = counts(settings)
    assert (inbound, distinct, tickets) == (6, 6, 0)
    assert statuses == ["failed"]  # due again: the daemon's sweep retries them


class Serve:
    """``intake serve`` as a subprocess on a fixed port, stopped and started at will."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *INTAKE,
                    "serve",
                    "--config",
                    str(self.config),
                    "--listen",
                    f"127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=log,
                env={k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")},
            )
        wait_for(self.listening, timeout=60)

    def listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
            self.process = None


@pytest.fixture
def serve_behind_postfix(tmp_path: Path) -> Iterator[tuple[PrivatePostfix, Serve, Settings]]:
    port = free_port()
    config = tmp_path / "intake.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "intake.db"}"\n'
        f'[outbound]\ndirectory = "{tmp_path / "outbox"}"\n'
        # One sender sends every message here: the flood limits would hold most of them back.
        "[intake]\nsweep_interval = 0.5\nflood_per_address = 1000000\nflood_per_domain = 1000000\n"
        "reflection_per_ip = 1000000\nreflection_per_domain = 1000000\n"
        '[web]\nlisten = "127.0.0.1:0"\n'  # a free port: 8025 may be another daemon's
        '[logging]\nformat = "json"\n'
    )
    mta = PrivatePostfix.create(transport={"example.com": f"smtp:[127.0.0.1]:{port}"})
    serve = Serve(config, port, tmp_path / "serve.log")
    try:
        yield mta, serve, load_settings(config, {})
    finally:
        serve.stop()
        mta.destroy()


def test_postfix_defers_through_an_intake_outage_then_delivers_every_message_once(
    serve_behind_postfix: tuple[PrivatePostfix, Serve, Settings],
) -> None:
    mta, serve, settings = serve_behind_postfix
    mta.start()
    serve.start()
    mta.send(mails(50, "before"))
    mta.wait_for_status("sent", 50, timeout=180)

    serve.stop()  # the outage: Postfix keeps what it accepts and defers it
    mta.send(mails(150, "during"))
    mta.wait_for_status("deferred", 150, timeout=180)
    assert len(mta.statuses()["sent"]) == 50

    serve.start()
    mta.flush()  # retry now rather than at the next queue run
    mta.wait_for_status("sent", 200, timeout=300)
    assert "bounced" not in mta.statuses()
    wait_for(lambda: not list(mta.queue_ids()), timeout=60)  # nothing left to retry

    def all_ticketed() -> bool:
        return counts(settings)[2] >= 200

    wait_for(all_ticketed, timeout=300, interval=0.5)
    inbound, distinct, tickets, statuses = counts(settings)
    assert (inbound, distinct, tickets) == (200, 200, 200)
    assert statuses == ["processed"]
