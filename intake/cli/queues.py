"""The two queues a person works by hand: quarantined messages and the outbox."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from intake.app import utc_now
from intake.cli.common import common_options, open_app, settings_from
from intake.cli.output import print_rows
from intake.cli.views import inbound_view, outbox_view


@click.group()
def quarantine() -> None:
    """Messages that failed processing too often."""


@quarantine.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@common_options
def quarantine_list(as_json: bool, **common: Any) -> None:
    """Quarantined messages with their last error."""
    from store import repository as repo
    from store.db import session_scope
    from store.models import InboundStatus

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [inbound_view(r) for r in repo.list_inbound(session, InboundStatus.QUARANTINED)]
    print_rows(
        rows, as_json, ["id", "message_id", "origin", "attempts", "received_at", "last_error"]
    )


@quarantine.command(name="retry")
@click.argument("ids", nargs=-1, type=int, required=True)
@common_options
def quarantine_retry(ids: tuple[int, ...], **common: Any) -> None:
    """Give quarantined messages a fresh set of attempts and process them now."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    for inbound_id in ids:
        with session_scope(app.sessions) as session:
            requeued = repo.requeue_inbound(session, inbound_id)
        if not requeued:
            raise click.ClickException(f"message {inbound_id} is not quarantined or failed")
        outcome = app.pipeline.process(inbound_id)
        click.echo(f"{inbound_id}: {outcome.result} {outcome.ticket_number or ''}".rstrip())
    asyncio.run(app.outbox.flush_once())


@click.group()
def outbox() -> None:
    """Replies waiting for, or done with, delivery."""


@outbox.command(name="list")
@click.option("--status", help="queued | sending | sent | dead")
@click.option("--json", "as_json", is_flag=True)
@common_options
def outbox_list(status: str | None, as_json: bool, **common: Any) -> None:
    """Newest replies first."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [outbox_view(r) for r in repo.list_outbox(session, status)]
    print_rows(
        rows,
        as_json,
        ["id", "status", "kind", "recipients", "attempts", "next_attempt_at", "last_error"],
    )


@outbox.command(name="retry")
@click.argument("ids", nargs=-1, type=int, required=True)
@common_options
def outbox_retry(ids: tuple[int, ...], **common: Any) -> None:
    """Queue dead or failed replies again (attempts reset, due now) for the daemon.

    The running daemon's sender delivers them, with its relay settings; this command
    sends nothing itself (a shell's settings may well differ from the daemon's).
    """
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        refused = [i for i in ids if not repo.retry_outbox(session, i, utc_now())]
        if refused:  # raised inside the transaction: it rolls back, nothing is queued
            raise click.ClickException(
                f"not retryable (unknown, already sent, or being sent now): {refused}"
            )
    click.echo(f"queued {len(ids)} replies for the daemon's sender")


@outbox.command(name="flush")
@common_options
def outbox_flush(**common: Any) -> None:
    """Deliver every reply that is due now, then exit (for pipe-only setups and cron)."""
    app = open_app(settings_from(common))
    total = 0
    while (sent := asyncio.run(app.outbox.flush_once())) > 0:
        total += sent
    click.echo(f"attempted {total} replies")


COMMANDS: tuple[click.Command, ...] = (quarantine, outbox)
