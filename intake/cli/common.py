"""What every command shares: the common options, settings from flags, opening the App.

Flags win over environment variables, which win over the config file (load_settings).
Errors a user can fix end as one ``click.ClickException`` line, exit status 1; a store that
is missing or whose schema is behind ends as one line too, exit status 78 (EX_CONFIG).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from intake.app import App, build_app
from intake.errors import ConfigError, IntakeError, SchemaError
from intake.settings import Settings, load_settings, split_host_port

F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    """--config, --database and the logging flags, on every command."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(path_type=Path),
            help="TOML config file (default: $INTAKE_CONFIG, else the shipped one).",
        ),
        click.option(
            "--database",
            "database_url",
            metavar="URL",
            help="SQLAlchemy URL, e.g. sqlite:///./intake.db or postgresql+psycopg://…",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["auto", "json", "console"]),
            help="Log format on stderr (auto: JSON unless a TTY).",
        ),
        click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(common: dict[str, Any], **overrides: Any) -> Settings:
    values = {
        "database.url": common.pop("database_url", None),
        "logging.format": common.pop("log_format", None),
        "logging.level": common.pop("log_level", None),
        **overrides,
    }
    try:
        settings = load_settings(common.pop("config_path", None), values)
    except ConfigError as exc:
        raise click.ClickException(f"config error: {exc}") from None
    return settings  # build_app wires logging from these settings


class SchemaRefused(click.ClickException):
    """The store is missing or its schema is not this version's: EX_CONFIG (sysexits.h).

    78, not 1, so a supervisor can tell "fix the deployment" from a crash (systemd:
    ``RestartPreventExitStatus=78``).
    """

    exit_code = os.EX_CONFIG


def open_app(
    settings: Settings, policy: str | None = None, *, dry_run: bool = False, create: bool = False
) -> App:
    """The composition root's App, or one clear line saying why it could not be built.

    Only the commands that run the daemon (or fill a new store) pass ``create``: any other
    command pointed at a database that is not there says where it looked, and creates
    nothing.
    """
    try:
        return build_app(settings, policy_name=policy, dry_run=dry_run, create=create)
    except SchemaError as exc:
        raise SchemaRefused(str(exc)) from None
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # database unreachable, bad URL, ...
        raise click.ClickException(f"cannot open the store: {exc}") from None


imap_option = click.option(
    "--imap",
    "imap_urls",
    multiple=True,
    metavar="URL",
    help="IMAP mailbox, repeatable: imap[s]://USER:PASS@HOST:PORT/FOLDER or "
    "imap+starttls://…; replaces the configured imap.mailboxes.",
)


def imap_overrides(urls: tuple[str, ...]) -> dict[str, Any]:
    return {"imap.mailboxes": [{"url": url} for url in urls]} if urls else {}


def split_listen(value: str) -> tuple[str, int]:
    try:
        return split_host_port(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None


def parse_instant(value: str, option: str = "--received-at") -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO 8601", param_hint=option) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a UTC offset or Z", param_hint=option)
    return parsed
