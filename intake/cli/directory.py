"""The customer directory: import a CSV/TOML file (all or nothing), list it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from intake.app import App, store_status, utc_now
from intake.cli.common import common_options, open_app, settings_from
from intake.cli.output import print_rows
from intake.errors import ConfigError
from intake.pipeline.customers import CustomerRecord


@click.group()
def customers() -> None:
    """The customer directory: names, domains, contacts and contract terms."""


@customers.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate and count the changes; write nothing.")
@common_options
def customers_import(file: Path, dry_run: bool, **common: Any) -> None:
    """Add or update the customers in FILE (.csv or .toml): all of them or none."""
    from intake.pipeline.customers import read_directory
    from intake.policy.policy import available_policies

    settings = settings_from(common)
    try:
        records = read_directory(file, available_policies(settings.intake.policy_dir))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if dry_run and not store_status(settings).exists:  # nothing stored yet: all are new
        inserted, updated = len(records), 0  # and no database is created to find that out
    else:  # a directory may be loaded before the daemon first ran: create the store then
        app = open_app(settings, create=not dry_run)
        inserted, updated = _import_customers(app, file, records, dry_run)
    if dry_run:
        click.echo(f"would import {inserted} new, {updated} updated (dry run: nothing written)")
    else:
        click.echo(f"imported {inserted} new, {updated} updated")


def _import_customers(
    app: App, file: Path, records: Sequence[CustomerRecord], dry_run: bool
) -> tuple[int, int]:
    from sqlalchemy.exc import IntegrityError

    from intake.pipeline.customers import (
        load_directory,
        normalize_name,
        support_id_conflicts,
        values_from_record,
    )
    from store import repository as repo
    from store.db import driver_reason, session_scope

    try:
        with session_scope(app.sessions) as session:
            stored = load_directory(session)
            problems = support_id_conflicts(stored, records)
            if problems:
                raise click.ClickException(f"{file}: " + "; ".join(problems))
            if dry_run:
                known = {normalize_name(r.name) for r in stored}
                updated = sum(normalize_name(r.name) in known for r in records)
                return len(records) - updated, updated
            values = [values_from_record(r) for r in records]
            return repo.upsert_customers(session, values, utc_now())
    except IntegrityError as exc:  # a concurrent import took a name or support ID first
        raise click.ClickException(
            f"{file}: the store refused the import: {driver_reason(exc)}"
        ) from None


@customers.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@common_options
def customers_list(as_json: bool, **common: Any) -> None:
    """Every customer in the directory, by name."""
    from intake.pipeline.customers import FIELDS, customer_view, load_directory
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [customer_view(r) for r in load_directory(session)]
    print_rows(rows, as_json, list(FIELDS))


COMMANDS: tuple[click.Command, ...] = (customers,)
