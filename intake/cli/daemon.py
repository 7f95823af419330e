"""Commands that run, feed or probe the daemon: serve, poll, deliver, check, health, status.

Also the two that only read the configuration: ``config show`` and ``policies``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from intake.app import App, build_app, readiness_checks, serve, utc_now
from intake.cli.common import (
    common_options,
    imap_option,
    imap_overrides,
    open_app,
    parse_instant,
    settings_from,
    split_listen,
)
from intake.cli.output import print_rows
from intake.cli.views import check_record, format_check_text, format_explain, stored_directory
from intake.edges.pipe import PROCESS_TIMEOUT, mta_output
from intake.errors import ConfigError, IntakeError
from intake.settings import parse_deliver_target
from intake.web.checks import run_checks, smtp_check, tasks_check


@click.command(name="serve")
@click.option("--listen", metavar="HOST:PORT", help="SMTP listen address (default 127.0.0.1:2525).")
@click.option(
    "--deliver",
    metavar="DIR|smtp://HOST:PORT",
    help="Write replies as .eml into DIR, or send them through this relay.",
)
@click.option("--policy", metavar="NAME", help="Policy from config/policies (default: standard).")
@imap_option
@common_options
def serve_command(
    listen: str | None,
    deliver: str | None,
    policy: str | None,
    imap_urls: tuple[str, ...],
    **common: Any,
) -> None:
    """Run the SMTP listener, the IMAP pollers, the processing worker and the outbox sender."""
    overrides: dict[str, Any] = imap_overrides(imap_urls)
    if listen:
        host, port = split_listen(listen)
        overrides |= {"smtp.host": host, "smtp.port": port}
    if deliver:
        try:
            overrides |= {f"outbound.{k}": v for k, v in parse_deliver_target(deliver).items()}
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    settings = settings_from(common, **overrides)
    app = open_app(settings, policy, create=True)  # a fresh store is created at head
    try:
        asyncio.run(serve(app))
    except IntakeError as exc:  # ListenError: a busy SMTP or web port, named
        raise click.ClickException(str(exc)) from None


@click.command(name="poll")
@click.option("--once", is_flag=True, help="Take what is waiting in each mailbox, then exit.")
@click.option("--no-process", is_flag=True, help="Only store and move; leave processing to serve.")
@imap_option
@common_options
def poll_command(once: bool, no_process: bool, imap_urls: tuple[str, ...], **common: Any) -> None:
    """Poll the IMAP mailboxes once (cron, tests): store, move, process, send replies.

    Exit 0 when every mailbox was polled, 1 when any failed (the others still ran).
    """
    from intake.app import imap_pollers
    from intake.edges.imap import poll_all_once

    if not once:
        raise click.UsageError("poll needs --once; `intake serve` polls continuously")
    settings = settings_from(common, **imap_overrides(imap_urls))
    if not settings.imap.mailboxes:
        raise click.ClickException("no mailboxes: give --imap URL or configure imap.mailboxes")
    app = open_app(settings, create=True)
    try:
        pollers = imap_pollers(app, lambda _id: None)
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from None
    reports = poll_all_once(pollers, settings.imap.lease_duration + 1)
    if not no_process:
        _process_waiting(app)
    for report in reports:
        click.echo(_poll_line(report.name, report.result, report.error))
    if any(report.error for report in reports):
        sys.exit(1)


def _process_waiting(app: App) -> None:
    """Process everything due (what was just stored, and what an earlier crash left)."""
    from store import repository as repo
    from store.db import session_scope

    while True:
        with session_scope(app.sessions) as session:
            due = repo.due_inbound_ids(session, utc_now())
        if not due:
            break
        for inbound_id in due:
            app.pipeline.process(inbound_id)
    asyncio.run(app.outbox.flush_once())


def _poll_line(name: str, result: Any, error: str | None) -> str:
    if error is not None:
        return f"{name}: failed: {error}"
    return (
        f"{name}: stored {len(result.stored)}, moved {result.moved}, "
        f"duplicates {result.duplicates}, quarantined {result.quarantined}, "
        f"deferred {result.deferred}"
    )


class MtaCommand(click.Command):
    """A command an MTA runs: a usage error (a typo in master.cf) exits 75, not click's 2.

    Postfix bounces on any status outside sysexits' temporary ones, so a wrong argv line
    would return every customer's mail; with 75 the mail waits in the queue until the
    line is fixed.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            with mta_output():  # click's own report would meet the same short pipe
                exc.show(file=sys.stderr)
            raise click.exceptions.Exit(os.EX_TEMPFAIL) from None


@click.command(cls=MtaCommand)
@click.option(
    "--sender",
    "mail_from",
    metavar="ADDRESS",
    help="Envelope sender from the MTA (Postfix pipe: ${sender}); empty for <>.",
)
@click.option(
    "--recipient",
    "rcpt_to",
    multiple=True,
    metavar="ADDRESS",
    help="Envelope recipient(s) from the MTA (Postfix pipe: --recipient=${recipient}).",
)
@click.option("--no-process", is_flag=True, help="Only store; leave processing to `intake serve`.")
@click.option(
    "--process-timeout",
    type=click.FloatRange(min=0),
    default=PROCESS_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Time for processing and the reply once stored; then exit 0 (0: no limit).",
)
@common_options
def deliver(
    mail_from: str | None,
    rcpt_to: tuple[str, ...],
    no_process: bool,
    process_timeout: float,
    **common: Any,
) -> None:
    """Store one message from stdin (MTA pipe). Exit 0 once stored, 75 if it could not be."""
    from intake.app import pipe_edge, wire_logging

    # Everything this run writes goes through the MTA's short, non-blocking pipe.
    with mta_output():
        try:
            settings = settings_from(common)
            wire_logging(settings, tracebacks=False, force=True)
            app = build_app(settings)
        except Exception as exc:  # config or store: the MTA must keep the mail
            reason = exc.message if isinstance(exc, click.ClickException) else str(exc)
            print(f"intake deliver: {reason.partition(chr(10))[0]}", file=sys.stderr)
            sys.exit(os.EX_TEMPFAIL)  # sysexits.h: the MTA keeps the message and retries
        edge = pipe_edge(app)
        status = edge.deliver_from_stdin(
            mail_from, rcpt_to, process=not no_process, process_timeout=process_timeout
        )
    sys.exit(status)


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--policy", metavar="NAME", help="Policy to check against (default: the configured one)."
)
@click.option(
    "--received-at", metavar="ISO8601", help="Pretend the message arrived then (deadlines)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, one per line.")
@click.option(
    "--explain",
    is_flag=True,
    help="For each field: the line it was read from, the synonym and rule, or why not.",
)
@click.option(
    "--verify-dkim",
    is_flag=True,
    help="Verify DKIM signatures ourselves (DNS look-ups), as intake.verify_dkim does.",
)
@common_options
def check(
    files: tuple[str, ...],
    policy: str | None,
    received_at: str | None,
    as_json: bool,
    explain: bool,
    verify_dkim: bool,
    **common: Any,
) -> None:
    """Dry run: show what the daemon would do with FILE... (or - for stdin). Stores nothing."""
    settings = settings_from(common, **({"intake.verify_dkim": True} if verify_dkim else {}))
    when = parse_instant(received_at) if received_at else utc_now()
    app = open_app(settings, policy, dry_run=True)  # the daemon's own wiring, run dry
    policies, identity = app.pipeline.policies, app.pipeline.identity
    directory = stored_directory(app)
    failed = False
    for name, raw, error in _read_inputs(files):
        # The pipeline's own verifier (intake.verify_dkim), as COMMIT 2 runs it.
        record = check_record(
            name,
            raw,
            error,
            policies,
            identity,
            when,
            directory,
            explain=explain,
            dkim=app.pipeline.dkim,
        )
        failed |= "error" in record
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            text = format_check_text(record)
            click.echo(f"{text}\n{format_explain(record)}" if "explain" in record else text)
    sys.exit(1 if failed else 0)


@click.command()
@click.option("--listen", metavar="HOST:PORT", help="Where the SMTP listener should answer.")
@imap_option
@common_options
def health(listen: str | None, imap_urls: tuple[str, ...], **common: Any) -> None:
    """Exit 0 when the daemon is healthy and ready; else exit 1 naming each failing check.

    The checks: the SMTP listener greets (smtp), every supervised task is alive (tasks: the
    daemon's /healthz on web.listen), and /readyz's own: store, stall, mailboxes, outbox.
    Give the same --imap URLs as `intake serve` so their mailboxes are checked too.
    """
    overrides: dict[str, Any] = imap_overrides(imap_urls)
    if listen:
        host, port = split_listen(listen)
        overrides |= {"smtp.host": host, "smtp.port": port}
    settings = settings_from(common, **overrides)
    app = open_app(settings, dry_run=True)  # a probe writes nothing
    probes = [smtp_check(settings.smtp)]
    if settings.web.port:  # port 0 (any free port) cannot be found from outside
        probes.append(tasks_check(settings.web))
    failing = [r for r in run_checks([*probes, *readiness_checks(app, live=False)]) if not r.ok]
    if failing:
        raise click.ClickException(
            "unhealthy: " + "; ".join(f"{r.name}: {r.detail}" for r in failing)
        )
    click.echo("ok")


@click.command(name="status")
@click.option("--json", "as_json", is_flag=True)
@common_options
def status_command(as_json: bool, **common: Any) -> None:
    """Each IMAP mailbox: ok or failing since when, the last error, who holds its lease."""
    from intake.cli.views import mailbox_view
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [mailbox_view(m) for m in repo.list_mailbox_states(session)]
    print_rows(rows, as_json, ["mailbox", "state", "failing_since", "last_ok_at", "last_error"])


@click.group(name="config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command(name="show")
@common_options
def config_show(**common: Any) -> None:
    """Print the effective configuration as JSON (secrets masked)."""
    settings = settings_from(common)
    click.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


@click.command(name="policies")
@common_options
def policies(**common: Any) -> None:
    """List the policy names that --policy accepts."""
    from intake.policy.policy import available_policies

    settings = settings_from(common)
    for name in available_policies(settings.intake.policy_dir):
        click.echo(name)


def _read_inputs(files: tuple[str, ...]) -> Iterator[tuple[str, bytes | None, str | None]]:
    for name in files:
        if name == "-":
            yield name, sys.stdin.buffer.read(), None
            continue
        path = Path(name)
        try:
            if path.is_dir():
                yield name, None, "is a directory (give the files in it, e.g. DIR/*)"
                continue
            yield name, path.read_bytes(), None
        except OSError as exc:
            yield name, None, exc.strerror or str(exc)


COMMANDS: tuple[click.Command, ...] = (
    serve_command,
    poll_command,
    deliver,
    check,
    health,
    status_command,
    config_group,
    policies,
)
