"""Fixtures for the CLI tests: the real ``intake`` command run in-process with click's runner.

Each test gets its own config file (store, outbox directory, JSON logs); rows the commands
need (a pending charge, a quarantined message, a dead reply) are set up through the store's
public repository functions. The CLI configures structlog for the process, so the old
configuration comes back after every test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result
from sqlalchemy.orm import Session

from intake.cli import main
from store.db import create_schema, make_engine, make_session_factory, session_scope
from tests.conftest import make_mail


@dataclass(frozen=True)
class Cli:
    """``intake ARGS… --config CONFIG`` against this test's own store and outbox."""

    config: Path
    database_url: str
    outbox: Path

    def __call__(self, *args: str, stdin: bytes | None = None) -> Result:
        # INTAKE_* variables of the outer shell would win over the config file: drop them.
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("INTAKE_")}
        runner = CliRunner(env=env)
        return runner.invoke(main, [*args, "--config", str(self.config)], input=stdin)

    def deliver(self, raw: bytes | None = None, *extra: str) -> Result:
        result = self("deliver", "--sender", "jane@acme.example", *extra, stdin=raw or make_mail())
        assert result.exit_code == 0, result.output
        return result

    @contextmanager
    def session(self) -> Iterator[Session]:
        engine = make_engine(self.database_url)
        create_schema(engine)  # idempotent: the store at head, made if the test has none yet
        try:
            with session_scope(make_session_factory(engine)) as session:
                yield session
        finally:
            engine.dispose()

    def sent_files(self) -> list[Path]:
        return sorted(self.outbox.glob("*.eml"))


def write_config(
    path: Path, database_url: str, outbox: Path, extra: str = "", web: str = "127.0.0.1:0"
) -> Path:
    """``web``: the daemon's HTTP address; port 0 (a free one) also keeps ``intake health``
    from probing /healthz, which only a test with a running daemon wants."""
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[outbound]\ndirectory = "{outbox}"\n'
        f'[web]\nlisten = "{web}"\n'
        f'[logging]\nformat = "json"\n{extra}'
    )
    return path


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    database_url = f"sqlite:///{tmp_path / 'intake.db'}"
    outbox = tmp_path / "outbox"
    config = write_config(tmp_path / "intake.toml", database_url, outbox)
    engine = make_engine(database_url)
    create_schema(engine)  # an empty store, as `intake serve` or `intake db upgrade` leave it
    engine.dispose()
    return Cli(config, database_url, outbox)
