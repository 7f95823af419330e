"""The listener's flood limits, over real SMTP on loopback (raw sockets, smtplib).

Sessions at once in total and per client IP (421 4.7.0 as the greeting beyond either,
and a slot is free again once a session ends), the bytes of DATA held in memory at once
(452 4.3.1 to MAIL while reached, 250 again once the DATA holding them is answered), and
``smtp.timeout`` ending a DATA trickled in slowly, which frees its slot.
"""

from __future__ import annotations

import select
import smtplib
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from intake.settings import Settings
from tests.conftest import RunningDaemon, make_mail, start_daemon, stop_daemon, wait_for

MIB = 1024 * 1024


@pytest.fixture
def limited(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., RunningDaemon]]:
    running: list[RunningDaemon] = []

    def start(**overrides: object) -> RunningDaemon:
        daemon = start_daemon(make_settings(**overrides))
        running.append(daemon)
        return daemon

    yield start
    for daemon in running:
        stop_daemon(daemon)


def greeting(daemon: RunningDaemon, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """Connect from ``source`` (any 127/8 address is loopback) and read the first line."""
    sock = socket.create_connection((daemon.host, daemon.port), 30, (source, 0))
    return sock, sock.makefile("rb").readline()


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(30)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def wait_for_greeting(daemon: RunningDaemon, source: str = "127.0.0.1") -> socket.socket:
    """A new session gets 220 once a closed one (start_daemon's port probe, or one the
    test closed) is gone from the server's count, on one of its next loop turns."""

    def attempt() -> socket.socket | None:
        sock, line = greeting(daemon, source)
        if line.startswith(b"220"):
            return sock
        sock.close()
        return None

    result: socket.socket = wait_for(attempt, timeout=30)
    return result


def test_sessions_beyond_the_total_get_421_and_a_closed_one_frees_its_slot(
    limited: Callable[..., RunningDaemon],
) -> None:
    daemon = limited(**{"smtp.max_sessions": 3, "smtp.max_sessions_per_ip": 10})
    with ExitStack() as stack:
        idle = []
        for _ in range(3):
            sock = wait_for_greeting(daemon)
            stack.callback(sock.close)
            idle.append(sock)
        sock, line = greeting(daemon)
        stack.callback(sock.close)
        assert line == b"421 4.7.0 Too many sessions, try again later\r\n"
        assert closed_by_server(sock)

        idle.pop().close()
        stack.callback(wait_for_greeting(daemon).close)
        sock, line = greeting(daemon)  # and the freed slot is taken again
        stack.callback(sock.close)
        assert line.startswith(b"421 4.7.0"), line
    labels = {"command": "CONNECT", "code": "421"}
    refused = daemon.app.metrics.registry.get_sample_value("intake_smtp_replies_total", labels)
    assert refused is not None and refused >= 2


def test_sessions_beyond_the_per_ip_limit_get_421_other_addresses_still_connect(
    limited: Callable[..., RunningDaemon],
) -> None:
    daemon = limited(**{"smtp.max_sessions": 10, "smtp.max_sessions_per_ip": 2})
    with ExitStack() as stack:
        for _ in range(2):
            stack.callback(wait_for_greeting(daemon).close)
        sock, line = greeting(daemon)
        stack.callback(sock.close)
        assert line == b"421 4.7.0 Too many sessions from your address, try again later\r\n"
        assert closed_by_server(sock)
        sock, line = greeting(daemon, source="127.0.0.2")
        stack.callback(sock.close)
        assert line.startswith(b"220"), line
    # With all of them closed, the first address may connect again.
    wait_for_greeting(daemon).close()


def mail_reply(daemon: RunningDaemon) -> tuple[int, bytes]:
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as connection:
        connection.ehlo("client.test")
        return connection.mail("jane@acme.example")


def test_mail_gets_452_while_data_in_flight_is_at_the_limit_and_250_once_answered(
    limited: Callable[..., RunningDaemon],
) -> None:
    """A DATA from a client that declared no SIZE counts as its bytes arrive (issue 13)."""
    daemon = limited(**{"smtp.max_message_size": 4 * MIB, "smtp.max_data_in_flight": MIB})
    raw = make_mail(message_id="<large@acme.example>").replace(b"\n", b"\r\n")
    filler = b"x" * 998 + b"\r\n"
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as large:
        large.ehlo("client.test")
        # smtplib's mail() sends no SIZE= (only sendmail() adds it): nothing is reserved
        # at MAIL, so only the DATA bytes below can fill the cap.
        assert large.mail("jane@acme.example")[0] == 250
        assert mail_reply(daemon)[0] == 250  # a MAIL without SIZE holds nothing yet
        large.rcpt("support@example.com")
        assert large.docmd("DATA")[0] == 354
        large.send(raw + filler * (3 * MIB // 2 // len(filler)))  # 1.5 MiB, not ended

        # Another session's new transaction waits until the DATA above is answered.
        assert wait_for(lambda: mail_reply(daemon)[0] == 452, timeout=30)
        code, text = mail_reply(daemon)
        assert (code, text) == (452, b"4.3.1 Insufficient system storage, try again later")

        large.send(b".\r\n")
        code, text = large.getreply()
        assert code == 250, text
    assert mail_reply(daemon)[0] == 250
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as small:
        assert small.sendmail("jane@acme.example", ["support@example.com"], make_mail()) == {}


def test_a_declared_size_is_reserved_at_mail_so_sessions_cannot_all_pass_at_once(
    limited: Callable[..., RunningDaemon],
) -> None:
    daemon = limited(**{"smtp.max_message_size": 4 * MIB, "smtp.max_data_in_flight": MIB})
    size = [f"SIZE={600 * 1024}"]  # RFC 1870: what MTAs declare; two do not fit in 1 MiB
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(smtplib.SMTP(daemon.host, daemon.port, timeout=30)) for _ in "ab"
        )
        first.ehlo("client.test")
        second.ehlo("client.test")
        assert first.mail("jane@acme.example", size)[0] == 250  # no DATA byte sent yet
        assert second.mail("jane@acme.example", size)[0] == 452
        assert second.mail("jane@acme.example")[0] == 250  # no SIZE: counted as it arrives
        second.rset()
        assert first.rset()[0] == 250  # the transaction ends: its reservation goes
        assert second.mail("jane@acme.example", size)[0] == 250
        second.rcpt("support@example.com")
        assert second.data(make_mail())[0] == 250
        assert first.mail("jane@acme.example", size)[0] == 250  # answered: room again


def test_a_client_hanging_up_mid_data_lets_go_of_its_bytes(
    limited: Callable[..., RunningDaemon],
) -> None:
    daemon = limited(**{"smtp.max_message_size": 4 * MIB, "smtp.max_data_in_flight": MIB})
    gone = smtplib.SMTP(daemon.host, daemon.port, timeout=30)
    gone.ehlo("client.test")
    gone.mail("jane@acme.example")
    gone.rcpt("support@example.com")
    assert gone.docmd("DATA")[0] == 354
    gone.send((b"y" * 998 + b"\r\n") * 1600)  # 1.5 MiB, not ended
    assert wait_for(lambda: mail_reply(daemon)[0] == 452, timeout=30)
    gone.close()
    assert wait_for(lambda: mail_reply(daemon)[0] == 250, timeout=30)


def test_a_slowly_trickled_data_is_cut_off_after_smtp_timeout_and_frees_its_slot(
    limited: Callable[..., RunningDaemon],
) -> None:
    daemon = limited(**{"smtp.timeout": 1.0, "smtp.max_sessions": 1})

    def session() -> smtplib.SMTP | None:
        try:
            return smtplib.SMTP(daemon.host, daemon.port, timeout=30)
        except smtplib.SMTPConnectError:  # start_daemon's port probe still counted
            return None

    slow: smtplib.SMTP = wait_for(session, timeout=30)
    slow.ehlo("client.test")
    slow.mail("jane@acme.example")
    slow.rcpt("support@example.com")
    assert slow.docmd("DATA")[0] == 354
    assert slow.sock is not None
    sock = slow.sock
    cut_off = False
    # A line every 0.2 s keeps the client busy, never idle: the timeout counts from the
    # DATA command. Bounded: 300 lines (a minute) at most.
    for _ in range(300):
        try:
            sock.sendall(b"Subject: trickle\r\n")
        except OSError:
            cut_off = True
            break
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                cut_off = sock.recv(4096) == b""
            except ConnectionResetError:
                cut_off = True
            if cut_off:
                break
    slow.close()
    assert cut_off
    wait_for_greeting(daemon).close()  # its slot is free
