"""Profile: CPU per ticket end to end, in-process, with a customer directory.

Builds the app on a fresh SQLite store (``--database`` for another), imports a
``--customers`` directory, stores ``--messages`` of bench/compare.py's ~5.5 KB messages
(one sender each) with COMMIT 1, then processes them one by one and writes every
confirmation into the outbox directory, measuring process CPU time (``time.process_time``)
for processing plus writing. ``--profile`` prints the cProfile top functions by own
time; ``DUMP=file`` also saves the profile for pstats.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compare import customers_csv, message  # noqa: E402

from intake.app import build_app  # noqa: E402
from intake.pipeline.core import Envelope, prepare_inbound  # noqa: E402
from intake.pipeline.customers import read_directory, values_from_record  # noqa: E402
from intake.settings import load_settings  # noqa: E402
from store import repository as repo  # noqa: E402
from store.db import session_scope  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--database", default=None)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="intake-profile-"))
    settings = load_settings(
        None,
        {
            "database.url": args.database or f"sqlite:///{work / 'intake.db'}",
            "outbound.directory": str(work / "outbox"),
            "logging.level": "ERROR",
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


if __name__ == "__main__":
    main()
