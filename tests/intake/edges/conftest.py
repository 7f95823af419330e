"""Fixtures for the edges' tests: a real ``intake serve`` process (``served``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_for


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    db: Path
    log: Path

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [e for e in (_json(line) for line in lines) if e.get("event") == name]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def _json(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(**env: str) -> Served:
        port, db, log = free_port(), tmp_path / "intake.db", tmp_path / "serve.log"
        command = [
            sys.executable, "-m", "intake", "serve", "--listen", f"127.0.0.1:{port}",
            "--database", f"sqlite:///{db}", "--log-format", "json",
        ]  # fmt: skip
        variables = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
        variables |= {
            "INTAKE_OUTBOUND__DIRECTORY": str(tmp_path / "outbox"),
            "INTAKE_WEB__LISTEN": "127.0.0.1:0",
            **env,
        }
        with log.open("wb") as stderr:
            process = subprocess.Popen(command, env=variables, stderr=stderr, cwd=tmp_path)
        daemon = Served(process, port, db, log)
        started.append(daemon)
        wait_for(lambda: daemon.events("intake.started") or process.poll() is not None, 60)
        assert process.poll() is None, log.read_text()[-2000:]
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(timeout=30)
