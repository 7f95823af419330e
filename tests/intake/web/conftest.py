"""The board's browser fixtures: Debian's Chromium driven by Playwright, and the directory
where screenshots are kept as test artefacts (printed at the end of the run)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("INTAKE_CHROMIUM", "/usr/bin/chromium")
_written: list[Path] = []


def artefacts_dir(config: pytest.Config) -> Path:
    """``INTAKE_ARTEFACTS``, else ``tmp/artefacts`` at the repository root (git-ignored)."""
    return Path(os.environ.get("INTAKE_ARTEFACTS") or config.rootpath / "tmp" / "artefacts")


@pytest.fixture
def artefacts(request: pytest.FixtureRequest) -> Path:
    directory = artefacts_dir(request.config)
    directory.mkdir(parents=True, exist_ok=True)
    _written.append(directory)
    return directory


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module (Debian's: Playwright downloads none). Not for the
    session: Playwright's sync API keeps an event loop on the main thread while it runs,
    and later tests call ``asyncio.run`` there (``intake deliver``)."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _written:
        terminalreporter.write_line(f"board screenshots: {_written[0]}")
