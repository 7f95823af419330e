"""The SMTP edge: an aiosmtpd listener that accepts mail for the support addresses only.

Thin by design: it turns SMTP events into ``(bytes, Envelope)``, stores them through the
group-commit writer (COMMIT 1) and maps the result onto reply codes (RFC 5321 §4.2,
enhanced status codes per RFC 3463): 250 only after the commit, 451 when the store
failed so the client retries, 550 5.1.1 for any other recipient (never an open relay),
552 above the size limit (``data_size_limit``; the data itself is read in bulk by
``intake.edges.smtpdata``, not line by line as aiosmtpd does). Every RCPT and DATA
answer is counted by code, and each accepted DATA timed, in ``intake.metrics``.

It owns the listener's life as one unit (``SmtpListener``): start, stop accepting (421 to
new sessions and transactions), drain the sessions in DATA within a grace period, close.
And the session rules a mail admin expects from an MTA: ``postmaster`` is accepted (RFC
5321 §4.5.1), lines longer than 1,000 octets are accepted up to the size limit (as
Postfix does; real mail has them), an unexpected error is a 451 rather than aiosmtpd's
permanent 500, and a client that keeps making errors is disconnected with 421 (Postfix's
``smtpd_hard_error_limit``). It offers PIPELINING (RFC 2920): the replies to a client's
group leave in one write, as does each multi-line reply.

And what lets it face the internet as an MX: STARTTLS (RFC 3207) with a certificate that
``reload_tls`` re-reads (SIGHUP; the next session uses it), optionally required before
MAIL (530 5.7.0); a cap on sessions in total and per client IP (421 4.7.0 as the
greeting); and a cap on the bytes of DATA all sessions hold in memory at once, a size
declared at MAIL (RFC 1870) counting from MAIL on (452 4.3.1 to MAIL while it is
reached). ``smtp.timeout`` counts from the last command, so a DATA trickled in slowly
is cut off after it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from email._header_value_parser import get_addr_spec, get_angle_addr
from typing import Any, AnyStr

import structlog
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, TLSSetupException, syntax

from intake.edges.groupcommit import GroupCommitWriter
from intake.edges.smtpdata import read_data
from intake.errors import ConfigError
from intake.logs import raised_at
from intake.metrics import Metrics
from intake.pipeline.core import Clock, prepare_inbound, stored_fields
from intake.pipeline.core import Envelope as IntakeEnvelope
from intake.settings import SmtpSettings
from parsing import address_domain, address_key

# RFC 5321 §4.5.1: "postmaster" (any case) with or without a domain MUST be accepted.
POSTMASTER = "postmaster"
QUEUED = "250 2.0.0 Ok: queued as"
STORE_FAILED = "451 4.3.0 Requested action aborted: message could not be stored, try again"
# Up to this size the idempotency key is computed on the event loop (~0.1 ms at 64 KiB):
# a thread hand-off costs more than hashing a typical report (issue 11). A larger message
# is hashed off the loop, so no session waits behind it.
INLINE_PREPARE = 64 * 1024
# RFC 3463 §3.5: X.3.2 "system not accepting network messages" (we are shutting down).
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors, closing connection"
# RFC 3463 §3.8: X.7.0 "other or undefined security status" (a connection limit is policy).
TOO_MANY_SESSIONS = "421 4.7.0 Too many sessions, try again later"
TOO_MANY_FROM_IP = "421 4.7.0 Too many sessions from your address, try again later"
# TLS 1.2 suites: forward-secret ECDHE with an AEAD cipher only (RFC 7525 §4.2; Mozilla's
# "intermediate" list without its finite-field DHE suites, whose parameters clients cannot
# judge, RFC 7919). No CBC (Lucky 13), no static RSA key exchange (no forward secrecy).
MODERN_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
# RFC 3207 §4: 530 before STARTTLS when TLS is required; RFC 3463 X.7.0.
TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
# RFC 5321 §4.2.2 452 "insufficient system storage" at MAIL; RFC 3463 X.3.1 "mail system full".
DATA_IN_FLIGHT = "452 4.3.1 Insufficient system storage, try again later"

Hook = Callable[..., Awaitable[str]]
Command = Callable[[Any, str | None], Awaitable[None]]
_SIZE = re.compile(r"\sSIZE=(\d{1,20})(?:\s|$)", re.IGNORECASE)


_INTROSPECTED: dict[type, tuple[str, ...]] = {}


def _grouped(command: Command) -> Command:
    """A session's ``smtp_*`` command whose replies may wait for the rest of the group
    (``IntakeSMTP._send``). Wrapped once per class: aiosmtpd binds what it finds by name."""

    @functools.wraps(command)  # keeps aiosmtpd's HELP syntax (``__smtp_syntax__``)
    async def grouped(self: IntakeSMTP, arg: str | None) -> None:
        self.grouping = True
        try:
            await command(self, arg)
        finally:
            self.grouping = False

    return grouped


class _NarrowDir:
    """``dir()`` of an instance lists only what aiosmtpd looks up by name, once per class.

    aiosmtpd's ``SMTP.__init__`` runs ``dir()`` and ``inspect.getmembers()`` on the session
    and on its handler for every connection, to find ``smtp_*``, ``auth_*`` and
    ``handle_*``: ~200 µs, a fifth of what a one-message session costs the listener
    (smtp-source and most MTAs open a connection per message; issue 11). These are
    methods of the class, so the names are found once.
    """

    _DIR_PREFIXES: tuple[str, ...] = ()

    def __dir__(self) -> list[str]:
        cls = type(self)
        names = _INTROSPECTED.get(cls)
        if names is None:
            names = tuple(n for n in dir(cls) if n.startswith(self._DIR_PREFIXES))
            _INTROSPECTED[cls] = names
        return list(names)


def _counted(command: str) -> Callable[[Hook], Hook]:
    """Count a hook's reply by code; time an accepted DATA (its 250 follows COMMIT 1)."""

    def wrap(hook: Hook) -> Hook:
        @functools.wraps(hook)
        async def counted(self: IntakeHandler, *args: Any) -> str:
            started = time.perf_counter()
            reply = await hook(self, *args)
            self.metrics.smtp_reply(command, reply)
            if command == "DATA" and reply.startswith("250"):
                self.metrics.accept_seconds.observe(time.perf_counter() - started)
            return reply

        return counted

    return wrap


class IntakeHandler(_NarrowDir):
    """aiosmtpd handler hooks (``handle_EHLO``, ``handle_RCPT``, ``handle_DATA``,
    ``handle_exception``)."""

    _DIR_PREFIXES = ("handle_", "auth_")

    def __init__(
        self,
        support_addresses: Iterable[str],
        max_recipients: int,
        writer: GroupCommitWriter,
        on_stored: Callable[[int], None],
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics.create()
        self.support = frozenset(address_key(a) for a in support_addresses)
        self.domains = frozenset(address_domain(a) for a in self.support) - {None}
        self.max_recipients = max_recipients
        self.writer = writer
        self.on_stored = on_stored
        self.clock = clock
        self.log = structlog.get_logger("intake.smtp")

    def accepts(self, address: str) -> bool:
        """A support address, or postmaster bare or at one of their domains (RFC 5321 §4.5.1).

        Postmaster mail is stored and processed like mail to the support address: the
        support desk is the people responsible for this mail host, machine mail to it
        (bounces, reports) is recorded and never answered, a person gets a ticket.
        """
        key = address_key(address)
        if key in self.support:
            return True
        local, at, domain = key.rpartition("@") if "@" in key else (key, "", "")
        return local == POSTMASTER and (not at or domain in self.domains)

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """aiosmtpd's EHLO reply plus PIPELINING (RFC 2920), as Postfix offers it: a client
        may send MAIL, RCPT and DATA without waiting, and gets their replies in one write."""
        session.host_name = hostname  # what aiosmtpd sets itself when there is no hook
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    @_counted("RCPT")
    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not self.accepts(address):
            self.log.info("smtp.rcpt_refused", peer=_peer(session), rcpt=address)
            return f"550 5.1.1 <{address}>: recipient address rejected: not a support address"
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"  # RFC 5321 §4.5.3.1.10
        if address_key(address) not in (address_key(a) for a in envelope.rcpt_tos):
            envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    @_counted("DATA")
    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        origin = IntakeEnvelope(
            origin="smtp",
            origin_ref=_peer(session),
            mail_from=envelope.mail_from if envelope.mail_from != "<>" else "",
            rcpt_to=tuple(envelope.rcpt_tos),
            peer_ip=_peer_ip(session),
        )
        try:
            item = (
                prepare_inbound(raw, origin, self.clock())
                if len(raw) <= INLINE_PREPARE
                else await asyncio.to_thread(prepare_inbound, raw, origin, self.clock())
            )
            stored = await self.writer.store(item)
        except Exception as exc:
            self.log.error("smtp.store_failed", peer=origin.origin_ref, error=str(exc))
            return STORE_FAILED
        self.log.info("message.stored", **stored_fields(item, stored))
        if not stored.duplicate:
            # Committed: whatever happens now, the answer is 250 (the worker's sweep finds
            # a message nobody handed over).
            try:
                self.on_stored(stored.inbound_id)
            except Exception as exc:
                self.log.error(
                    "smtp.handover_failed", inbound_id=stored.inbound_id, error=_kind(exc)
                )
        return f"{QUEUED} {stored.inbound_id}"

    async def handle_exception(self, error: Exception) -> str:
        """Any error outside the hooks' own handling: our fault, so 451, never a 5xx.

        aiosmtpd's default answer is ``500 Error: (Type) text``, a permanent failure that
        makes the sender's MTA bounce mail we should have taken. Only the error's type and
        where it was raised are logged: its text may quote the message or SQL parameters.
        """
        if isinstance(error, TLSSetupException):
            # A client that cannot do TLS 1.2+ (or a scanner): its problem, not our error.
            # aiosmtpd closes the connection and sends nothing.
            self.log.info("smtp.tls_handshake_failed", error=_kind(error.__cause__ or error))
            return "421 4.7.0 TLS handshake failed"
        self.log.error("smtp.session_error", error=_kind(error), where=raised_at(error))
        return "451 4.3.0 Requested action aborted: local error in processing"


# aiosmtpd's SMTP.__init__ reads the EHLO hook's signature for every connection, to tell
# its old 4-argument form from the 5-argument one: ~25 µs of the ~110 µs a session costs.
# A signature stored on the function is what ``inspect.signature`` returns at once.
setattr(  # noqa: B010 - mypy knows no __signature__ on a function
    IntakeHandler.handle_EHLO, "__signature__", inspect.signature(IntakeHandler.handle_EHLO)
)


class IntakeSMTP(_NarrowDir, SMTP):
    """One SMTP session: aiosmtpd's protocol plus our session rules (see module docstring)."""

    _DIR_PREFIXES = ("smtp_", "auth_")

    def __init__(
        self, handler: IntakeHandler, settings: SmtpSettings, listener: SmtpListener
    ) -> None:
        # Read by SMTP.__init__ for its stream limit, so set first. RFC 5321 §4.5.3.1.6's
        # 1,000 octets is a limit senders should keep; Postfix accepts longer lines and
        # real mail (Outlook, deep quoting) has them. The limit that matters is the size.
        self.line_length_limit = settings.max_message_size + 2
        super().__init__(
            handler,
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,  # RFC 6531: internationalised addresses
            decode_data=False,
            hostname=settings.hostname,  # avoids socket.getfqdn() per connection
            ident="ticket-intake ESMTP",
            # Read from the files at start-up and on SIGHUP: each session takes the
            # context current when it connects. ``require_tls`` is ours (smtp_MAIL), for
            # an enhanced status code and so that RSET and HELO stay allowed.
            tls_context=listener.tls_context,
            timeout=settings.timeout,
            # aiosmtpd's own lookup catches warnings around get_event_loop() each time.
            loop=asyncio.get_running_loop(),
        )
        self.listener = listener
        self.max_errors = settings.max_errors
        self.errors = 0
        self.in_data = False
        self.closing = False
        self.refused = False
        self.ip = "?"
        # This transaction's share of the listener's DATA in memory: the larger of what
        # MAIL declared (SIZE, RFC 1870) and what DATA has brought so far.
        self.declared = self.received = self.held = 0
        self.max_data = settings.max_message_size + 2  # aiosmtpd keeps no more than this
        # Replies held back while the rest of the client's group is already here (RFC
        # 2920 §3.1), sent with the next reply that does not wait: one write, not three.
        self.pending: list[bytes] = []
        self.grouping = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None:  # again, after STARTTLS: same session
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        refusal = self.listener.admit(self.ip)
        if refusal is not None:
            # Before the greeting and before aiosmtpd sets anything up (RFC 5321 §3.1).
            self.refused = True
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal.encode("ascii") + b"\r\n")
            transport.close()
            return
        self.listener.sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.refused:
            return
        self.listener.sessions.discard(self)
        self._hold(0, 0)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        # What DATA holds in memory grows with what arrives (aiosmtpd keeps the lines,
        # then joins them; past the size limit it discards them).
        if self.in_data and self.received < self.max_data:
            self._hold(self.declared, min(self.received + len(data), self.max_data))
        super().data_received(data)

    def _hold(self, declared: int, received: int) -> None:
        self.declared, self.received = declared, received
        held = max(declared, received)
        self.listener.data_in_flight += held - self.held
        self.held = held

    def _set_post_data_state(self) -> None:
        # The transaction is over (answered, RSET, EHLO, a new connection): its bytes go.
        self._hold(0, 0)
        super()._set_post_data_state()  # type: ignore[no-untyped-call]

    async def push(self, status: AnyStr) -> None:
        await self._send(status)
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else str(status)
        if text.startswith(QUEUED):
            self.errors = 0  # Postfix counts errors "without delivering mail"
        elif text[:1] in ("4", "5") and not self.closing:
            self.errors += 1
            if self.errors >= self.max_errors:
                log = structlog.get_logger("intake.smtp")
                log.warning("smtp.too_many_errors", peer=self.peer_text, errors=self.errors)
                await self.hang_up(TOO_MANY_ERRORS)

    async def hang_up(self, status: str) -> None:
        """Answer ``status`` (a 421, RFC 5321 §3.8) and close the connection."""
        self.closing = True
        with contextlib.suppress(ConnectionError):
            await self._send(status)
        if self.transport is not None:
            self.transport.close()

    def hang_up_now(self, status: str) -> None:
        """The same, from outside the session's task: write what fits, then close."""
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self._writer.write(self._after_pending(status.encode("ascii") + b"\r\n"))
            self.transport.close()

    async def _send(self, status: AnyStr) -> None:
        """aiosmtpd's ``push`` (write the reply, then drain), writing fewer times.

        A line of a multi-line reply (``250-...``, RFC 5321 §4.2.1) waits for the reply's
        last line, which aiosmtpd pushes right after it. A reply to a grouped command waits
        while a whole next command is already in the input buffer: RFC 2920 §3.1 asks a
        server to "send all pending responses immediately whenever the local TCP input
        buffer is emptied", and a line still being received is not a command to answer.
        Each write to a loopback socket cost more than the rest of the reply (issue 11).
        """
        if isinstance(status, str):
            response = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        else:
            response = status
        line = response + b"\r\n"
        if response[3:4] == b"-" or (
            self.grouping and not self.closing and self._command_waiting()
        ):
            self.pending.append(line)
            return
        self._writer.write(self._after_pending(line))
        await self._writer.drain()

    def _after_pending(self, line: bytes) -> bytes:
        """``line`` behind the replies held for it, which are then no longer held."""
        if not self.pending:
            return line
        held, self.pending = self.pending, []
        return b"".join((*held, line))

    def _command_waiting(self) -> bool:
        # StreamReader keeps what arrived and was not read yet in ``_buffer`` (CPython 3.11
        # to 3.13); without it, never wait.
        waiting = getattr(self._reader, "_buffer", None)
        return isinstance(waiting, bytearray) and b"\n" in waiting

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd 1.4.6's ``_getaddr`` without the ``typing.Protocol`` class it defines
        on every call (two class creations per message were ~5 % of the listener's CPU),
        and with any malformed address a 553 rather than an exception (451)."""
        if not arg:
            return "", ""
        parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
        try:
            address, rest = parse(arg)
            addr: str = address.addr_spec
        except Exception:
            # HeaderParseError, and the stdlib parser's own failures on malformed input
            # that hypothesis found (CPython 3.11: IndexError on '"', UnboundLocalError on
            # '0@[ ', AttributeError on '0@['): a malformed address (553 5.1.3), not our
            # error (451).
            return None, None
        localpart = addr.rpartition("@")[0]
        if self.local_part_limit and len(localpart) > self.local_part_limit:
            return None, None
        return addr, str(rest)

    @property
    def peer_text(self) -> str:
        return _peer(self.session) if self.session is not None else "?"

    # RFC 2920 §3.1: the commands a client may group (MAIL, RCPT, RSET), whose replies the
    # server "SHOULD elect to store ... in an internal buffer so they can be sent as a unit".
    smtp_RCPT = _grouped(SMTP.smtp_RCPT)  # noqa: N815 - aiosmtpd looks it up by this name
    smtp_RSET = _grouped(SMTP.smtp_RSET)  # noqa: N815 - aiosmtpd looks it up by this name

    @_grouped
    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd's name
        if not self.listener.accepting:
            await self.hang_up(SHUTTING_DOWN)
            return
        if self.listener.settings.require_tls and self._tls_protocol is None:
            await self.push(TLS_REQUIRED)
            return
        if self.envelope is not None and self.envelope.mail_from is None:
            # At MAIL, the start of a transaction (RFC 5321 §4.1.1.2 lists 452 for it).
            # Checked and reserved with no await between, so sessions cannot all pass
            # at once; a nested MAIL is left to aiosmtpd's 503.
            declared = _declared_size(arg, self.max_data)
            if self.listener.data_full(declared):
                self.listener.log.warning("smtp.data_in_flight_full", peer=self.peer_text)
                self.listener.handler.metrics.smtp_reply("MAIL", DATA_IN_FLIGHT)
                await self.push(DATA_IN_FLIGHT)
                return
            self._hold(declared, 0)
        await super().smtp_MAIL(arg)
        if self.envelope is not None and self.envelope.mail_from is None:
            self._hold(0, 0)  # refused (syntax, SIZE above the limit): nothing reserved

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's name
        self.in_data = True
        self.listener.busy_changed()
        try:
            await self._data(arg)
        finally:
            self.in_data = False
            self._hold(0, 0)  # answered, or the client went away: the bytes are let go
            self.listener.busy_changed()
        if not self.listener.accepting and not self.closing:
            await self.hang_up(SHUTTING_DOWN)

    async def _data(self, arg: str) -> None:
        """aiosmtpd's DATA (1.4.6: the same checks, answers and hook) with the mail data
        read in bulk (``intake.edges.smtpdata``) instead of one line at a time."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(self._reader, self.data_size_limit)
        except asyncio.CancelledError:
            # The client went away mid-DATA (aiosmtpd cancels this task): nothing is kept.
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:  # the same, seen by the read before the cancel
            self._writer.close()
            return
        if content is None:
            await self.push("552 Error: Too much mail data")  # RFC 5321 §4.5.3.1.10
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


class _Refuse(asyncio.Protocol):
    """A connection that arrives while we shut down: 421 as the greeting (RFC 5321 §3.1)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(SHUTTING_DOWN.encode("ascii") + b"\r\n")
        transport.close()


class SmtpListener:
    """The SMTP listener as one unit: ``start``, ``stop_accepting``, ``drain``, ``close``.

    Shutting down loses nothing: after ``stop_accepting`` new connections and new
    transactions get 421 (the client retries later), idle sessions are told 421 and
    closed, and a session in DATA keeps its writer until it has its answer, for up to
    ``drain``'s grace; only then is it cut off (421), unacknowledged.
    """

    def __init__(self, handler: IntakeHandler, settings: SmtpSettings) -> None:
        self.handler = handler
        self.settings = settings
        self.sessions: set[IntakeSMTP] = set()
        self.data_in_flight = 0  # bytes of DATA sessions hold (or declared) until answered
        self.tls_context = load_tls_context(settings)
        self.accepting = True
        self._server: asyncio.Server | None = None
        self._idle = asyncio.Event()
        self.log = structlog.get_logger("intake.smtp")

    async def start(self) -> int:
        """Listen; the port actually bound (``smtp.port`` 0 picks a free one)."""
        self.accepting = True
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol, host=self.settings.host, port=self.settings.port
        )
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def serving(self) -> bool:
        return self._server is not None

    def _protocol(self) -> asyncio.Protocol:
        if not self.accepting:
            return _Refuse()
        return IntakeSMTP(self.handler, self.settings, self)

    def admit(self, ip: str) -> str | None:
        """None when a new session from ``ip`` is within the limits, else its 421."""
        if len(self.sessions) >= self.settings.max_sessions:
            refusal, limit = TOO_MANY_SESSIONS, "total"
        elif sum(s.ip == ip for s in self.sessions) >= self.settings.max_sessions_per_ip:
            refusal, limit = TOO_MANY_FROM_IP, "per_ip"
        else:
            return None
        self.handler.metrics.smtp_reply("CONNECT", refusal)
        self.log.warning("smtp.session_refused", peer=ip, limit=limit)
        return refusal

    def data_full(self, declared: int = 0) -> bool:
        """No room for a new transaction declaring ``declared`` bytes (0: no SIZE).

        One alone always fits, so a message up to ``smtp.max_message_size`` is never
        refused for good when the limit is set below it.
        """
        limit = self.settings.max_data_in_flight
        held = self.data_in_flight
        return held >= limit or (held > 0 and held + declared > limit)

    def reload_tls(self) -> bool:
        """Re-read the certificate and key (SIGHUP); a bad pair keeps the current one."""
        if not self.settings.tls:
            return False
        try:
            self.tls_context = load_tls_context(self.settings)
        except ConfigError as exc:
            self.log.error("smtp.tls_reload_failed", error=str(exc))
            return False
        self.log.info("smtp.tls_reloaded", certificate=str(self.settings.tls_certificate))
        return True

    def busy(self) -> list[IntakeSMTP]:
        return [session for session in self.sessions if session.in_data]

    def busy_changed(self) -> None:
        if not self.busy():
            self._idle.set()
        else:
            self._idle.clear()

    def stop_accepting(self) -> None:
        """New sessions and transactions get 421 from now on; idle sessions are closed."""
        self.accepting = False
        for session in list(self.sessions):
            if not session.in_data:
                session.hang_up_now(SHUTTING_DOWN)
        self.busy_changed()
        self.log.info("smtp.draining", sessions_in_data=len(self.busy()))

    async def drain(self, grace: float) -> bool:
        """Wait up to ``grace`` seconds for the sessions in DATA to get their answer.

        True when all did; the ones still in DATA after the grace are cut off with 421
        (nothing acknowledged: the client sends again).
        """
        self.busy_changed()
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
            drained = True
        except TimeoutError:
            drained = False
        left = self.busy()
        for session in left:
            session.hang_up_now(SHUTTING_DOWN)
        self.log.info("smtp.drained", complete=drained, cut_off=len(left))
        return drained

    async def close(self) -> None:
        """Stop listening and let closed sessions finish their teardown."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for session in list(self.sessions):
            session.hang_up_now(SHUTTING_DOWN)
        # connection_lost runs on the next loop iterations; bounded, never a hang.
        for _ in range(100):
            if not self.sessions:
                break
            await asyncio.sleep(0.01)


def load_tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """The STARTTLS server context from ``smtp.tls_certificate``/``tls_key``; ConfigError.

    TLS 1.2 is the floor (RFC 8996 deprecates 1.0 and 1.1) and its suites are
    ``MODERN_TLS12_CIPHERS``; TLS 1.3's are OpenSSL's fixed AEAD set. No client
    certificate is asked for.
    """
    if settings.tls_certificate is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(MODERN_TLS12_CIPHERS)  # applies to TLS <= 1.2 only
    try:
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"smtp.tls_certificate {settings.tls_certificate}, smtp.tls_key "
            f"{settings.tls_key}: {exc}"
        ) from None
    return context


def _declared_size(arg: str | None, cap: int) -> int:
    """The ``SIZE=`` of a MAIL command (RFC 1870 §6), capped; 0 when absent or not a number."""
    match = _SIZE.search(arg or "")
    return min(int(match.group(1)), cap) if match else 0


def _peer(session: Session) -> str:
    peer: Any = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _peer_ip(session: Session) -> str | None:
    """The client's IP address alone (the reflection cap counts by it)."""
    peer: Any = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def _kind(error: BaseException) -> str:
    return type(error).__name__
