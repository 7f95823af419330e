"""build_app(dry_run=True): the daemon's own wiring over the store as it is, writing nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, inspect, select

from intake.app import build_app
from intake.settings import Settings
from store.db import create_schema, make_engine, session_scope
from store.models import AppSecret


def test_a_dry_run_is_wired_like_the_daemon_and_creates_no_store(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(**{"intake.policy": "voip-hotline"})
    dry = build_app(settings, dry_run=True)
    assert not (tmp_path / "intake.db").exists()
    assert inspect(dry.engine).get_table_names() == []  # an absent store has nothing to read
    real = build_app(settings)
    try:
        assert dry.policy == real.policy and dry.policy.name == "voip-hotline"
        assert dry.pipeline.policies == real.pipeline.policies
        assert dry.pipeline.identity == real.pipeline.identity
        assert dry.pipeline.thread.domains == real.pipeline.thread.domains
        assert (dry.pipeline.number_format, dry.pipeline.retry, dry.pipeline.outbox.budget) == (
            real.pipeline.number_format,
            real.pipeline.retry,
            real.pipeline.outbox.budget,
        )
    finally:
        dry.engine.dispose()
        real.engine.dispose()


def test_a_dry_run_over_an_existing_store_stores_no_secret(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    engine = make_engine(settings.database.url)
    create_schema(engine)
    dry = build_app(settings, dry_run=True)
    try:
        with session_scope(dry.sessions) as session:
            assert session.execute(select(func.count()).select_from(AppSecret)).scalar() == 0
    finally:
        dry.engine.dispose()
        engine.dispose()
