"""Structured logging: structlog to stderr, JSON for machines, console (colour on a TTY) for people.

JSON when stderr is not a TTY or the format is ``json``; every event carries a UTC ISO
timestamp and the level, and event names are namespaced (``message.processed``), so one
``message.processed`` line per message is enough for operators to follow the daemon.

Repeated errors are throttled (``throttled_loop_errors``): the first with its traceback,
then a count per interval, so a fault that repeats thousands of times a second (EMFILE on
``accept()``) costs a few lines, not the disk.

This module says *how* logs look; the composition root (``intake.app``) decides *when*
they are wired, once per process, from ``Settings.logging``. Tracebacks are always plain
text: structlog's fallback (rich, with local variables) would print message bodies and
field values into the log, and takes seconds to render on a loaded machine while an SMTP
client waits for its 451.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import structlog

# The same choices as Settings.logging; spelled out here so this module imports no part
# of intake (it sits below every layer).
Level = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Format = Literal["auto", "json", "console"]


@dataclass(frozen=True)
class StderrLoggerFactory:
    """Write loggers on ``stream``, or on whatever ``sys.stderr`` is when a logger is made.

    Resolving ``sys.stderr`` late keeps log lines where the process (or pytest's capture)
    currently points stderr, instead of on the stream that was current at start-up.
    """

    stream: TextIO | None = None

    def __call__(self, *_args: Any) -> structlog.WriteLogger:
        # One write of the line and its newline, then a flush: the daemon and its processing
        # process share stderr, and print()'s two writes let another process's line land
        # between a line and its newline (seen: two JSON objects on one line).
        return structlog.WriteLogger(self.stream or sys.stderr)


def renders_json(fmt: Format, stream: TextIO) -> bool:
    """``auto`` means JSON unless a person is watching (a TTY)."""
    return fmt == "json" or (fmt == "auto" and not stream.isatty())


def configure_logging(
    level: Level = "INFO",
    fmt: Format = "auto",
    stream: TextIO | None = None,
    *,
    tracebacks: bool = True,
) -> None:
    """Wire structlog: level filter, renderer and plain-text tracebacks, on stderr.

    ``tracebacks=False`` keeps every event on one short line: the exception's type name
    replaces its traceback. ``intake deliver`` runs so under an MTA, whose pipe reads only
    a few kilobytes of the command's output (Postfix pipe(8): 4 KB).
    """
    target = stream or sys.stderr
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *([] if tracebacks else [drop_traceback]),
            *_rendering(renders_json(fmt, target), target),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=StderrLoggerFactory(stream),
        # Not cached: structlog.testing.capture_logs swaps the processors under live loggers.
        cache_logger_on_first_use=False,
    )
    if level == "DEBUG":
        # Lines at INFO and above carry ids and outcomes only; DEBUG ones may not (issue 13
        # item 7), so the log says so once, where whoever reads it starts.
        structlog.get_logger("intake.logs").warning("logging.debug_enabled", note=DEBUG_NOTE)


DEBUG_NOTE = (
    "DEBUG lines may contain message content: exception texts and tracebacks that quote "
    "header or field values; keep such logs private and switch back to INFO"
)


def raised_at(exc: BaseException) -> str | None:
    """``file:line`` of the frame that raised ``exc``: what an error line says instead of
    the exception's text, which may quote message content or SQL parameters."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


def drop_traceback(
    _logger: Any, _name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Replace ``exc_info`` by the exception's type name (``exc_type``): one line per event."""
    exc_info = event.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        event["exc_type"] = type(exc_info).__name__
    elif isinstance(exc_info, tuple) and exc_info[0] is not None:
        event["exc_type"] = exc_info[0].__name__
    return event


def _rendering(use_json: bool, stream: TextIO) -> list[structlog.typing.Processor]:
    if use_json:
        # format_exc_info: traceback.format_exception text, no locals (unlike dict_tracebacks).
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    # The console renderer formats exc_info itself; plain_traceback keeps locals out.
    return [
        structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    ]


LoopErrorHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]


def throttled_loop_errors(interval: float) -> LoopErrorHandler:
    """An event-loop exception handler that cannot flood the log.

    With file descriptors exhausted, asyncio reports every failed ``accept()`` (up to its
    backlog per loop tick, again each second): once 1,055,857 tracebacks in 5 minutes. Per
    kind of error (the loop's message and the exception's type and errno), the first
    occurrence is logged with its traceback; later ones are counted and logged as one
    ``loop.error_repeated`` line per ``interval`` seconds while they keep coming.
    """
    log = structlog.get_logger("intake.loop")
    counts: dict[str, int] = {}  # kinds inside a window -> occurrences not logged yet

    def flush(loop: asyncio.AbstractEventLoop, kind: str) -> None:
        count = counts.pop(kind, 0)
        if count:
            log.error("loop.error_repeated", kind=kind, count=count, interval=interval)
            counts[kind] = 0  # still coming: keep counting, not another traceback
            loop.call_later(interval, flush, loop, kind)

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        kind = _error_kind(str(context.get("message", "")), error)
        if kind in counts:
            counts[kind] += 1
            return
        counts[kind] = 0
        log.error("loop.error", kind=kind, exc_info=error if error is not None else False)
        loop.call_later(interval, flush, loop, kind)

    return handle


def _error_kind(message: str, error: BaseException | None) -> str:
    # "Exception in callback Server._start_serving(<objects>)": the reprs vary, the kind not.
    message = re.sub(r"\([^)].*$", "", message)
    if error is None:
        return message
    name = type(error).__name__
    number = getattr(error, "errno", None)
    if isinstance(number, int):
        name = f"{name}/{errno.errorcode.get(number, number)}"
    return f"{message}: {name}" if message else name
