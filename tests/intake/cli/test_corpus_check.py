"""Every real-world mail in ../shared/corpus goes through `intake check` without an exception."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from intake.app import build_app
from intake.cli.views import check_record
from intake.settings import load_settings
from tests.conftest import CORPUS

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus folder absent: {CORPUS}")

COMPANIONS = {"MANIFEST.md", "expected.jsonl"}


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in COMPANIONS and not p.name.startswith(".")
    )


def test_every_corpus_mail_is_checked_without_error() -> None:
    app = build_app(load_settings(), dry_run=True)  # what `intake check` checks against
    policies, identity = app.pipeline.policies, app.pipeline.identity
    when = datetime(2026, 11, 22, tzinfo=UTC)
    errors = {}
    for path in corpus_files():
        record = check_record(str(path), path.read_bytes(), None, policies, identity, when)
        if "error" in record:
            errors[str(path.relative_to(CORPUS))] = record["error"]
            continue
        try:
            # the --json output must serialise as valid UTF-8 (no lone surrogates)
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            errors[str(path.relative_to(CORPUS))] = f"not valid UTF-8 output: {exc}"
    assert len(corpus_files()) > 300
    assert errors == {}


def test_check_cli_over_the_whole_corpus(tmp_path: Path) -> None:
    files = [str(p) for p in corpus_files()]
    result = subprocess.run(
        [sys.executable, "-m", "intake", "check", "--json", *files],
        capture_output=True,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == files
    assert all("error" not in r for r in records)
    assert b"Traceback" not in result.stderr
