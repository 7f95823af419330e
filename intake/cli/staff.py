"""``intake staff``: the board's staff accounts in ``web.auth.users_file`` (add, remove, list).

Passwords are read from the terminal twice without echo (``getpass``, through click's
hidden prompt), or as the first line of standard input with ``--password-stdin`` for
scripts; they are hashed with argon2id (``intake.web.staff``) and never printed. The file
is rewritten atomically with mode 0600; a running daemon picks the change up at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from intake.cli.common import common_options, settings_from
from intake.cli.output import print_rows
from intake.errors import ConfigError
from intake.settings import Settings, check_staff_name

file_option = click.option(
    "--file",
    "users_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The users file (default: web.auth.users_file).",
)


@click.group()
def staff() -> None:
    """Staff accounts for the board's login (web.auth)."""


def _settings(common: dict[str, Any], users_file: Path | None) -> Settings:
    return settings_from(common, **{"web.auth.users_file": users_file})


def _users_file(settings: Settings) -> Path:
    path = settings.web.auth.users_file
    if path is None:
        raise click.ClickException("no users file: set web.auth.users_file or give --file PATH")
    return path


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask for the password: use --password-stdin")
    password: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return password


@staff.command(name="add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--print",
    "print_hash",
    is_flag=True,
    help="Print NAME's hash for web.auth.users instead of writing the file.",
)
@file_option
@common_options
def staff_add(
    name: str, password_stdin: bool, print_hash: bool, users_file: Path | None, **common: Any
) -> None:
    """Add the account NAME, or set its password when it exists."""
    from intake.web.staff import check_password, make_hasher, set_password

    try:
        check_staff_name(name)
        password = check_password(_read_password(password_stdin))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if print_hash:
        click.echo(f'{name} = "{make_hasher().hash(password)}"')
        return
    path = _users_file(_settings(common, users_file))
    try:
        new = set_password(path, name, password, make_hasher())
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'added' if new else 'changed the password of'} {name} in {path}")


@staff.command(name="remove")
@click.argument("name")
@file_option
@common_options
def staff_remove(name: str, users_file: Path | None, **common: Any) -> None:
    """Remove the account NAME from the users file (its sessions end with it)."""
    from intake.web.staff import remove_user

    settings = _settings(common, users_file)
    path = _users_file(settings)
    try:
        removed = remove_user(path, name)
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if not removed:
        inline = name in settings.web.auth.users
        where = "it is in the config's web.auth.users" if inline else "no such account"
        raise click.ClickException(f"{name}: not in {path}: {where}")
    click.echo(f"removed {name} from {path}")


@staff.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@file_option
@common_options
def staff_list(as_json: bool, users_file: Path | None, **common: Any) -> None:
    """Every account, by name, and where it is kept (never a hash)."""
    from intake.web.staff import read_users_file

    settings = _settings(common, users_file)
    path = settings.web.auth.users_file
    try:
        in_file = read_users_file(path) if path is not None else {}
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    rows = [{"name": n, "source": "config"} for n in settings.web.auth.users if n not in in_file]
    rows += [{"name": n, "source": str(path)} for n in in_file]
    print_rows(sorted(rows, key=lambda r: r["name"]), as_json, ["name", "source"])


COMMANDS: tuple[click.Command, ...] = (staff,)
