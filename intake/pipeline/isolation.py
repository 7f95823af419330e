"""Reading a stored message under the time budget: parse and assessment in worker processes.

This module owns ``intake.parse_timeout`` and ``intake.workers``. Reading a message is
pure (bytes, policies, directory -> ``Reading``), so it can run anywhere; here it runs in
a pool of worker processes (``pebble``), because a budget must hold even while a C regex
holds the GIL, and only another process can be stopped then. A worker over budget is
killed and replaced by the pool, the message is refused with ``BudgetExceededError``
(the pipeline quarantines it), and the SMTP listener, which never shares a GIL with the
workers, keeps answering meanwhile. A worker that dies otherwise (OOM killer, a crash in
C) is an ordinary failed attempt: the row is retried and counted.

``read_stored`` is the one reading function, run in-process by ``InlineReader`` (tests,
``intake check``, ``intake.workers = 0``) and in a worker by ``ProcessReader``. Issue 11's
batching can schedule several messages per call on the same pool.
"""

from __future__ import annotations

import copyreg
import itertools
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import pebble

from intake.errors import BudgetExceededError
from intake.pipeline.assess import Assessment, assess_bytes
from intake.pipeline.customers import CustomerRecord, Directory
from intake.pipeline.identity import Identity
from intake.policy.policy import Policy, PolicyBook
from intake.replies.render import Draft, Drafting, draft_confirmation
from parsing import Classification, DeliveryReport, read_delivery_report
from store.search import ticket_document


@dataclass(frozen=True, slots=True)
class Reading:
    """What COMMIT 2 reads of one stored message before it touches the store."""

    assessment: Assessment
    report: DeliveryReport | None  # the bounce's delivery report, for a bounce only
    # When it likely opens a ticket: its confirmation's body and its search document,
    # made here so that COMMIT 2's write lock is not held for them (issue 11).
    draft: Draft | None = None
    document: str | None = None


class Reader(Protocol):
    """Reads one stored message: raises ``BudgetExceededError`` past the budget."""

    def __call__(
        self,
        raw: bytes,
        envelope_from: str | None,
        received_at: datetime,
        directory: Sequence[CustomerRecord],
        dkim_verified: tuple[str, ...] = (),
        drafting: Drafting | None = None,
    ) -> Reading: ...


def read_stored(
    raw: bytes,
    envelope_from: str | None,
    received_at: datetime,
    directory: Sequence[CustomerRecord],
    policies: PolicyBook,
    identity: Identity,
    dkim_verified: tuple[str, ...] = (),
    drafting: Drafting | None = None,
) -> Reading:
    """Parse and assess ``raw``; read its delivery report when it is a bounce; with
    ``drafting``, draft the confirmation and the search document of a message that likely
    opens a ticket."""
    assessment = assess_bytes(
        raw, envelope_from, policies, identity, received_at, directory, dkim_verified
    )
    bounce = assessment.verdict.kind is Classification.BOUNCE
    report = read_delivery_report(raw) if bounce else None
    if drafting is None or not _opens(assessment):
        return Reading(assessment, report)
    message = assessment.message
    return Reading(
        assessment,
        report,
        draft_confirmation(assessment, drafting),
        ticket_document(message.subject, message.body_text),
    )


def _opens(assessment: Assessment) -> bool:
    """Likely a new ticket that gets a confirmation: answered, and a reply to nothing.
    A guess only: COMMIT 2 decides, and renders afresh when it has no usable draft."""
    message = assessment.message
    return assessment.reply_address is not None and not (message.in_reply_to or message.references)


@dataclass(frozen=True, slots=True)
class InlineReader:
    """``read_stored`` in the calling thread: no budget (tests, dry runs, workers = 0)."""

    policies: PolicyBook
    identity: Identity

    def __call__(
        self,
        raw: bytes,
        envelope_from: str | None,
        received_at: datetime,
        directory: Sequence[CustomerRecord],
        dkim_verified: tuple[str, ...] = (),
        drafting: Drafting | None = None,
    ) -> Reading:
        return read_stored(
            raw,
            envelope_from,
            received_at,
            directory,
            self.policies,
            self.identity,
            dkim_verified,
            drafting,
        )


def default_workers() -> int:
    """``intake.workers`` when unset: one per CPU this process may use, at least one."""
    return max(1, len(os.sched_getaffinity(0)))


# Set once per worker process by the pool's initializer: the policies and identity travel
# once, not with every message.
_WORKER: dict[str, object] = {}
_TOKENS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ShippedDirectory:
    """The customer directory as a worker receives it: pickled once per directory version.

    Pickling 500 customers cost the daemon ~5 ms and unpickling them (which rebuilds the
    match index) a worker ~9 ms, per message: more than reading the message. The blob is
    made once per ``Directory`` the store's cache hands out, and each worker unpickles a
    token it has not seen once, keeping the result (and its index) until the next one.
    """

    token: int
    blob: bytes

    def records(self) -> Sequence[CustomerRecord]:
        cached = _WORKER.get("directory")
        if isinstance(cached, tuple) and cached[0] == self.token:
            held: Sequence[CustomerRecord] = cached[1]
            return held
        records = Directory(pickle.loads(self.blob))  # noqa: S301 - our own parent's bytes
        _WORKER["directory"] = (self.token, records)
        return records


# The books of this process's ProcessReaders, by token: a worker's reading names the policy
# it used by (token, key), and the parent's unpickling turns that into its own object.
_BOOKS: dict[int, PolicyBook] = {}


def _init_worker(policies: PolicyBook, identity: Identity, nice: int, book: int) -> None:
    # The processing process ignores SIGTERM (its parent decides when it stops); a reading
    # worker takes it again, so pebble's terminate() stops it at once, not after SIGKILL.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if nice:  # intake.reading_nice: parsing yields the CPU to the listener's 250s
        os.nice(nice)
    _WORKER["policies"], _WORKER["identity"], _WORKER["book"] = policies, identity, book
    # In this worker only: a policy of its book is pickled as a reference to the parent's
    # copy. Pickling the ~8 KB model with every reading, unpickling it and finding the
    # parent's equal one cost ~0.5 ms a message (issue 11).
    copyreg.pickle(Policy, _policy_reference)


def _policy_reference(policy: Policy) -> str | tuple[Any, ...]:
    book, token = _WORKER["policies"], _WORKER["book"]
    assert isinstance(book, PolicyBook)
    if policy is book.default:
        return _parent_policy, (token, None)
    key = next((k for k, p in book.others.items() if p is policy), None)
    if key is not None:
        return _parent_policy, (token, key)
    return policy.__reduce_ex__(pickle.HIGHEST_PROTOCOL)  # not the book's: a full copy


def _parent_policy(token: int, key: str | None) -> Policy:
    """The parent's own policy that a worker's reference names (unpickled in the parent)."""
    book = _BOOKS[token]
    return book.default if key is None else book.others[key]


def _read_in_worker(
    raw: bytes,
    envelope_from: str | None,
    received_at: datetime,
    directory: ShippedDirectory,
    dkim_verified: tuple[str, ...] = (),
    drafting: Drafting | None = None,
) -> Reading:
    policies, identity = _WORKER["policies"], _WORKER["identity"]
    assert isinstance(policies, PolicyBook) and isinstance(identity, Identity)
    records = directory.records()
    return read_stored(
        raw, envelope_from, received_at, records, policies, identity, dkim_verified, drafting
    )


class ProcessReader:
    """``read_stored`` in a pool of worker processes, each call within ``timeout`` seconds."""

    def __init__(
        self,
        policies: PolicyBook,
        identity: Identity,
        *,
        workers: int,
        timeout: float,
        target: Callable[..., Reading] | None = None,
        nice: int = 0,
    ) -> None:
        """``target`` replaces what a worker runs (tests: a worker that dies); it must be
        importable by name, as spawned workers import it afresh."""
        self.policies, self.timeout, self.workers = policies, timeout, workers
        self._target = target or _read_in_worker
        self._shipped: tuple[Sequence[CustomerRecord], ShippedDirectory] | None = None
        self._book = next(_TOKENS)
        _BOOKS[self._book] = policies
        # spawn, not fork: the daemon has threads and open store connections by now.
        self._pool = pebble.ProcessPool(
            max_workers=workers,
            initializer=_init_worker,
            initargs=(policies, identity, nice, self._book),
            context=multiprocessing.get_context("spawn"),
        )

    def __call__(
        self,
        raw: bytes,
        envelope_from: str | None,
        received_at: datetime,
        directory: Sequence[CustomerRecord],
        dkim_verified: tuple[str, ...] = (),
        drafting: Drafting | None = None,
    ) -> Reading:
        shipped = self._ship(directory)
        future = self._pool.schedule(
            self._target,
            args=(raw, envelope_from, received_at, shipped, dkim_verified, drafting),
            timeout=self.timeout,
        )
        try:
            reading: Reading = future.result()
        except FutureTimeout:  # pebble has killed the worker and starts a new one
            raise BudgetExceededError(
                f"parsing and assessment took longer than intake.parse_timeout "
                f"({self.timeout:g} s); the worker process was killed"
            ) from None
        except pebble.ProcessExpired as exc:  # died on its own: a failed attempt, retried
            raise RuntimeError(f"worker process died (exit code {exc.exitcode})") from None
        # The policy came back as a copy; the pipeline compares policies by identity.
        policy = self._own(reading.assessment.policy)
        return replace(reading, assessment=replace(reading.assessment, policy=policy))

    def _ship(self, directory: Sequence[CustomerRecord]) -> ShippedDirectory:
        """The directory's blob, made again only when the cache hands out a new one."""
        shipped = self._shipped
        if shipped is None or shipped[0] is not directory:
            blob = pickle.dumps(tuple(directory), protocol=pickle.HIGHEST_PROTOCOL)
            shipped = (directory, ShippedDirectory(next(_TOKENS), blob))
            self._shipped = shipped  # one tuple swapped whole: worker threads share it
        return shipped[1]

    def _own(self, copy: Policy) -> Policy:
        """The book's own policy object that the worker's copy stands for (usually already
        it: ``_policy_reference``)."""
        book = self.policies
        candidates = (book.default, *book.others.values())
        if any(p is copy for p in candidates):
            return copy
        return next((p for p in candidates if p == copy), book.by_name(copy.name))

    def close(self) -> None:
        """Stop the workers (a running read is cut off: its row is retried later)."""
        self._pool.stop()  # type: ignore[no-untyped-call]  # pebble ships no annotations here
        self._pool.join(timeout=10)
        _BOOKS.pop(self._book, None)
