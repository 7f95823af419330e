"""The readiness checks that need no running daemon: the schema, the outbox directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from intake.web.checks import Check, directory_problem, run_checks, schema_problem
from store import migrate
from store.db import create_schema, make_engine

WHERE = "sqlite:///intake.db"


def legacy(engine: Engine) -> None:
    create_schema(engine)  # what a daemon created before migrations existed


def from_a_newer_version(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))


@pytest.mark.parametrize(
    ("prepare", "problem"),
    [
        (lambda engine: None, f"no schema in the store at {WHERE}"),
        (legacy, None),
        (migrate.upgrade, None),
        (from_a_newer_version, "the store is at revision 9999_from_the_future, newer than"),
    ],
    ids=["empty", "created-before-migrations", "at-head", "newer"],
)
def test_schema_problem(
    tmp_path: Path, prepare: Callable[[Engine], object], problem: str | None
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    prepare(engine)
    found = schema_problem(engine, WHERE)
    engine.dispose()
    assert found == problem or (problem is not None and found and found.startswith(problem))


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        ("missing", None),
        ("directory", None),
        ("file", "is not a directory"),
        ("missing-under-file", "is not a directory"),
    ],
    ids=["created-on-demand", "exists", "a-file", "parent-is-a-file"],
)
def test_directory_problem(tmp_path: Path, layout: str, problem: str | None) -> None:
    target = tmp_path / "outbox"
    if layout == "directory":
        target.mkdir()
    elif layout == "file":
        target.write_text("x")
    elif layout == "missing-under-file":
        target.write_text("x")
        target = target / "sub"
    found = directory_problem(target)
    assert found == problem or (problem is not None and found and problem in found)


def test_a_check_that_raises_fails_with_its_first_line_and_the_others_still_run() -> None:
    def boom() -> str | None:
        raise RuntimeError("store down\n[SQL: SELECT secret]")

    results = run_checks([Check("store", boom), Check("outbox", lambda: None)])
    assert [(r.name, r.ok, r.detail) for r in results] == [
        ("store", False, "RuntimeError: store down"),
        ("outbox", True, "ok"),
    ]


def test_a_store_one_revision_behind_fails_naming_the_command(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    migrate.upgrade(engine, migrate.BASELINE)
    found = schema_problem(engine, WHERE)
    engine.dispose()
    assert found == (
        f"the store is at revision {migrate.BASELINE}, behind {migrate.head()}: "
        "run `intake db upgrade`"
    )
