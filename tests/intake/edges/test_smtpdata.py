"""DATA read in bulk (``intake.edges.smtpdata``): the same bytes as aiosmtpd's own loop.

Three ways: the reader against RFC 5321 §4.5.2's receiver rule applied line by line, on
arbitrary wire data cut into arbitrary segments; the daemon against a stock aiosmtpd
server (the relay sink) on the same raw sessions; and the session rules around it (552,
a pipelined command after the end, a client that hangs up mid-DATA).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from intake.edges.smtpdata import read_data
from intake.settings import Settings
from store.db import session_scope
from store.models import InboundMessage
from tests.conftest import RunningDaemon, Sink, make_mail, start_daemon, stop_daemon, wait_for

NEXT = b"QUIT\r\n"  # a command the client pipelines after the end (RFC 2920 §3.1)


def by_lines(wire: bytes) -> tuple[bytes, bytes]:
    """RFC 5321 §4.5.2 as the receiver applies it, one CRLF line at a time: a line that is
    a lone period ends the data; a first period on any other line is deleted. Returns
    (the data, what follows the end line)."""
    kept, at = [], 0
    while True:
        end = wire.index(b"\r\n", at) + 2
        line = wire[at:end]
        at = end
        if line == b".\r\n":
            return b"".join(kept), wire[at:]
        kept.append(line[1:] if line.startswith(b".") else line)


def feed(wire: bytes, cuts: list[int], limit: int = 1 << 16) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    at = 0
    for cut in sorted(cuts):
        reader.feed_data(wire[at:cut])
        at = cut
    reader.feed_data(wire[at:])
    reader.feed_eof()
    return reader


async def read_all(
    wire: bytes, cuts: list[int], limit: int | None, stream_limit: int
) -> tuple[bytes | None, bytes]:
    reader = feed(wire, cuts, stream_limit)
    content = await read_data(reader, limit)
    return content, await reader.read()


@given(
    # Wire data made of what matters here: periods, CR and LF alone or together, text.
    before=st.text(alphabet=".\r\na", max_size=200).map(str.encode),
    cuts=st.lists(st.integers(min_value=0, max_value=220), max_size=8),
    stream_limit=st.sampled_from([4, 7, 64, 1 << 16]),
)
@settings(max_examples=500, deadline=None)
def test_bulk_read_gives_what_the_line_by_line_rule_gives(
    before: bytes, cuts: list[int], stream_limit: int
) -> None:
    wire = before + b"\r\n.\r\n" + NEXT  # an end line for sure, maybe an earlier one
    expected, rest = by_lines(wire)
    got, after = asyncio.run(read_all(wire, cuts, None, stream_limit))
    assert got == expected
    assert after == rest  # what follows the end (a pipelined command) is left unread


@pytest.mark.parametrize(
    ("wire", "content"),
    [
        (b".\r\n", b""),
        (b"\r\n.\r\n", b"\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\n.\r\n", b"..\r\n"),
        (b"a.\r\n.\r\n", b"a.\r\n"),
        (b"a\r\n..b\r\n.\r\n", b"a\r\n.b\r\n"),
        (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n"),  # a bare LF ends no line (RFC 5321 §2.3.8)
        (b"a\r\n. \r\n.\r\n", b"a\r\n \r\n"),
    ],
    ids=[
        "empty",
        "one-empty-line",
        "stuffed-dot",
        "two-dots",
        "line-ending-in-dot",
        "stuffed-line",
        "bare-lf-dot",
        "dot-space",
    ],
)
def test_end_line_and_transparency(wire: bytes, content: bytes) -> None:
    for cuts in ([], list(range(len(wire)))):  # whole, and one octet per segment
        got, after = asyncio.run(read_all(wire + NEXT, cuts, None, 1 << 16))
        assert (got, after) == (content, NEXT)


@pytest.mark.parametrize(
    ("size", "kept"), [(99, False), (100, True)], ids=["over-by-one", "at-the-limit"]
)
@pytest.mark.parametrize("stream_limit", [8, 1 << 16], ids=["overrun", "roomy"])
def test_size_limit_counts_the_data_as_sent_and_reads_to_the_end(
    size: int, kept: bool, stream_limit: int
) -> None:
    # 100 octets on the wire before the end line, stuffed periods and CRLFs included.
    wire = b"." * 98 + b"\r\n" + b".\r\n" + NEXT
    got, after = asyncio.run(read_all(wire, [50], size, stream_limit))
    assert after == NEXT  # read to its end either way, so the 552 is the next answer
    assert got == (b"." * 97 + b"\r\n" if kept else None)


def test_stream_ending_before_the_end_line_raises() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(read_all(b"a\r\nb\r\n", [], None, 1 << 16))


# ------------------------------------------------------------- against aiosmtpd's server


def session(port: int, wire: bytes) -> list[bytes]:
    """One raw session: envelope, DATA, ``wire`` (its end and a pipelined QUIT), replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        file = sock.makefile("rb")
        replies = [file.readline()]
        for command in (
            b"EHLO raw.test",
            b"MAIL FROM:<jane@acme.example>",
            b"RCPT TO:<support@example.com>",
            b"DATA",
        ):
            sock.sendall(command + b"\r\n")
            while (line := file.readline())[3:4] == b"-":
                pass
            replies.append(line)
        sock.sendall(wire + b".\r\n" + NEXT)
        replies += [file.readline(), file.readline()]
    return [r[:3] for r in replies]


HEADERS = b"From: jane@acme.example\r\nSubject: Acme Corp - 1 Main St - dots - P3\r\n\r\n"
RAW_SESSIONS = {
    "stuffed-lines": HEADERS + b"..leading\r\n...two\r\nend.\r\n",
    "bare-lf-and-cr": HEADERS + b"a\n.\nb\rc\r\n.\n\r\n",
    "long-line": HEADERS + b"x" * 990 + b".\r\n",  # under stock aiosmtpd's 1,001
    "plain": HEADERS + b"last line\r\n",
}


@pytest.mark.parametrize("wire", RAW_SESSIONS.values(), ids=RAW_SESSIONS.keys())
def test_the_daemon_stores_what_a_stock_aiosmtpd_receives(
    daemon: RunningDaemon, sink: Sink, wire: bytes
) -> None:
    assert session(sink.port, wire) == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]
    assert session(daemon.port, wire) == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]

    def stored() -> list[bytes]:
        with session_scope(daemon.app.sessions) as s:
            return list(s.execute(select(InboundMessage.raw)).scalars())

    assert wait_for(stored) == [sink.messages[0].original_content]


def crlf(raw: bytes) -> bytes:
    """SMTP lines end in CRLF (RFC 5321 §2.3.8), the last one included."""
    return raw.replace(b"\r\n", b"\n").rstrip(b"\n").replace(b"\n", b"\r\n") + b"\r\n"


def test_over_the_size_a_552_after_the_data_and_the_session_goes_on(
    make_settings: Callable[..., Settings],
) -> None:
    running = start_daemon(make_settings(**{"smtp.max_message_size": 2000}))
    try:
        big = crlf(make_mail(body=("x" * 70 + "\n") * 100))
        with socket.create_connection((running.host, running.port), timeout=10) as sock:
            file = sock.makefile("rb")
            file.readline()
            sock.sendall(b"HELO raw.test\r\n")
            file.readline()
            for raw in (big, crlf(make_mail())):
                for command in (b"MAIL FROM:<jane@acme.example>", b"RCPT TO:<support@example.com>"):
                    sock.sendall(command + b"\r\n")
                    assert file.readline()[:3] == b"250"
                sock.sendall(b"DATA\r\n")
                assert file.readline()[:3] == b"354"
                sock.sendall(raw + b".\r\n")
                code = file.readline()[:3]
                assert code == (b"552" if raw is big else b"250")

        def stored() -> int:
            with session_scope(running.app.sessions) as s:
                return len(list(s.execute(select(InboundMessage.id)).scalars()))

        assert wait_for(stored) == 1  # the second mail only
    finally:
        stop_daemon(running)
