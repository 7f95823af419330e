"""Repeated event-loop errors are throttled: one traceback per kind, then counts per window.

A stand-in loop records ``call_later`` instead of waiting, so the windows are driven by
the test, not by the clock.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from structlog.testing import capture_logs

from intake.logs import throttled_loop_errors


class ManualLoop:
    """Just enough of an event loop: ``call_later`` queues, ``tick`` runs what is due."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., None], tuple[Any, ...]]] = []

    def call_later(self, _delay: float, callback: Callable[..., None], *args: Any) -> None:
        self.pending.append((callback, args))

    def tick(self) -> None:  # one interval passes
        due, self.pending = self.pending, []
        for callback, args in due:
            callback(*args)


def emfile() -> dict[str, Any]:
    return {
        "message": "socket.accept() out of system resource",
        "exception": OSError(errno.EMFILE, "Too many open files"),
    }


def test_a_flood_is_one_traceback_then_one_count_per_window_per_kind() -> None:
    loop, handle = ManualLoop(), throttled_loop_errors(interval=60)
    with capture_logs() as logs:
        for _ in range(10_000):
            handle(loop, emfile())  # type: ignore[arg-type]
        handle(loop, {"message": "Exception in callback f(<x>)", "exception": ValueError()})
        loop.tick()
        for _ in range(5):
            handle(loop, emfile())  # type: ignore[arg-type]
        loop.tick()
        loop.tick()  # a quiet window: the kind's window closes
        handle(loop, emfile())  # type: ignore[arg-type]
    summary = [(e["event"], e["kind"], e.get("count")) for e in logs]
    kind = "socket.accept() out of system resource: OSError/EMFILE"
    assert summary == [
        ("loop.error", kind, None),
        ("loop.error", "Exception in callback f: ValueError", None),
        ("loop.error_repeated", kind, 9_999),
        ("loop.error_repeated", kind, 5),
        ("loop.error", kind, None),  # back after a quiet window: its traceback again
    ]
    assert logs[0]["exc_info"].errno == errno.EMFILE  # the first one carries the traceback
