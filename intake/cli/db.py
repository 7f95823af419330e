"""The store's schema: ``intake db current`` says where it stands, ``intake db upgrade`` moves it.

The daemon never upgrades a schema that is behind (it refuses, naming ``intake db
upgrade``); this group is the operator's step, safe to run from several hosts at once.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from intake.app import store_status, upgrade_store
from intake.cli.common import SchemaRefused, common_options, settings_from
from intake.errors import SchemaError
from intake.schema import schema_refusal, where
from store.db import driver_reason


@click.group(name="db")
def db_group() -> None:
    """The store's schema: its revision, and upgrading it."""


@db_group.command(name="upgrade")
@common_options
def db_upgrade(**common: Any) -> None:
    """Bring the schema to this version's head (a new database is created).

    A database from before migrations is recognised and stamped first. Exit 0 at head,
    78 when the database is not one intake made or is newer than this version.
    """
    settings = settings_from(common)
    try:
        done = upgrade_store(settings)
    except SchemaError as exc:
        raise SchemaRefused(str(exc)) from None
    except Exception as exc:  # unreachable server, bad URL, a failing migration
        raise click.ClickException(f"cannot upgrade the store: {driver_reason(exc)}") from None
    before, after = done.before, done.after
    if after.newer:
        raise SchemaRefused(schema_refusal(after, settings) or "newer schema")
    if not done.changed:
        click.echo(f"{where(settings)}: already at {after.current} (head)")
        return
    found = before.current or ("unversioned" if before.exists else "new database")
    click.echo(f"{where(settings)}: upgraded {found} -> {after.current}")


@db_group.command(name="current")
@click.option("--json", "as_json", is_flag=True)
@common_options
def db_current(as_json: bool, **common: Any) -> None:
    """The schema's revision and whether it is this version's head. Exit 0 at head, else 1."""
    settings = settings_from(common)
    try:
        status = store_status(settings)
    except Exception as exc:  # unreachable server, bad URL
        raise click.ClickException(f"cannot open the store: {driver_reason(exc)}") from None
    if as_json:
        record = {
            "database": where(settings),
            "current": status.current,
            "head": status.head,
            "up_to_date": status.up_to_date,
            "exists": status.exists,
            "newer": status.newer,
        }
        click.echo(json.dumps(record))
    elif status.up_to_date:
        click.echo(f"{status.current} (head)")
    else:
        click.echo(f"{status.current or 'none'}: {schema_refusal(status, settings)}")
    sys.exit(0 if status.up_to_date else 1)


COMMANDS: tuple[click.Command, ...] = (db_group,)
