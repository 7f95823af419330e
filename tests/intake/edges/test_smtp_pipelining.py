"""PIPELINING (RFC 2920) on the SMTP listener, over real SMTP on loopback.

EHLO offers it. A client's group (MAIL, RCPT, DATA sent without waiting) gets every
reply, in order, and the replies to the grouped commands leave in one write with the
next reply that does not wait; a multi-line reply leaves in one write. A reply never
waits for a command that is still arriving, nor past the end of the session. HELP still
names the commands the listener wraps, its address parsing answers as aiosmtpd's, and
what aiosmtpd looks up by name on each new session is all found.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from intake.edges.smtp import IntakeHandler, IntakeSMTP
from intake.settings import Settings
from store.db import session_scope
from store.models import InboundMessage
from tests.conftest import (
    RunningDaemon,
    make_mail,
    needs_swaks,
    start_daemon,
    stop_daemon,
    swaks,
    tickets,
    wait_for,
)

SUPPORT = b"support@example.com"


@pytest.fixture
def daemon(make_settings: Callable[..., Settings]) -> Iterator[RunningDaemon]:
    running = start_daemon(make_settings())
    yield running
    stop_daemon(running)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What the daemon's sessions write, one item per write to their transport."""
    seen: list[bytes] = []
    lock = threading.Lock()
    original = asyncio.StreamWriter.write

    def write(self: asyncio.StreamWriter, data: Any) -> None:
        with lock:
            seen.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", write)
    return seen


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").rstrip(b"\n").replace(b"\n", b"\r\n") + b"\r\n"


class Raw:
    """A raw client: send bytes, read reply lines (a multi-line reply as its last line)."""

    def __init__(self, daemon: RunningDaemon) -> None:
        self.sock = socket.create_connection((daemon.host, daemon.port), timeout=30)
        self.file = self.sock.makefile("rb")

    def greeted(self) -> Raw:
        """Past the greeting and EHLO."""
        assert self.reply()[:3] == b"220"
        self.sock.sendall(b"EHLO raw.test\r\n")
        assert self.reply()[:3] == b"250"
        return self

    def reply(self) -> bytes:
        while (line := self.file.readline())[3:4] == b"-":
            pass
        return line

    def replies(self, count: int) -> list[bytes]:
        return [self.reply()[:3] for _ in range(count)]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def stored(daemon: RunningDaemon) -> int:
    with session_scope(daemon.app.sessions) as s:
        return int(s.execute(select(func.count()).select_from(InboundMessage)).scalar_one())


def test_ehlo_offers_pipelining(daemon: RunningDaemon) -> None:
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as client:
        code, _ = client.ehlo("client.test")
        assert code == 250
        assert client.has_extn("pipelining")
        assert client.has_extn("size") and client.has_extn("8bitmime")
        # The hook that adds it keeps the HELO state aiosmtpd needs before MAIL.
        assert client.mail("jane@acme.example")[0] == 250


def test_a_group_gets_every_reply_in_order_and_its_mail_is_stored(daemon: RunningDaemon) -> None:
    client = Raw(daemon)
    try:
        assert client.reply()[:3] == b"220"
        client.sock.sendall(
            b"EHLO raw.test\r\nMAIL FROM:<jane@acme.example>\r\nRCPT TO:<support@example.com>\r\n"
            b"RCPT TO:<someone@elsewhere.example>\r\nDATA\r\n"
        )
        assert client.replies(5) == [b"250", b"250", b"250", b"550", b"354"]
        client.sock.sendall(crlf(make_mail()) + b".\r\nQUIT\r\n")
        assert client.replies(2) == [b"250", b"221"]
    finally:
        client.close()
    assert wait_for(lambda: stored(daemon)) == 1


def test_grouped_replies_and_a_multi_line_reply_leave_in_one_write(
    daemon: RunningDaemon, writes: list[bytes]
) -> None:
    client = Raw(daemon).greeted()
    try:
        group = b"MAIL FROM:<jane@acme.example>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n"
        client.sock.sendall(group)
        assert client.replies(3) == [b"250", b"250", b"354"]
    finally:
        client.close()
    ehlo = [w for w in writes if w.startswith(b"250-")]
    assert len(ehlo) == 1 and b"250-PIPELINING\r\n" in ehlo[0] and ehlo[0].endswith(b"\r\n")
    assert ehlo[0].count(b"\r\n") == ehlo[0].count(b"250-") + 1  # the last line, "250 "
    [together] = [w for w in writes if b"354 " in w]
    assert together.split(b"\r\n")[:3] == [
        b"250 OK",
        b"250 2.1.5 OK",
        b"354 End data with <CR><LF>.<CR><LF>",
    ]


def test_a_reply_does_not_wait_for_a_command_still_arriving(daemon: RunningDaemon) -> None:
    client = Raw(daemon).greeted()
    try:
        # A whole MAIL and the start of the next line: MAIL is answered now (RFC 2920 §3.1:
        # pending replies go out once the input buffer holds no command to answer).
        client.sock.sendall(b"MAIL FROM:<jane@acme.example>\r\nRCPT TO:<support@exa")
        assert client.reply()[:3] == b"250"
        client.sock.sendall(b"mple.com>\r\n")
        assert client.reply()[:3] == b"250"
    finally:
        client.close()


GROUPS_THAT_END = {
    "rset-mail-quit": (b"RSET\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n", [b"250", b"250", b"221"]),
    "mail-rcpt-quit-then-junk": (
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<support@example.com>\r\nQUIT\r\nNOOP\r\n",
        [b"250", b"250", b"221"],
    ),
    "mail-then-bad-command": (
        b"MAIL FROM:<a@b.example>\r\nBOGUS\r\nQUIT\r\n",
        [b"250", b"500", b"221"],
    ),
}


@pytest.mark.parametrize(("group", "codes"), GROUPS_THAT_END.values(), ids=list(GROUPS_THAT_END))
def test_every_reply_of_a_group_that_ends_the_session_arrives(
    daemon: RunningDaemon, group: bytes, codes: list[bytes]
) -> None:
    client = Raw(daemon).greeted()
    try:
        client.sock.sendall(group)
        assert client.replies(len(codes)) == codes
        assert client.file.readline() == b""  # then the server closed the connection
    finally:
        client.close()


def test_a_group_past_the_error_limit_gets_its_421_before_the_close(
    daemon: RunningDaemon,
) -> None:
    limit = daemon.app.settings.smtp.max_errors
    client = Raw(daemon).greeted()
    try:
        strangers = b"".join(b"RCPT TO:<s%d@elsewhere.example>\r\n" % n for n in range(limit))
        # More commands follow in the same group: the 421 must not wait for them.
        client.sock.sendall(b"MAIL FROM:<a@b.example>\r\n" + strangers + b"NOOP\r\nNOOP\r\n")
        assert client.replies(limit + 2) == [b"250", *[b"550"] * limit, b"421"]
        assert client.file.readline() == b""
    finally:
        client.close()


def test_help_names_the_wrapped_commands_and_their_syntax(daemon: RunningDaemon) -> None:
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as client:
        client.ehlo("client.test")
        listed = client.help().decode().split(":", 1)[1].split()
        assert {"DATA", "MAIL", "RCPT", "RSET"} <= set(listed)
        assert client.help("MAIL") == b"Syntax: MAIL FROM: <address> [SP <mail-parameters>]"
        assert client.help("RCPT") == b"Syntax: RCPT TO: <address> [SP <mail-parameters>]"


@needs_swaks
def test_swaks_pipelining_delivers_a_ticket(daemon: RunningDaemon) -> None:
    result = swaks(
        daemon,
        "--pipeline",
        "--from",
        "noc@customer.example",
        "--to",
        "support@example.com,stranger@elsewhere.example",
        "--header",
        "Subject: Globex – 9 Elm Rd, Austin – Calls drop after 30 s – P2",
        "--body",
        "Phone: 512 555 0101\nSerial: GX-1\nVersion: 16.2\n",
    )
    assert "250 2.0.0 Ok: queued as" in result.stdout, result.stdout + result.stderr
    assert "550 5.1.1" in result.stdout  # the stranger, answered within the group
    [ticket] = wait_for(lambda: tickets(daemon))
    assert ticket.customer == "Globex"


ADDRESS_TEXT = st.text(
    alphabet=st.sampled_from(list('<>@."\\ ()[],:;abcXYZ09-_+=\t\u00e9\u4e2d')), max_size=40
)


@settings(max_examples=400, deadline=None)
@given(
    arg=st.one_of(
        ADDRESS_TEXT,
        st.builds(lambda a, b: f"<{a}@{b}> {a}", ADDRESS_TEXT, ADDRESS_TEXT),
        st.builds(lambda a, b: f"{a}@{b}", ADDRESS_TEXT, ADDRESS_TEXT),
    ),
    limit=st.sampled_from([0, 4, 64]),
)
def test_address_parsing_answers_as_aiosmtpd(arg: str, limit: int) -> None:
    """The same address and rest, except where the stdlib parser raises inside aiosmtpd:
    there the listener answers a malformed address (``None``, so 553) rather than 451."""
    session = SimpleNamespace(local_part_limit=limit)
    ours = IntakeSMTP._getaddr(session, arg)  # type: ignore[arg-type]
    try:
        theirs = SMTP._getaddr(session, arg)  # type: ignore[arg-type]
    except Exception:  # the stdlib parser's failures (IndexError, UnboundLocalError, ...)
        theirs = (None, None)
    assert ours == theirs


def test_a_malformed_address_is_553_not_451(daemon: RunningDaemon) -> None:
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as client:
        client.ehlo("client.test")
        assert client.docmd('MAIL FROM:"')[0] == 553  # aiosmtpd's malformed address
        assert client.mail("jane@acme.example")[0] == 250
        assert client.docmd('RCPT TO:"')[0] == 553
        assert client.docmd("RCPT TO:0@[ ")[0] == 553


INTROSPECTED = {
    "session": (IntakeSMTP, ("smtp_", "auth_"), {"smtp_DATA", "smtp_MAIL", "auth_PLAIN"}),
    "handler": (IntakeHandler, ("handle_", "auth_"), {"handle_EHLO", "handle_DATA"}),
}


@pytest.mark.parametrize(("cls", "prefixes", "some"), INTROSPECTED.values(), ids=list(INTROSPECTED))
def test_what_aiosmtpd_introspects_per_connection_is_all_there(
    cls: type, prefixes: tuple[str, ...], some: set[str]
) -> None:
    """The narrowed ``dir()`` lists every command, AUTH mechanism and hook the full one has."""
    instance: object = object.__new__(cls)
    full = sorted(n for n in object.__dir__(instance) if n.startswith(prefixes))
    assert sorted(dir(instance)) == full
    assert some <= set(full)
