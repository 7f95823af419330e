"""Profile: CPU per ticket end to end, in-process, with a customer directory.

Builds the app on a fresh SQLite store (``--database`` for another), imports a
``--customers`` directory, stores ``--messages`` of bench/compare.py's ~5.5 KB messages
(one sender each) with COMMIT 1, then processes them one by one and writes every
confirmation into the outbox directory, measuring process CPU time (``time.process_time``)
for processing plus writing. ``--profile`` prints the cProfile top functions by own
time; ``DUMP=file`` also saves the profile for pstats.

``--worker`` processes them as the processing process does instead: its
``ProcessingWorker`` with its pool of reading processes (``intake.workers``, or
``--workers``) and its messages in hand, so COMMIT 2's groups form; CPU is then this
process's plus its reading workers' (``/proc``), after a warm-up that starts the pool.
``--commit-group 1`` writes each message in a transaction of its own, for a before/after.
Not part of the test suite; the hot spots of issue 11 were found with it.

    .venv/bin/python bench/profile_processing.py --messages 300 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compare import customers_csv, message  # noqa: E402

from intake.app import App, _processing_worker, build_app  # noqa: E402
from intake.pipeline.core import Envelope, Outcome, prepare_inbound  # noqa: E402
from intake.pipeline.customers import read_directory, values_from_record  # noqa: E402
from intake.settings import load_settings  # noqa: E402
from store import repository as repo  # noqa: E402
from store.db import session_scope  # noqa: E402
from store.models import InboundMessage, InboundStatus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--database", default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--worker", action="store_true", help="as the processing process")
    parser.add_argument("--workers", type=int, default=None, help="reading workers (--worker)")
    parser.add_argument("--commit-group", type=int, default=None, help="intake.commit_group")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="intake-profile-"))
    settings = load_settings(
        None,
        {
            "database.url": args.database or f"sqlite:///{work / 'intake.db'}",
            "outbound.directory": str(work / "outbox"),
            "logging.level": "ERROR",
            **({"intake.workers": args.workers} if args.workers is not None else {}),
            **({"intake.commit_group": args.commit_group} if args.commit_group else {}),
        },
    )
    app = build_app(settings)
    records = read_directory(customers_csv(work / "customers.csv", args.customers))
    with session_scope(app.sessions) as session:
        repo.upsert_customers(
            session, [values_from_record(r) for r in records], app.pipeline.clock()
        )
    ids = []
    for n in range(args.messages):
        sender, raw = message(n)
        item = prepare_inbound(raw, Envelope("smtp", "bench", sender), app.pipeline.clock())
        ids.append(app.pipeline.ingest([item])[0].inbound_id)
    if args.worker:
        asyncio.run(as_worker(app, ids, work))
        return
    app.pipeline.process(ids.pop(0))  # first-use costs (template compile, caches) apart
    profiler = cProfile.Profile() if args.profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    for inbound_id in ids:
        app.pipeline.process(inbound_id)
    while asyncio.run(app.outbox.flush_once(limit=100)):
        pass
    if profiler:
        profiler.disable()
    cpu = time.process_time() - started
    written = len(list((work / "outbox").glob("*.eml")))
    print(
        f"{len(ids)} tickets, {args.customers} customers: {cpu / len(ids) * 1000:.2f} ms CPU "
        f"per ticket (processing + {written} confirmations written)"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        if os.environ.get("DUMP"):
            profiler.dump_stats(os.environ["DUMP"])
        if os.environ.get("CALLERS"):
            pstats.Stats(profiler).print_callers(os.environ["CALLERS"])


WARM_UP = 20


async def as_worker(app: App, ids: list[int], work: Path) -> None:
    """The processing process's worker over ``ids``: CPU per ticket of it and its pool."""
    worker = _processing_worker(app)
    loop = asyncio.get_running_loop()
    finished, goal, reached = 0, 0, asyncio.Event()
    lock = threading.Lock()

    def on_done(_outcome: Outcome, _seconds: float) -> None:  # in a worker thread
        nonlocal finished
        with lock:
            finished += 1
            if finished >= goal:
                loop.call_soon_threadsafe(reached.set)

    async def until(count: int) -> None:
        nonlocal goal
        while True:  # a wake-up for an earlier goal may still be on its way
            with lock:
                if finished >= count:
                    return
                goal = count
                reached.clear()
            await reached.wait()

    worker.on_done = on_done
    stop = asyncio.Event()
    warm, measured = ids[:WARM_UP], ids[WARM_UP:]
    # The rest waits as failed-for-later, so the worker's first sweep takes the warm-up only.
    with session_scope(app.sessions) as session:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id.in_(measured))
            .values(status=InboundStatus.FAILED, next_attempt_at=FAR)
        )
    running = asyncio.create_task(worker.run(stop))
    for inbound_id in warm:
        worker.submit(inbound_id)
    await until(len(warm))
    with session_scope(app.sessions) as session:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id.in_(measured))
            .values(status=InboundStatus.RECEIVED, next_attempt_at=None)
        )
    started, wall = tree_cpu(), time.perf_counter()
    own = os.times().user + os.times().system
    for inbound_id in measured:
        worker.submit(inbound_id)
    await until(len(ids))
    while await app.outbox.flush_once(limit=100):
        pass
    cpu, wall = tree_cpu() - started, time.perf_counter() - wall
    own = os.times().user + os.times().system - own
    stop.set()
    await running
    written = len(list((work / "outbox").glob("*.eml")))
    print(
        f"{len(measured)} tickets as the processing process ({worker.concurrency} in hand, "
        f"commit group {app.pipeline.commits.limit}): {cpu / len(measured) * 1000:.2f} ms CPU "
        f"per ticket ({own / len(measured) * 1000:.2f} of it in this process, the rest in "
        f"its reading workers), {len(measured) / wall:.0f} tickets/s "
        f"({written} confirmations written)"
    )


FAR = datetime(9999, 1, 1, tzinfo=UTC)


def tree_cpu() -> float:
    """CPU seconds of this process and of its live children (the reading workers)."""
    mine = os.times()
    total = mine.user + mine.system
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # the parent pid
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


CLK_TCK = os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
