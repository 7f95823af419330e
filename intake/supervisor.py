"""The supervisor: every long-running task of the daemon, kept running, its health on record.

ARCHITECTURE invariant 9, "never silently down". Each task is a unit: a coroutine that runs
until its stop event is set, or a blocking loop that gets its own thread (never a thread of
the default executor, which it would hold for good). A unit that raises, or that returns
without being asked to, is logged once with its traceback (a repeat of the same error in a
row is one short line, so a task failing every few seconds cannot flood the log) and
started again after ``backoff_delay``. Meanwhile ``health()`` says it is down, since when
and why, which ``/healthz`` and the metrics report. ``stop()`` ends the units one by one in
the order they were added, so the composition root decides the shutdown order.

It sits below every layer and imports none of them: units are plain callables.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from intake.backoff import backoff_delay

Clock = Callable[[], datetime]
AsyncUnit = Callable[[asyncio.Event], Awaitable[None]]
ThreadUnit = Callable[[threading.Event], None]

_JITTER = 0.2  # ±20 % around each restart delay
_MAX_ERROR = 300  # characters of an error kept for health: its first line, shortened
_HEALTHY_AFTER = 60.0  # seconds: a unit that ran this long before failing starts a new streak


@dataclass(frozen=True, slots=True)
class TaskHealth:
    """One supervised task as health and metrics see it."""

    name: str
    alive: bool
    restarts: int
    last_error: str | None
    down_since: datetime | None


@dataclass
class _Task:
    name: str
    run: AsyncUnit
    on_stop: Callable[[], None] | None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    alive: bool = False
    restarts: int = 0
    failures: int = 0  # in a row: the backoff exponent
    last_error: str | None = None
    down_since: datetime | None = None
    keeper: asyncio.Task[None] | None = None

    def health(self) -> TaskHealth:
        return TaskHealth(self.name, self.alive, self.restarts, self.last_error, self.down_since)


class Supervisor:
    """Runs units, restarts the ones that die, reports each one's health."""

    def __init__(
        self,
        clock: Clock,
        *,
        restart_initial: float = 1.0,
        restart_max: float = 60.0,
        jitter: float = _JITTER,
        healthy_after: float = _HEALTHY_AFTER,
    ) -> None:
        self.clock = clock
        self.restart_initial, self.restart_max, self.jitter = restart_initial, restart_max, jitter
        self.healthy_after = healthy_after
        self._tasks: list[_Task] = []
        self.log = structlog.get_logger("intake.supervisor")

    def add(self, name: str, run: AsyncUnit, on_stop: Callable[[], None] | None = None) -> None:
        """A coroutine unit: ``run(stop)`` until ``stop`` is set; ``on_stop`` also asks it."""
        self._tasks.append(_Task(name, run, on_stop))

    def add_thread(
        self, name: str, run: ThreadUnit, on_stop: Callable[[], None] | None = None
    ) -> None:
        """A blocking unit in its own thread: ``run(stop)`` until the threading event is set."""
        signal = threading.Event()

        async def in_thread(stop: asyncio.Event) -> None:
            signal.clear()
            await run_in_thread(name, lambda: run(signal))

        def ask() -> None:
            signal.set()
            if on_stop is not None:
                on_stop()

        self._tasks.append(_Task(name, in_thread, ask))

    def start(self) -> None:
        """Start every unit (on the running loop)."""
        for task in self._tasks:
            task.alive = True
            task.keeper = asyncio.create_task(self._keep(task), name=f"supervise {task.name}")

    async def stop(self, grace: float = 30.0) -> None:
        """Stop the units in the order they were added, each within ``grace`` seconds."""
        for task in self._tasks:
            task.stop.set()
            if task.on_stop is not None:
                task.on_stop()
            if task.keeper is None:
                continue
            try:
                await asyncio.wait_for(asyncio.shield(task.keeper), grace)
            except TimeoutError:
                self.log.error("task.stop_timeout", task=task.name, grace=grace)
                task.keeper.cancel()
            except Exception:  # the keeper logs its unit's errors; a stop never raises
                self.log.exception("task.stop_failed", task=task.name)

    def health(self) -> tuple[TaskHealth, ...]:
        return tuple(task.health() for task in self._tasks)

    async def _keep(self, task: _Task) -> None:
        while not task.stop.is_set():
            started = time.monotonic()
            error = await self._run_once(task)
            if task.stop.is_set():
                break
            if time.monotonic() - started > self.healthy_after:
                task.failures = 0  # it ran well for a while: this is a new streak
            self._down(task, error)
            delay = backoff_delay(
                task.failures, self.restart_initial, self.restart_max, self.jitter
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task.stop.wait(), delay)
            if task.stop.is_set():
                break
            task.restarts += 1
            task.alive, task.down_since = True, None
            self.log.info("task.restarted", task=task.name, restarts=task.restarts)
        task.alive = False

    async def _run_once(self, task: _Task) -> BaseException | None:
        """Run the unit; the exception it ended with, or None if it simply returned."""
        try:
            await task.run(task.stop)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # SystemExit from a unit's thread too: never silent
            return exc
        return None

    def _down(self, task: _Task, error: BaseException | None) -> None:
        described = _describe(error) if error else "ended without being asked to stop"
        repeat = task.failures > 0 and described == task.last_error
        task.failures += 1
        task.alive, task.down_since, task.last_error = False, self.clock(), described
        if repeat:  # the traceback is in the log already: one line per repeat
            self.log.warning("task.failed_again", task=task.name, failures=task.failures)
        elif error is None:
            self.log.error("task.ended", task=task.name, failures=task.failures)
        else:
            self.log.error("task.failed", task=task.name, failures=task.failures, exc_info=error)


def _describe(error: BaseException) -> str:
    """The type and the first line of the message: SQL and values come on later lines."""
    text = str(error).strip().splitlines()
    first = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return first[:_MAX_ERROR]


async def run_in_thread(name: str, target: Callable[[], None]) -> None:
    """Run a blocking loop in a thread of its own; return or raise as it does."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def body() -> None:
        outcome: BaseException | None = None
        try:
            target()
        except BaseException as exc:  # a dead thread must be seen by the supervisor
            outcome = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=body, name=name, daemon=True).start()
    await done
