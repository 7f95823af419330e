"""The built wheel, installed into a fresh venv, answers `intake check` from another directory.

This proves templates/ and config/ ship inside the wheel and are found without the
source tree (no editable install, no repository on sys.path), and that the migrations
(store/migrations: env.py, the script template, versions/) do too and build a database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import make_mail

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_checks_from_elsewhere(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = dist.glob("ticket_intake-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    subprocess.run(
        [str(pip), "install", "--quiet", str(wheel)], check=True, capture_output=True, timeout=600
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mail = elsewhere / "m.eml"
    mail.write_bytes(make_mail())
    result = subprocess.run(
        [str(env_dir / "bin" / "intake"), "check", "--json", str(mail)],
        cwd=elsewhere,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    record = json.loads(result.stdout)
    assert record["subject"]["customer"] == "Acme Corp"
    assert record["missing_fields"] == []
    templates = subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-c",
            "import intake.templates as t, intake.config.policies, pathlib;"
            "print(pathlib.Path(t.__file__).parent.joinpath('confirmation.txt.j2').is_file())",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert templates.stdout.strip() == "True"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "store/migrations/env.py",
        "store/migrations/script.py.mako",
        "store/migrations/versions/0001_baseline.py",
        "intake/web/templates/queue.html",
        "intake/web/templates/ticket_body.html",
        "intake/web/templates/nav.html",
        "intake/web/templates/ops_quarantine.html",
        "intake/web/templates/login.html",
        "intake/web/static/board.js",
        "intake/web/static/board.css",
    } <= names
    intake = str(env_dir / "bin" / "intake")
    migrated = subprocess.run(
        [intake, "db", "upgrade", "--database", "sqlite:///intake.db"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "upgraded new database -> " in migrated.stdout
    current = subprocess.run(
        [intake, "db", "current", "--database", "sqlite:///intake.db"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert current.returncode == 0 and current.stdout.endswith("(head)\n"), current.stderr
