"""The IMAP edge: poll mailboxes, store each message once (COMMIT 1), then move it away.

One poller per mailbox, each in its own thread (imapclient is blocking; the event loop
never waits on IMAP). A cycle: SELECT the folder and note UIDVALIDITY (RFC 3501 §2.3.1.1;
when it changes the folder is simply scanned again and idempotency absorbs the repeats),
UID SEARCH ALL, then per batch: skip the UIDs already stored (their origin_ref
``mailbox/UIDVALIDITY/UID`` is in the store: a crash hit between COMMIT 1 and the MOVE),
FETCH RFC822.SIZE, quarantine the oversize ones without fetching them, FETCH
``BODY.PEEK[]`` for the rest in one command (PEEK sets no ``\\Seen``, and ``\\Seen`` is
never relied upon: people read the mailbox too), store the batch in one transaction, and
only then MOVE (RFC 6851; else COPY + ``\\Deleted`` + UID EXPUNGE, RFC 4315) to the
processed folder. So a crash at any point leaves each mail in the inbox or in the
processed folder, and a second pass never makes a second ticket. Batches overlap: a
second thread stores batch N while batch N+1 is fetched, and batch N is moved only once
its own COMMIT 1 has returned.

Quarantine folder (one log line each): mail over ``imap.max_message_size``; mail the
edge cannot take as a message at all (FETCH returned no body, NUL bytes, no RFC 5322
header section); mail whose storing failed ``imap.max_attempts`` times while the store
itself answers. Mail that is stored but later fails *processing* is the pipeline's
business: it sits in ``intake quarantine list`` with its raw bytes, and its IMAP copy is
in the processed folder (it was acknowledged when it was stored).

Between cycles the poller waits in IDLE (RFC 2177), re-issued before ``idle_timeout``
(< 29 minutes) and before the mailbox lease needs renewing, or sleeps ``poll_interval``
without IDLE. Any failure (login, network, server restart, expired token) ends the
session; the poller reconnects after an exponential backoff with jitter, records
"failing since" in ``mailbox_state``, and never affects other mailboxes or the SMTP edge.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import LoginError

from intake.backoff import backoff_delay
from intake.edges.mailboxes import Mailbox, resolve_mailbox
from intake.errors import ConfigError, IntakeError, MailboxError
from intake.instance import instance_id
from intake.pipeline.core import (
    Envelope,
    NewInbound,
    Pipeline,
    Stored,
    prepare_inbound,
    stored_fields,
)
from intake.settings import ImapSettings, MailboxSettings
from parsing import header_line_regex, is_header_line

Clock = Callable[[], datetime]
DELETED = rb"\Deleted"
_JITTER = 0.2  # ±20 % around each reconnect delay
# A standby tries for the lease this long after it lapses: the store compares strictly.
_STANDBY_MARGIN = 0.05
_RETURN_PATH = re.compile(
    rb"^" + header_line_regex("Return-Path").encode() + rb"[ \t]*<([^>\r\n]*)>",
    re.IGNORECASE | re.MULTILINE,
)


class MailboxStore(Protocol):
    """The port to what the store keeps per mailbox; ``app`` passes in the implementation.

    Each call is its own transaction, so the edge never holds a session across IMAP I/O.
    """

    def record_ok(self, mailbox: str, now: datetime, uidvalidity: int) -> int | None:
        """Note a good SELECT; returns the UIDVALIDITY seen before (None the first time)."""
        ...

    def record_failure(self, mailbox: str, error: str, now: datetime) -> datetime | None:
        """Note a failure; returns since when the mailbox has been failing."""
        ...

    def known_refs(self, refs: Collection[str]) -> set[str]:
        """Which ``mailbox/UIDVALIDITY/UID`` refs are already stored (COMMIT 1 done)."""
        ...

    def answers(self) -> bool:
        """Whether the store answers at all (tells a bad message from a down store)."""
        ...

    def acquire_lease(self, mailbox: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take or renew the lease on a mailbox until ``until``; False: another holds it."""
        ...

    def lease_expiry(self, mailbox: str) -> datetime | None:
        """When the mailbox's current lease runs out (None: nobody holds it)."""
        ...

    def release_lease(self, mailbox: str, owner: str) -> None:
        """Give the lease up (it also expires by itself)."""
        ...


def return_path(raw: bytes) -> str | None:
    """The envelope sender the delivering MTA recorded (RFC 5321 §4.4), if any."""
    header = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = _RETURN_PATH.search(header)
    return match.group(1).decode("utf-8", "replace").strip() if match else None


def unusable_reason(raw: bytes | None) -> str | None:
    """Why the edge cannot take these bytes as a message at all; None when it can."""
    if not raw:
        return "the server returned no message body"
    if b"\x00" in raw:
        return "the message contains NUL bytes (not RFC 5322 text)"
    if not is_header_line(raw):
        return "the message has no RFC 5322 header section"
    return None


def tls_context(mailbox: Mailbox) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=mailbox.ca_file)
    if not mailbox.verify_certificates:  # explicitly configured; logged at connect
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(mailbox: Mailbox, settings: ImapSettings, now: datetime) -> IMAPClient:
    """Connect, secure (no plaintext fallback after a failed STARTTLS) and log in."""
    context = tls_context(mailbox) if mailbox.security != "plain" else None
    client = IMAPClient(
        mailbox.host,
        mailbox.port,
        ssl=mailbox.security == "tls",
        ssl_context=context,
        timeout=SocketTimeout(connect=settings.connect_timeout, read=settings.timeout),
    )
    try:
        if mailbox.security == "starttls":
            client.starttls(context)  # raises on refusal: we never go on in clear
        _log_in(client, mailbox, now)
    except BaseException:
        _close(client)
        raise
    return client


def _log_in(client: IMAPClient, mailbox: Mailbox, now: datetime) -> None:
    try:
        if mailbox.tokens is not None:
            token = mailbox.tokens.token(now)
            client.oauth2_login(mailbox.username, token.value, mech="XOAUTH2")
            return
        if mailbox.password is None:
            raise MailboxError("no password, password_env, password_file or oauth2 token")
        client.login(mailbox.username, mailbox.password)
    except LoginError as exc:  # imapclient puts the server's bytes into the message
        detail = re.sub(r"^b'(.*)'$", r"\1", str(exc))
        raise MailboxError(f"login as {mailbox.username} refused: {detail}") from None


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # already broken: just drop the socket
        with contextlib.suppress(Exception):
            client.shutdown()


def ensure_folder(client: IMAPClient, folder: str) -> None:
    """Create the processed/quarantine folder when missing (another client may race us)."""
    if client.folder_exists(folder):
        return
    try:
        client.create_folder(folder)
    except IMAPClient.Error:
        if not client.folder_exists(folder):
            raise


def move(client: IMAPClient, uids: Sequence[int], folder: str) -> None:
    """UID MOVE (RFC 6851), else UID COPY + \\Deleted + UID EXPUNGE (RFC 4315)."""
    if not uids:
        return
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, [DELETED], silent=True)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
    else:  # RFC 3501 EXPUNGE also removes other messages already marked \Deleted
        client.expunge()


@dataclass
class PollResult:
    stored: list[int] = field(default_factory=list)  # new inbound ids, to process
    moved: int = 0
    duplicates: int = 0
    quarantined: int = 0
    deferred: int = 0  # left in the folder for the next cycle (store failed)

    def add(self, other: PollResult) -> None:
        self.stored += other.stored
        self.moved += other.moved
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.deferred += other.deferred


@dataclass(frozen=True, slots=True)
class _Fetched:
    """One batch as FETCHed: UIDs already stored, bodies by UID, the oversize ones."""

    done: list[int]
    bodies: dict[int, bytes | None]
    too_big: dict[int, str]


@dataclass(frozen=True, slots=True)
class _Committed:
    """One batch after COMMIT 1: its counts, the UIDs stored, the unusable ones with why."""

    result: PollResult
    stored: list[int]
    bad: dict[int, str]


@dataclass
class MailboxPoller:
    """Polls one mailbox into the pipeline. ``on_stored`` receives each new inbound id."""

    mailbox: Mailbox
    settings: ImapSettings
    pipeline: Pipeline
    state: MailboxStore
    on_stored: Callable[[int], None]
    clock: Clock
    owner: str
    _attempts: dict[tuple[int, int], int] = field(default_factory=dict)
    _failures: int = 0
    _uidvalidity: int = 0
    _lease_renewed: datetime | None = None  # when hold_lease last succeeded

    @property
    def log(self) -> Any:
        return structlog.get_logger("intake.imap").bind(mailbox=self.mailbox.name)

    # -- one cycle ----------------------------------------------------------------------

    def drain(self, client: IMAPClient) -> PollResult:
        """Take everything in the folder: search, then batches, until nothing new is left.

        Two stages overlap: while one thread stores batch N (hashing, COMMIT 1), this one
        FETCHes batch N+1 and then MOVEs batch N, once batch N's COMMIT 1 has returned.
        So the server's work and ours run side by side, each MOVE still follows its own
        batch's commit, and at most two batches of bodies are held at once.
        """
        self._select(client)
        result, seen = PollResult(), set[int]()
        with ThreadPoolExecutor(1, thread_name_prefix="imap-store") as storer:
            while True:
                uids = [u for u in client.search("ALL") if u not in seen]
                if not uids:
                    return result
                seen.update(uids)
                self._pipeline(client, uids, storer, result)

    def _pipeline(
        self, client: IMAPClient, uids: list[int], storer: Executor, result: PollResult
    ) -> None:
        pending: tuple[_Fetched, Future[_Committed]] | None = None
        try:
            for start in range(0, len(uids), self.settings.batch_size):
                self._renew_lease()  # per batch: a long backlog outlasts one lease
                fetched = self._fetch(client, uids[start : start + self.settings.batch_size])
                previous, pending = pending, (fetched, storer.submit(self._commit, fetched))
                if previous is not None:
                    result.add(self._acknowledge(client, *previous))
            if pending is not None:
                last, pending = pending, None
                result.add(self._acknowledge(client, *last))
        finally:
            if pending is not None:  # a failure: that batch is not moved (it waits)
                pending[1].cancel()  # not started: not stored either

    def _renew_lease(self) -> None:
        """Renew between batches once a third of the lease has passed (as the IDLE loop
        does): a lease with two thirds left cannot be taken, and a renewal is a write
        transaction (an fsync) that every 200-message batch need not pay."""
        renewed, now = self._lease_renewed, self.clock()
        third = timedelta(seconds=self.settings.lease_duration / 3)
        if renewed is not None and renewed <= now < renewed + third:
            return
        if not self.hold_lease():
            raise MailboxError("lost the mailbox lease to another instance")

    def _select(self, client: IMAPClient) -> None:
        info = client.select_folder(self.mailbox.folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        previous = self.state.record_ok(self.mailbox.name, self.clock(), uidvalidity)
        if previous is not None and previous != uidvalidity:
            # RFC 3501 §2.3.1.1: old UIDs mean nothing now; rescan, idempotency dedupes.
            self.log.warning("imap.uidvalidity_changed", previous=previous, current=uidvalidity)
            self._attempts.clear()
        self._uidvalidity = uidvalidity

    def _ref(self, uid: int) -> str:
        return f"{self.mailbox.name}/{self._uidvalidity}/{uid}"

    def _fetch(self, client: IMAPClient, uids: list[int]) -> _Fetched:
        """The IMAP half of a batch: skip what is stored, FETCH sizes, then the bodies."""
        known = self.state.known_refs([self._ref(u) for u in uids])
        done = [u for u in uids if self._ref(u) in known]
        todo = [u for u in uids if u not in done]
        sizes = client.fetch(todo, ["RFC822.SIZE"]) if todo else {}
        limit = self.settings.max_message_size
        big = {u: int(d[b"RFC822.SIZE"]) for u, d in sizes.items() if d[b"RFC822.SIZE"] > limit}
        wanted = [u for u in sizes if u not in big]
        bodies = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        too_big = {u: f"larger than {limit} bytes ({size})" for u, size in big.items()}
        return _Fetched(done, {u: bodies.get(u, {}).get(b"BODY[]") for u in wanted}, too_big)

    def _commit(self, fetched: _Fetched) -> _Committed:
        """The store half of a batch (runs in the storing thread): COMMIT 1 for it."""
        result = PollResult(duplicates=len(fetched.done))
        stored, bad = self._store(fetched.bodies, result)
        return _Committed(result, stored, {**bad, **fetched.too_big})

    def _acknowledge(
        self, client: IMAPClient, fetched: _Fetched, committing: Future[_Committed]
    ) -> PollResult:
        """After the batch's COMMIT 1 (waited for here): MOVE it, quarantine the unusable."""
        committed = committing.result()
        result = committed.result
        for inbound_id in result.stored:  # stored is safe: processing need not wait for MOVE
            self.on_stored(inbound_id)
        move(client, fetched.done + committed.stored, self.mailbox.processed_folder)
        result.moved = len(fetched.done) + len(committed.stored)
        self._quarantine(client, committed.bad)
        result.quarantined = len(committed.bad)
        return result

    def _store(
        self, bodies: dict[int, bytes | None], result: PollResult
    ) -> tuple[list[int], dict[int, str]]:
        """COMMIT 1 for the batch; returns the stored UIDs and the unusable ones with why."""
        bad: dict[int, str] = {}
        items = []
        now = self.clock()
        for uid, raw in bodies.items():
            reason = unusable_reason(raw)
            if reason or raw is None:
                bad[uid] = reason or "no body"
                continue
            envelope = Envelope("imap", self._ref(uid), return_path(raw))
            try:
                items.append((uid, prepare_inbound(raw, envelope, now)))
            except Exception as exc:
                self._count_failure(uid, f"{type(exc).__name__}: {exc}", bad, result)
        stored = self._ingest(items, bad, result)
        return stored, bad

    def _ingest(
        self, items: list[tuple[int, NewInbound]], bad: dict[int, str], result: PollResult
    ) -> list[int]:
        if not items:
            return []
        try:
            outcomes = self.pipeline.ingest([item for _, item in items])
        except IntakeError:
            if not self._store_answers():
                raise
            return self._ingest_one_by_one(items, bad, result)
        stored = []
        for (uid, item), outcome in zip(items, outcomes, strict=True):
            self._note_stored(uid, item, outcome, result)
            stored.append(uid)
        return stored

    def _ingest_one_by_one(
        self, items: list[tuple[int, NewInbound]], bad: dict[int, str], result: PollResult
    ) -> list[int]:
        """A batch failed while the store answers: find the message(s) that cause it."""
        stored = []
        for uid, item in items:
            try:
                outcome = self.pipeline.ingest([item])[0]
            except IntakeError as exc:
                if not self._store_answers():
                    raise
                self._count_failure(uid, str(exc), bad, result)
                continue
            self._note_stored(uid, item, outcome, result)
            stored.append(uid)
        return stored

    def _note_stored(self, uid: int, item: NewInbound, outcome: Stored, result: PollResult) -> None:
        self.log.info("message.stored", uid=uid, **stored_fields(item, outcome))
        if outcome.duplicate:
            result.duplicates += 1
        else:
            result.stored.append(outcome.inbound_id)

    def _count_failure(self, uid: int, error: str, bad: dict[int, str], result: PollResult) -> None:
        key = (self._uidvalidity, uid)
        self._attempts[key] = attempts = self._attempts.get(key, 0) + 1
        if attempts >= self.settings.max_attempts:
            bad[uid] = f"could not be stored after {attempts} attempts: {error}"
            del self._attempts[key]
        else:
            self.log.warning("imap.store_failed", uid=uid, attempts=attempts, error=error)
            result.deferred += 1

    def _store_answers(self) -> bool:
        return self.state.answers()

    def _quarantine(self, client: IMAPClient, bad: Mapping[int, str]) -> None:
        if not bad:
            return
        move(client, sorted(bad), self.mailbox.quarantine_folder)
        for uid, reason in sorted(bad.items()):
            self.log.warning(
                "imap.quarantined",
                uid=uid,
                uidvalidity=self._uidvalidity,
                folder=self.mailbox.quarantine_folder,
                reason=reason,
            )

    # -- sessions, leases, status ---------------------------------------------------------

    def open(self) -> IMAPClient:
        now = self.clock()
        if not self.mailbox.verify_certificates and self.mailbox.security != "plain":
            self.log.warning("imap.certificate_verification_disabled")
        client = connect(self.mailbox, self.settings, now)
        try:
            ensure_folder(client, self.mailbox.processed_folder)
            ensure_folder(client, self.mailbox.quarantine_folder)
        except BaseException:
            _close(client)
            raise
        self._warn_refresh_token(now)
        return client

    def _warn_refresh_token(self, now: datetime) -> None:
        tokens = self.mailbox.tokens
        warning = tokens.refresh_token_warning(now) if tokens else None
        if warning:
            self.log.warning("imap.refresh_token_expiring", detail=warning)

    def hold_lease(self) -> bool:
        now = self.clock()
        until = now + timedelta(seconds=self.settings.lease_duration)
        self._lease_renewed = None  # until the store says so
        held = self.state.acquire_lease(self.mailbox.name, self.owner, now, until)
        self._lease_renewed = now if held else None
        return held

    def standby_wait(self) -> float:
        """Seconds a standby sleeps before trying for the lease again.

        Until the holder's lease runs out (plus a moment): the holder renews it every
        third of ``lease_duration``, so a live holder is found again, and a dead one's
        lease is taken as soon as it lapses, within one lease duration of the holder's
        last renewal. A fixed ``min(poll_interval, lease_duration)`` could wake just
        before the lapse and sleep a whole lease more (up to twice the lease).
        """
        duration = self.settings.lease_duration
        try:
            expires = self.state.lease_expiry(self.mailbox.name)
        except Exception:  # the store stopped answering: look again a little later
            return duration / 4
        if expires is None:  # released just now: free at the next try
            return _STANDBY_MARGIN
        remaining = (expires - self.clock()).total_seconds()
        return min(max(remaining, 0.0) + _STANDBY_MARGIN, duration)

    def release_lease(self) -> None:
        self._lease_renewed = None
        try:
            self.state.release_lease(self.mailbox.name, self.owner)
        except Exception as exc:  # it expires by itself
            self.log.warning("imap.lease_release_failed", error=str(exc))

    def record_failure(self, exc: BaseException) -> datetime | None:
        error = f"{type(exc).__name__}: {exc}"
        try:
            return self.state.record_failure(self.mailbox.name, error, self.clock())
        except Exception:  # the store is down too; the log line still says it
            return None

    # -- the two ways to run --------------------------------------------------------------

    def poll_once(self, wait_for_lease: float = 0.0) -> PollResult:
        """Connect, take what is waiting, log out. Raises MailboxError on failure."""
        if not self._wait_for_lease(wait_for_lease):
            raise MailboxError("another instance holds the lease")
        try:
            client = self.open()
            try:
                return self.drain(client)
            finally:
                _close(client)
        except Exception as exc:
            since = self.record_failure(exc)
            self.log.error("imap.failing", error=str(exc), failing_since=_iso(since))
            raise MailboxError(str(exc)) from exc
        finally:
            self.release_lease()

    def _wait_for_lease(self, patience: float) -> bool:
        deadline = time.monotonic() + patience
        while not self.hold_lease():
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.5, self.settings.lease_duration / 4))
        return True

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop``: IDLE between cycles, reconnect with backoff on any failure."""
        standby_logged = False
        while not stop.is_set():
            try:
                if not self.hold_lease():
                    if not standby_logged:
                        self.log.info("imap.standby", reason="another instance holds the lease")
                    standby_logged = True
                    stop.wait(self.standby_wait())
                    continue
                standby_logged = False
                self._session(stop)
            except Exception as exc:
                self._after_failure(exc, stop)
        self.release_lease()

    def _after_failure(self, exc: Exception, stop: threading.Event) -> None:
        self._failures += 1
        s = self.settings
        delay = backoff_delay(self._failures, s.backoff_initial, s.backoff_max, _JITTER)
        since = self.record_failure(exc)
        self.log.error(
            "imap.failing",
            error=f"{type(exc).__name__}: {exc}",
            failing_since=_iso(since),
            attempt=self._failures,
            retry_in=round(delay, 2),
        )
        stop.wait(delay)

    def _session(self, stop: threading.Event) -> None:
        client = self.open()
        try:
            if self._failures:
                self.log.info("imap.recovered", after_failures=self._failures)
            while not stop.is_set():
                result = self.drain(client)
                self._failures = 0
                if result.moved or result.quarantined:
                    self.log.info("imap.polled", **_counts(result))
                if self._must_reconnect() or not self.hold_lease():
                    return
                self._wait_for_mail(client, stop)
        finally:
            _close(client)

    def _must_reconnect(self) -> bool:
        """A fresh login is needed before the access token expires (XOAUTH2)."""
        tokens = self.mailbox.tokens
        return tokens is not None and tokens.needs_refresh(self.clock())

    def _wait_for_mail(self, client: IMAPClient, stop: threading.Event) -> None:
        # Wake before the lease lapses; RFC 2177: re-issue IDLE at least every 29 minutes.
        limit = min(self.settings.idle_timeout, self.settings.lease_duration / 3)
        if not client.has_capability("IDLE"):
            stop.wait(min(self.settings.poll_interval, limit))
            client.noop()
            return
        client.idle()
        try:
            self._idle_until_news(client, stop, time.monotonic() + limit)
        finally:
            client.idle_done()

    def _idle_until_news(self, client: IMAPClient, stop: threading.Event, deadline: float) -> None:
        while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            started = time.monotonic()
            wait = min(1.0, remaining)
            responses = client.idle_check(timeout=wait)
            if any(_is_bye(r) for r in responses):
                raise MailboxError("the server closed the connection (BYE)")
            if any(_is_news(r) for r in responses):
                return
            if not responses and time.monotonic() - started < wait / 2:
                raise MailboxError("the connection was closed during IDLE")


def _is_news(response: Any) -> bool:
    return isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS",)


def _is_bye(response: Any) -> bool:
    return isinstance(response, tuple) and bool(response) and response[0] == b"BYE"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _counts(result: PollResult) -> dict[str, int]:
    return {
        "stored": len(result.stored),
        "moved": result.moved,
        "duplicates": result.duplicates,
        "quarantined": result.quarantined,
        "deferred": result.deferred,
    }


def lease_owner() -> str:
    """This process's identity for mailbox leases (one per ``make_pollers`` call)."""
    return instance_id()


def make_pollers(
    settings: ImapSettings,
    pipeline: Pipeline,
    state: MailboxStore,
    on_stored: Callable[[int], None],
    clock: Clock,
    mailboxes: Iterable[MailboxSettings] | None = None,
) -> list[MailboxPoller]:
    """One poller per configured mailbox (ConfigError when credentials cannot be read)."""
    owner = lease_owner()
    pollers = []
    for configured in settings.mailboxes if mailboxes is None else mailboxes:
        try:
            mailbox = resolve_mailbox(configured)
        except ValueError as exc:
            raise ConfigError(f"imap mailbox {configured.name}: {exc}") from None
        pollers.append(MailboxPoller(mailbox, settings, pipeline, state, on_stored, clock, owner))
    return pollers


@dataclass(frozen=True, slots=True)
class MailboxReport:
    name: str
    result: PollResult | None
    error: str | None = None


def poll_all_once(pollers: Sequence[MailboxPoller], lease_patience: float) -> list[MailboxReport]:
    """``intake poll --once``: each mailbox in turn; one failing never stops the others."""
    reports = []
    for poller in pollers:
        try:
            reports.append(MailboxReport(poller.mailbox.name, poller.poll_once(lease_patience)))
        except MailboxError as exc:
            reports.append(MailboxReport(poller.mailbox.name, None, str(exc)))
    return reports
