"""``intake staff add|remove|list``: the board's accounts in the users file, through the real
command (click's runner), passwords given on standard input as scripts give them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from intake.web.staff import read_users_file
from tests.intake.cli.conftest import Cli, write_config


@pytest.fixture
def users(tmp_path: Path) -> Path:
    return tmp_path / "staff.passwd"


def add(cli: Cli, users: Path, name: str, password: str) -> str:
    result = cli(
        "staff",
        "add",
        name,
        "--password-stdin",
        "--file",
        str(users),
        stdin=f"{password}\n".encode(),
    )
    assert result.exit_code == 0, result.output
    return result.output


def listed(cli: Cli, *args: str) -> list[dict[str, str]]:
    result = cli("staff", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, str]] = json.loads(result.output)
    return rows


def test_add_list_remove(cli: Cli, users: Path) -> None:
    assert "added ann" in add(cli, users, "ann", "correct horse")
    assert "added bob" in add(cli, users, "bob", "battery staple")
    assert stat.S_IMODE(users.stat().st_mode) == 0o600  # the hashes are secrets too
    stored = read_users_file(users)
    PasswordHasher().verify(stored["ann"], "correct horse")
    assert "correct horse" not in users.read_text()
    assert listed(cli, "--file", str(users)) == [
        {"name": "ann", "source": str(users)},
        {"name": "bob", "source": str(users)},
    ]

    result = cli("staff", "remove", "ann", "--file", str(users))
    assert result.exit_code == 0, result.output
    assert list(read_users_file(users)) == ["bob"]
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    again = cli("staff", "remove", "ann", "--file", str(users))
    assert again.exit_code == 1 and "ann: not in" in again.output


def test_adding_again_changes_the_password(cli: Cli, users: Path) -> None:
    add(cli, users, "ann", "first password")
    assert "changed the password of ann" in add(cli, users, "ann", "second password")
    stored = read_users_file(users)["ann"]
    PasswordHasher().verify(stored, "second password")
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(stored, "first password")


@pytest.mark.parametrize(
    ("name", "password", "expected"),
    [
        ("ann", "short", "a password has 8 to 1024 characters"),
        ("ann:admin", "long enough", "is not a staff name"),
        ("ann smith", "long enough", "is not a staff name"),
    ],
    ids=["short-password", "colon-in-name", "space-in-name"],
)
def test_bad_names_and_passwords_are_refused(
    cli: Cli, users: Path, name: str, password: str, expected: str
) -> None:
    result = cli(
        "staff",
        "add",
        name,
        "--password-stdin",
        "--file",
        str(users),
        stdin=f"{password}\n".encode(),
    )
    assert result.exit_code == 1
    assert expected in result.output
    assert not users.exists()


def test_without_a_users_file_it_says_which_key(cli: Cli) -> None:
    result = cli("staff", "add", "ann", "--password-stdin", stdin=b"long enough\n")
    assert result.exit_code == 1
    assert "web.auth.users_file" in result.output


def test_without_a_terminal_the_password_needs_password_stdin(cli: Cli, users: Path) -> None:
    result = cli("staff", "add", "ann", "--file", str(users), stdin=b"long enough\n")
    assert result.exit_code == 2 and "--password-stdin" in result.output
    assert not users.exists()


def test_the_configured_file_and_inline_accounts(tmp_path: Path, cli: Cli, users: Path) -> None:
    printed = cli("staff", "add", "carol", "--password-stdin", "--print", stdin=b"long enough\n")
    assert printed.exit_code == 0, printed.output
    assert printed.output.startswith('carol = "$argon2id$')
    extra = f"[web.auth]\nusers_file = '{users}'\n[web.auth.users]\n{printed.output}"
    config = write_config(tmp_path / "auth.toml", cli.database_url, cli.outbox, extra)
    configured = Cli(config, cli.database_url, cli.outbox)
    add(configured, users, "ann", "correct horse")  # --file: the same path
    result = configured("staff", "add", "dave", "--password-stdin", stdin=b"long enough\n")
    assert result.exit_code == 0, result.output  # the configured file, no --file
    assert listed(configured) == [
        {"name": "ann", "source": str(users)},
        {"name": "carol", "source": "config"},
        {"name": "dave", "source": str(users)},
    ]
    shown = configured("config", "show")
    assert shown.exit_code == 0 and "carol" in shown.output
    assert "$argon2" not in shown.output  # an inline hash is masked like any secret
    inline = configured("staff", "remove", "carol")
    assert inline.exit_code == 1 and "web.auth.users" in inline.output


@pytest.mark.parametrize("args", [["serve"], ["tickets", "list"]], ids=["serve", "any-command"])
def test_off_loopback_without_web_auth_every_command_names_the_key(
    tmp_path: Path, cli: Cli, args: list[str]
) -> None:
    config = write_config(tmp_path / "open.toml", cli.database_url, cli.outbox, web="0.0.0.0:0")
    result = Cli(config, cli.database_url, cli.outbox)(*args)
    assert result.exit_code == 1
    assert "web.auth: listen 0.0.0.0:0 is not loopback" in result.output
    assert "web.auth.users_file" in result.output  # and how to fix it
