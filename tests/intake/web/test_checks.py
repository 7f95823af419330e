"""The readiness checks that need no running daemon: the schema, the outbox directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from intake.settings import load_settings
from intake.web.checks import Check, directory_problem, run_checks, schema_problem
from store import migrate
from store.db import make_engine
from tests.store import models_1abcf39


def legacy(engine: Engine) -> None:
    models_1abcf39.Base.metadata.create_all(engine)  # a daemon before migrations existed


def from_a_newer_version(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))


def check_schema(tmp_path: Path, prepare: Callable[[Engine], object]) -> str | None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    engine = make_engine(url)
    try:
        prepare(engine)
        return schema_problem(engine, load_settings(None, {"database.url": url}))
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("prepare", "problem"),
    [
        (lambda engine: None, "no intake database at {path}: point at yours with --config"),
        (legacy, "the schema at {path} is behind (unversioned, from before migrations;"),
        (migrate.upgrade, None),
        (from_a_newer_version, "the schema at {path} is at revision 9999_from_the_future, newer"),
    ],
    ids=["empty", "created-before-migrations", "at-head", "newer"],
)
def test_schema_problem(
    tmp_path: Path, prepare: Callable[[Engine], object], problem: str | None
) -> None:
    """The daemon's own refusal, in its words: health fails exactly when serve would."""
    found = check_schema(tmp_path, prepare)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem.format(path=tmp_path / "intake.db"))


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
    found = check_schema(tmp_path, lambda engine: migrate.upgrade(engine, migrate.BASELINE))
    assert found == (
        f"the schema at {tmp_path / 'intake.db'} is behind ({migrate.BASELINE}; this version "
        f"needs {migrate.head()}): run `intake db upgrade` with the same --config/--database, "
        "then start again"
    )
