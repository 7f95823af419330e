"""Tickets and the charge ledger: list, show, auto-close; list and settle charges."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from intake.app import utc_now
from intake.cli.common import common_options, open_app, parse_instant, settings_from
from intake.cli.output import print_one, print_rows, print_table
from intake.cli.views import charge_view, thread_view, ticket_view


@click.group()
def tickets() -> None:
    """List and show tickets."""


@tickets.command(name="list")
@click.option("--status", help="open | waiting_customer | closed")
@click.option("--priority", type=int)
@click.option(
    "--customer", help="Customer, matched as the directory matches ('Acme' finds 'Acme Corp')."
)
@click.option("--due-before", metavar="ISO8601", help="Only tickets whose response is due before.")
@click.option("--breached", is_flag=True, help="Only tickets whose response target was missed.")
@click.option(
    "--search",
    metavar="TEXT",
    help='Only tickets whose subject or mail has every word (or "quoted phrase").',
)
@click.option(
    "--sort",
    type=click.Choice(["deadline", "newest"]),
    default="deadline",
    show_default=True,
    help="deadline: the next deadline first, as the board sorts.",
)
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@common_options
def tickets_list(
    status: str | None,
    priority: int | None,
    customer: str | None,
    due_before: str | None,
    breached: bool,
    search: str | None,
    sort: str,
    limit: int,
    as_json: bool,
    **common: Any,
) -> None:
    """Tickets by their next deadline (the board's order), or newest first."""
    from intake.web.board import customer_names, queue_row, sort_key
    from store import repository as repo
    from store.db import session_scope

    before = parse_instant(due_before, "--due-before") if due_before else None
    app = open_app(settings_from(common))
    now = utc_now()
    with session_scope(app.sessions) as session:
        found = repo.list_tickets(
            session,
            status=status,
            priority=priority,
            customers=customer_names(session, customer) if customer else None,
            due_before=before,
            breached_at=now if breached else None,
            search=(search or "").strip() or None,
            limit=None if sort == "deadline" else limit,
        )
        if sort == "deadline":
            keys = {t.id: sort_key(queue_row(t, app.autocloser.policies, now)) for t in found}
            found = sorted(found, key=lambda t: keys[t.id])[:limit]
        rows = [ticket_view(t, now=now) for t in found]
    columns = ["number", "priority", "status", "customer", "issue", "response_due", "breached"]
    print_table(rows, as_json, [*columns, "assignee", "missing_fields"])


@tickets.command(name="show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
@common_options
def tickets_show(number: str, as_json: bool, **common: Any) -> None:
    """One ticket with its fields, findings, charges and its thread of messages."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        view = ticket_view(ticket, full=True, now=utc_now()) if ticket else None
        if ticket is not None and view is not None:
            view["thread"] = thread_view(session, ticket)
    if view is None:
        raise click.ClickException(f"no ticket {number}")
    print_one(view, as_json)


def staff_name() -> str:
    """Who a CLI action is recorded as, unless ``--by`` says: the login name."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def by_option(func: Any) -> Any:
    return click.option("--by", help="Who did it, for the record (default: your login).")(func)


def _staff_action(common: dict[str, Any], action: Any, *args: Any) -> None:
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    try:
        with session_scope(app.sessions, write=True) as session:
            action(session, *args, utc_now())
    except repo.StaffActionError as exc:
        raise click.ClickException(str(exc)) from None


@tickets.command(name="close")
@click.argument("number")
@by_option
@common_options
def tickets_close(number: str, by: str | None, **common: Any) -> None:
    """Close a ticket (no notice is mailed), recorded with who and when."""
    from store import repository as repo

    _staff_action(common, repo.close_ticket, number, by or staff_name())
    click.echo(f"{number}: closed")


@tickets.command(name="assign")
@click.argument("number")
@click.argument("assignee", required=False)
@by_option
@common_options
def tickets_assign(number: str, assignee: str | None, by: str | None, **common: Any) -> None:
    """Assign a ticket to ASSIGNEE (none given: unassign), recorded with who and when."""
    from store import repository as repo

    _staff_action(common, repo.assign_ticket, number, assignee, by or staff_name())
    click.echo(f"{number}: assigned to {assignee}" if assignee else f"{number}: unassigned")


@tickets.command(name="note")
@click.argument("number")
@click.argument("text")
@by_option
@common_options
def tickets_note(number: str, text: str, by: str | None, **common: Any) -> None:
    """Add an internal note to a ticket (never mailed), recorded with who and when."""
    from store import repository as repo

    if not text.strip():
        raise click.UsageError("the note is empty")
    _staff_action(common, repo.note_ticket, number, text.strip(), by or staff_name())
    click.echo(f"{number}: note added")


@tickets.command(name="priority")
@click.argument("number")
@click.argument("level", type=int)
@by_option
@common_options
def tickets_priority(number: str, level: int, by: str | None, **common: Any) -> None:
    """Set a ticket's priority LEVEL; its deadlines are recomputed from when it was received."""
    from intake.pipeline import staff
    from store.db import session_scope

    app = open_app(settings_from(common))
    try:
        with session_scope(app.sessions, write=True) as session:
            policies = app.autocloser.policies
            ticket = staff.set_priority(
                session, policies, number, level, by or staff_name(), utc_now()
            )
            due = ticket.response_due_at
    except ValueError as exc:  # StaffActionError too: a closed ticket, the same level
        raise click.ClickException(str(exc)) from None
    click.echo(f"{number}: priority {level}, response due {due.isoformat() if due else 'never'}")


@tickets.command(name="phone")
@click.argument("number")
@click.option("--at", metavar="ISO8601", help="When the call was (default: now).")
@click.option("--note", help="What was said, for the record (internal, never mailed).")
@by_option
@common_options
def tickets_phone(
    number: str, at: str | None, note: str | None, by: str | None, **common: Any
) -> None:
    """Record the first response as given by phone (met or missed as a staff reply is)."""
    from intake.pipeline import staff
    from store.db import session_scope

    when = parse_instant(at, "--at") if at else None
    app = open_app(settings_from(common))
    try:
        with session_scope(app.sessions, write=True) as session:
            actor = by or staff_name()
            ticket = staff.record_phone_response(session, number, when, note, actor, utc_now())
            met = ticket.response_met
    except ValueError as exc:  # StaffActionError too: answered already
        raise click.ClickException(str(exc)) from None
    click.echo(f"{number}: first response by phone recorded ({'met' if met else 'missed'})")


@tickets.command(name="autoclose")
@common_options
def tickets_autoclose(**common: Any) -> None:
    """Close tickets left waiting on the customer past the policy's allowance (and notify)."""
    app = open_app(settings_from(common))
    closed = app.autocloser.run_once(utc_now())
    asyncio.run(app.outbox.flush_once())
    click.echo(f"closed {len(closed)} tickets{': ' + ', '.join(closed) if closed else ''}")


@click.group()
def charges() -> None:
    """The charge ledger: list charges, settle pending ones, waive applied ones."""


@charges.command(name="list")
@click.option("--status", help="applied | pending | billed | waived")
@click.option("--json", "as_json", is_flag=True)
@common_options
def charges_list(status: str | None, as_json: bool, **common: Any) -> None:
    """Newest charges first."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [charge_view(c) for c in repo.list_charges(session, status)]
    columns = ["id", "ticket", "kind", "amount", "currency", "status", "created_at", "reverses"]
    print_rows(rows, as_json, columns)


@charges.command(name="settle")
@click.argument("charge_id", type=int)
@click.option("--bill", "outcome", flag_value="billed", help="The condition held: bill it.")
@click.option("--waive", "outcome", flag_value="waived", help="It did not hold: waive it.")
@click.option("--note", help="Why, for the record.")
@common_options
def charges_settle(charge_id: int, outcome: str | None, note: str | None, **common: Any) -> None:
    """Settle a pending charge (e.g. an off-hours P1 once fault is determined)."""
    from store import repository as repo
    from store.db import session_scope

    if outcome is None:
        raise click.UsageError("say --bill or --waive")
    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        row = repo.settle_charge(session, charge_id, outcome, note, utc_now())
        view = charge_view(row) if row else None
    if view is None:
        raise click.ClickException(f"charge {charge_id} is not pending (or does not exist)")
    click.echo(f"charge {charge_id}: {view['amount']} {view['currency']} {outcome}")


@charges.command(name="waive")
@click.argument("charge_id", type=int)
@click.option("--note", required=True, help="Why the charge is reversed, for the record.")
@common_options
def charges_waive(charge_id: int, note: str, **common: Any) -> None:
    """Reverse an applied (or billed) charge: a credit line in the ledger, nothing deleted."""
    from store import repository as repo
    from store.db import session_scope

    if not note.strip():
        raise click.UsageError("--note must say why")
    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        row = repo.waive_charge(session, charge_id, note.strip(), utc_now())
        view = charge_view(row) if row else None
    if view is None:
        raise click.ClickException(
            f"charge {charge_id} cannot be waived (unknown, pending, a credit, or waived already)"
        )
    credit = f"{view['amount']} {view['currency']}"
    click.echo(f"charge {charge_id}: credited {credit} as charge {view['id']}")


COMMANDS: tuple[click.Command, ...] = (tickets, charges)
