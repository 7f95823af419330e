"""Benchmark: per-mail time of parsing and of `intake check` over the real-world corpus.

For every file in ../shared/corpus (or $INTAKE_CORPUS, or --corpus) it times
  * parse:  parsing.parse_message on the raw bytes (the parser's own budget),
  * check:  what `intake check` does per mail (parse, classify, fields, policy, decision),
            against the daemon's own wiring run dry (build_app(dry_run=True)),
and prints the median, p90 and max per stage with the slowest files. Each mail is timed
--repeat times and its best time kept, so a busy neighbour on a shared machine inflates
the numbers less. The correctness of the same files is pinned by tests/parsing/test_corpus.py
and tests/intake/cli/test_corpus_check.py; the timing lives here because a wall-clock
assertion in a test fails whenever the machine is loaded. Not part of the test suite. Run:
    .venv/bin/python bench/corpus_check.py [--repeat 3] [--budget 1.0]
Skips (exit 0) when the corpus folder is absent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from intake.app import build_app
from intake.cli.views import check_record
from intake.settings import load_settings
from parsing import parse_message

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
COMPANIONS = {"MANIFEST.md", "expected.jsonl"}
RECEIVED_AT = datetime(2026, 11, 22, tzinfo=UTC)  # fixed, so deadlines do not vary by run


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: float


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(
        p
        for p in corpus.rglob("*")
        if p.is_file() and p.name not in COMPANIONS and not p.name.startswith(".")
    )


def best_of(repeat: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def time_stage(
    corpus: Path, files: list[Path], repeat: int, work: Callable[[Path, bytes], object]
) -> list[Timing]:
    timings = []
    for path in files:
        raw = path.read_bytes()
        seconds = best_of(repeat, lambda p=path, r=raw: work(p, r))
        timings.append(Timing(str(path.relative_to(corpus)), seconds))
    return timings


def report(stage: str, timings: list[Timing], budget: float) -> None:
    values = sorted(t.seconds for t in timings)
    p90 = values[int(0.9 * (len(values) - 1))]
    over = sum(v > budget for v in values)
    print(
        f"{stage:6} {len(values)} mails  median {statistics.median(values) * 1e3:7.2f} ms  "
        f"p90 {p90 * 1e3:7.2f} ms  max {values[-1] * 1e3:8.2f} ms  "
        f"over {budget:g} s: {over}  total {sum(values):6.2f} s"
    )
    for slow in sorted(timings, key=lambda t: t.seconds, reverse=True)[:3]:
        print(f"       {slow.seconds * 1e3:8.2f} ms  {slow.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="time each mail N times, keep best")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per mail to flag")
    args = parser.parse_args()
    corpus = args.corpus or Path(os.environ.get("INTAKE_CORPUS", DEFAULT_CORPUS))
    if not corpus.is_dir():
        print(f"corpus folder absent: {corpus} (set INTAKE_CORPUS); skipped")
        return
    files = corpus_files(corpus)
    app = build_app(load_settings(), dry_run=True)  # `intake check`'s own wiring
    policies, identity = app.pipeline.policies, app.pipeline.identity

    def check(path: Path, raw: bytes) -> object:
        return check_record(str(path), raw, None, policies, identity, RECEIVED_AT)

    print(f"corpus {corpus}  python {sys.version.split()[0]}  best of {args.repeat}")
    report(
        "parse", time_stage(corpus, files, args.repeat, lambda _p, r: parse_message(r)), args.budget
    )
    report("check", time_stage(corpus, files, args.repeat, check), args.budget)


if __name__ == "__main__":
    main()
