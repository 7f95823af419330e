"""Structured logging: structlog to stderr, JSON for machines, console (colour on a TTY) for people.

JSON when stderr is not a TTY or the format is ``json``; every event carries a UTC ISO
timestamp and the level, and event names are namespaced (``message.processed``), so one
``message.processed`` line per message is enough for operators to follow the daemon.

This module says *how* logs look; the composition root (``intake.app``) decides *when*
they are wired, once per process, from ``Settings.logging``. Tracebacks are always plain
text: structlog's fallback (rich, with local variables) would print message bodies and
field values into the log, and takes seconds to render on a loaded machine while an SMTP
client waits for its 451.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import structlog

# The same choices as Settings.logging; spelled out here so this module imports no part
# of intake (it sits below every layer).
Level = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Format = Literal["auto", "json", "console"]


@dataclass(frozen=True)
class StderrLoggerFactory:
    """Print loggers on ``stream``, or on whatever ``sys.stderr`` is when a logger is made.

    Resolving ``sys.stderr`` late keeps log lines where the process (or pytest's capture)
    currently points stderr, instead of on the stream that was current at start-up.
    """

    stream: TextIO | None = None

    def __call__(self, *_args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(self.stream or sys.stderr)


def renders_json(fmt: Format, stream: TextIO) -> bool:
    """``auto`` means JSON unless a person is watching (a TTY)."""
    return fmt == "json" or (fmt == "auto" and not stream.isatty())


def configure_logging(
    level: Level = "INFO", fmt: Format = "auto", stream: TextIO | None = None
) -> None:
    """Wire structlog: level filter, renderer and plain-text tracebacks, on stderr."""
    target = stream or sys.stderr
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *_rendering(renders_json(fmt, target), target),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=StderrLoggerFactory(stream),
        # Not cached: structlog.testing.capture_logs swaps the processors under live loggers.
        cache_logger_on_first_use=False,
    )


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
