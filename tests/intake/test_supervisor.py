"""The supervisor on its own: restarts, one traceback per streak, health while down, stop order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from intake.supervisor import Supervisor, TaskHealth

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BOUND = 30.0  # seconds: generous, only reached when the behaviour is wrong


def supervisor(initial: float = 0.01) -> Supervisor:
    return Supervisor(lambda: NOW, restart_initial=initial, restart_max=0.05)


async def until(condition: Callable[[], Any], timeout: float = BOUND) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 2 * BOUND))


def test_a_unit_that_raises_is_restarted_and_its_traceback_logged_once_per_streak() -> None:
    calls: list[int] = []

    async def flaky(stop: asyncio.Event) -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise RuntimeError("store went away")
        await stop.wait()

    async def scenario() -> None:
        sup = supervisor()
        sup.add("outbox", flaky)
        with capture_logs() as logs:
            sup.start()
            await until(lambda: sup.health()[0].restarts == 3 and sup.health()[0].alive)
            await sup.stop()
        failed = [e for e in logs if e["event"] == "task.failed"]
        again = [e for e in logs if e["event"] == "task.failed_again"]
        assert len(failed) == 1 and isinstance(failed[0]["exc_info"], RuntimeError)
        assert [e["failures"] for e in again] == [2, 3]
        assert "exc_info" not in again[0]  # the traceback is in the log once
        assert sup.health()[0].last_error == "RuntimeError: store went away"

    run(scenario)


def test_health_says_down_since_when_while_the_unit_waits_to_restart() -> None:
    async def broken(stop: asyncio.Event) -> None:
        raise OSError("outbox is a file")

    async def scenario() -> None:
        sup = Supervisor(lambda: NOW, restart_initial=60.0, restart_max=60.0)
        sup.add("outbox", broken)
        sup.start()
        await until(lambda: not sup.health()[0].alive)
        assert sup.health() == (TaskHealth("outbox", False, 0, "OSError: outbox is a file", NOW),)
        await sup.stop()  # a stop during the backoff ends it at once

    run(scenario)


def test_a_thread_that_dies_is_seen_and_restarted_in_a_new_thread() -> None:
    threads: list[str] = []

    def loop(stop: threading.Event) -> None:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:
            raise ValueError("writer crashed")
        stop.wait(BOUND)

    async def scenario() -> None:
        sup = supervisor()
        sup.add_thread("writer", loop)
        sup.start()
        await until(lambda: len(threads) == 2 and sup.health()[0].alive)
        [health] = sup.health()
        assert (health.restarts, health.last_error) == (1, "ValueError: writer crashed")
        assert threads == ["writer", "writer"]
        await sup.stop()
        assert not sup.health()[0].alive

    run(scenario)


def test_a_unit_that_returns_unasked_is_reported_and_restarted() -> None:
    runs: list[int] = []

    async def quits(stop: asyncio.Event) -> None:
        runs.append(1)
        if len(runs) > 1:
            await stop.wait()

    async def scenario() -> None:
        sup = supervisor()
        sup.add("worker", quits)
        with capture_logs() as logs:
            sup.start()
            await until(lambda: len(runs) == 2)
            await sup.stop()
        assert [e["event"] for e in logs if e["event"].startswith("task.")] == [
            "task.ended",
            "task.restarted",
        ]

    run(scenario)


def test_stop_ends_the_units_one_by_one_in_the_order_they_were_added() -> None:
    order: list[str] = []
    running: set[str] = set()

    def unit(name: str) -> Callable[[asyncio.Event], Awaitable[None]]:
        async def body(stop: asyncio.Event) -> None:
            running.add(name)
            await stop.wait()
            await asyncio.sleep(0.01)  # a later unit must not finish first meanwhile
            order.append(name)

        return body

    async def scenario() -> None:
        sup = supervisor()
        for name in ("smtp", "writer", "worker", "outbox", "web"):
            sup.add(name, unit(name))
        sup.start()
        await until(lambda: len(running) == 5)
        await sup.stop()

    run(scenario)
    assert order == ["smtp", "writer", "worker", "outbox", "web"]


@pytest.mark.parametrize("with_hook", [False, True], ids=["event-only", "with-on-stop"])
def test_a_thread_unit_is_asked_to_stop_through_its_event_and_its_hook(with_hook: bool) -> None:
    hooked = threading.Event()

    def loop(stop: threading.Event) -> None:
        stop.wait(BOUND)

    async def scenario() -> None:
        sup = supervisor()
        sup.add_thread("imap", loop, hooked.set if with_hook else None)
        sup.start()
        await until(lambda: sup.health()[0].alive)
        await sup.stop(grace=BOUND)

    run(scenario)
    assert hooked.is_set() is with_hook


def test_a_unit_that_ran_well_for_a_while_before_failing_starts_a_new_streak() -> None:
    runs: list[int] = []

    async def unit(stop: asyncio.Event) -> None:
        runs.append(1)
        if len(runs) in (1, 3):
            await asyncio.sleep(0.2)  # longer than healthy_after: it worked for a while
        if len(runs) <= 3:
            raise RuntimeError("relay vanished")
        await stop.wait()

    async def scenario() -> None:
        sup = Supervisor(lambda: NOW, restart_initial=0.01, restart_max=0.05, healthy_after=0.1)
        sup.add("outbox", unit)
        with capture_logs() as logs:
            sup.start()
            await until(lambda: len(runs) == 4)
            await sup.stop()
        events = [e["event"] for e in logs if e["event"].startswith("task.failed")]
        assert events == ["task.failed", "task.failed_again", "task.failed"]

    run(scenario)
