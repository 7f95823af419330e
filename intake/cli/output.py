"""How the CLI prints views: aligned rows or JSON, one record, a ticket's thread.

The views themselves (plain dicts) come from :mod:`intake.cli.views`; this module only
decides how they look on stdout.
"""

from __future__ import annotations

import io
import json
from typing import Any

import click


def print_rows(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("(none)")
        return
    click.echo("  ".join(columns))
    for row in rows:
        click.echo("  ".join(cell(row.get(c)) for c in columns))


def print_table(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    """Rows as aligned columns (rich: no colour, no box, never wrapped, so a pipe gets one
    line per row that ``grep`` and ``awk`` can read), or JSON."""
    if as_json or not rows:
        print_rows(rows, as_json, columns)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), highlight=False)
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*(cell(row.get(c)) for c in columns))
    buffer = io.StringIO()
    Console(file=buffer, width=100_000, color_system=None, soft_wrap=True).print(table)
    for line in buffer.getvalue().splitlines():
        click.echo(line.rstrip())


def print_one(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    for key, value in view.items():
        if key == "thread":
            continue
        shown = (
            json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else cell(value)
        )
        click.echo(f"{key}: {shown}")
    for entry in view.get("thread", []):
        click.echo(thread_line(entry))


def thread_line(entry: dict[str, Any]) -> str:
    if entry["direction"] == "in":
        what = f"{entry['classification']} {entry['outcome']}"
        changes = json.dumps(entry["changes"], ensure_ascii=False) if entry["changes"] else ""
        trust = f"  sender {entry['sender_trust']}" if entry.get("sender_trust") else ""
        line = f"  {entry['at']}  <- {entry['from'] or '?'}  {what}{trust}  {changes}"
        return line.rstrip()
    to = ",".join(entry["to"])
    return f"  {entry['at']}  -> {to}  {entry['kind']} ({entry['status']})"


def cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)
