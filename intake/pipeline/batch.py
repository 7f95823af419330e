"""Group commit for COMMIT 2: the messages read meanwhile are written in one transaction.

COMMIT 1's twin (``intake.edges.groupcommit``) has a writer thread that the event loop
hands rows to; COMMIT 2 already runs in worker threads, one per message in hand, so here
the first thread to finish reading leads: it takes every message that is waiting to be
written (at most ``limit``), writes them in one transaction and hands each thread its own
outcome, while the threads that came meanwhile wait for it. One ``BEGIN IMMEDIATE``, one
write gate and one fsync then serve a whole group: on 2 cores those were ~1/8 of the
processing process and all of its serial wait (issue 11).

A thread never gets its answer before the transaction holding its writes committed, and
a failure is the failing message's own: ``write`` isolates each message of a group (a
SAVEPOINT each), so what one raises is raised in its own thread only, and the
transaction's own failure (the commit) is raised in every thread of the group.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(eq=False)
class Entry(Generic[Item, Result]):
    """One message waiting in a group: what to write, then what came of it."""

    item: Item
    result: Result | None = None
    error: BaseException | None = None
    done: bool = False

    def answer(self, result: Result) -> None:
        self.result, self.done = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True


# Writes a group in one transaction: answers or fails every entry it was given.
WriteGroup = Callable[[Sequence[Entry[Item, Result]]], None]


@dataclass
class CommitGroup(Generic[Item, Result]):
    """Leader/follower group commit: ``run`` returns once the item's group committed."""

    limit: int = 32
    _waiting: list[Entry[Item, Result]] = field(default_factory=list)
    _mutex: threading.Lock = field(default_factory=threading.Lock)  # guards _waiting
    _leader: threading.Lock = field(default_factory=threading.Lock)  # one group at a time

    def run(self, item: Item, write: WriteGroup[Item, Result]) -> Result:
        """Write ``item`` in the next group; raises what its write (or the commit) raised."""
        entry: Entry[Item, Result] = Entry(item)
        with self._mutex:
            self._waiting.append(entry)
        while not entry.done:
            with self._leader:
                if entry.done:  # a leader before us wrote it while we waited
                    break
                with self._mutex:
                    group = self._waiting[: self.limit]
                    del self._waiting[: self.limit]
                self._lead(group, write)
        if entry.error is not None:
            raise entry.error
        assert entry.result is not None  # done without error: answered
        return entry.result

    @staticmethod
    def _lead(group: list[Entry[Item, Result]], write: WriteGroup[Item, Result]) -> None:
        try:
            write(group)
        except BaseException as exc:  # the transaction failed: every message of it did
            for entry in group:
                if entry.error is None:  # its own failure stays; an answer was not committed
                    entry.fail(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            for entry in group:  # a write that forgot one must not leave its thread waiting
                if not entry.done:
                    entry.fail(RuntimeError("the commit group left this message unanswered"))
