"""The composition root: settings in, a wired daemon out. No other module builds things.

It wires logging (once per process), creates the engine and schema, loads the policy, the
templates and the identity, and wires the pipeline, the group-commit writer, the processing
worker, the outbox sender, the SMTP listener and the IMAP pollers. ``serve`` runs them until
SIGTERM/SIGINT and stops them in order: stop accepting, finish storing, finish processing,
flush the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from intake.edges.groupcommit import GroupCommitWriter
from intake.edges.imap import MailboxPoller, MailboxStore, PollerGroup, make_pollers
from intake.edges.pipe import PipeEdge
from intake.edges.smtp import IntakeHandler, SmtpListener
from intake.logs import configure_logging, throttled_loop_errors
from intake.pipeline.conversation import ThreadContext
from intake.pipeline.core import Pipeline, RetryPolicy
from intake.pipeline.identity import Identity
from intake.pipeline.mailstate import StoredMailboxState
from intake.pipeline.worker import ProcessingWorker
from intake.policy.policy import Policy, PolicyBook, available_policies, load_policy
from intake.replies.autoclose import AutoCloser
from intake.replies.budget import BudgetSettings
from intake.replies.outbox import Outbox
from intake.replies.render import Sender, make_template_environment
from intake.replies.sender import OutboxSender, Transport
from intake.settings import MailboxSettings, Settings
from parsing import address_domain, address_key, canonical_domain, ticket_tag
from store import repository as repo
from store.db import create_schema, make_engine, make_session_factory, session_scope


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    policy: Policy
    pipeline: Pipeline
    outbox: OutboxSender
    autocloser: AutoCloser


def load_policies(settings: Settings, default: str | None = None) -> PolicyBook:
    """Every policy, validated at start-up; customers may name any of them."""
    directory = settings.intake.policy_dir
    chosen = load_policy(default or settings.intake.policy, directory)
    others = {name: load_policy(name, directory) for name in available_policies(directory)}
    return PolicyBook(chosen, others)


def wire_logging(settings: Settings, *, tracebacks: bool = True, force: bool = False) -> None:
    """Logging from ``settings.logging``, once per process: the first composition root wins.

    A process that is configured already (the test suite, an embedding program, an earlier
    App) keeps its configuration, so building a second App never rewires loggers that are
    in use, nor a ``capture_logs`` block around it. ``force`` is for the one-shot
    ``intake deliver``, whose output contract with the MTA (one short line per event, no
    tracebacks: ``tracebacks=False``) beats any earlier choice.
    """
    if force or not structlog.is_configured():
        configure_logging(settings.logging.level, settings.logging.format, tracebacks=tracebacks)


def build_app(settings: Settings, *, policy_name: str | None = None, dry_run: bool = False) -> App:
    """The daemon, wired from ``settings``.

    ``dry_run`` is the same wiring (policies, identity, pipeline settings) over the store as
    it is, for ``intake check`` and ``intake health``: it creates no schema, no secret and no
    SQLite file, so running it changes nothing on disk.
    """
    wire_logging(settings)
    policies = load_policies(settings, policy_name)
    policy = policies.default
    identity = make_identity(settings)
    engine = open_store(settings, dry_run=dry_run)
    sessions = make_session_factory(engine)
    sender, secret = make_sender(settings), thread_secret(settings, sessions, dry_run=dry_run)
    budget = BudgetSettings.from_intake(settings.intake)
    replies = Outbox(sender, secret, budget)
    templates = make_template_environment()
    pipeline = Pipeline(
        sessions=sessions,
        policies=policies,
        identity=identity,
        templates=templates,
        number_format=settings.intake.ticket_number_format,
        retry=RetryPolicy(
            settings.intake.max_attempts, settings.intake.retry_initial, settings.intake.retry_max
        ),
        clock=utc_now,
        thread=ThreadContext(
            secret=secret,
            domains=tuple(sorted({address_domain(a) or "" for a in ours(settings)})),
            identity=identity,
        ),
        reopen_window=timedelta(days=settings.intake.reopen_window_days),
        outbox=replies,
    )
    outbox = OutboxSender(sessions, Transport(settings.outbound), settings.outbound, utc_now)
    autocloser = AutoCloser(sessions, policies, replies, templates)
    return App(settings, engine, sessions, policy, pipeline, outbox, autocloser)


def imap_pollers(
    app: App,
    on_stored: Callable[[int], None],
    mailboxes: Iterable[MailboxSettings] | None = None,
) -> list[MailboxPoller]:
    """The IMAP edge's pollers, wired to the pipeline and to the store's mailbox state."""
    state: MailboxStore = StoredMailboxState(app.sessions)  # mypy checks the port here
    settings = app.settings.imap
    return make_pollers(settings, app.pipeline, state, on_stored, utc_now, mailboxes)


def pipe_edge(app: App) -> PipeEdge:
    """``intake deliver``: one message from an MTA into the pipeline, then the outbox."""
    return PipeEdge(app.pipeline, app.outbox, utc_now, app.settings.smtp.max_message_size)


def ours(settings: Settings) -> tuple[str, ...]:
    return (*settings.intake.support_addresses, *settings.intake.own_addresses)


def open_store(settings: Settings, *, dry_run: bool = False) -> Engine:
    """The configured store with its schema; a dry run opens it as it is and creates nothing.

    Connecting to a SQLite file that does not exist would create it, so a dry run reads an
    empty in-memory database instead: a store not created yet has no tables to read.
    """
    url, echo = settings.database.url, settings.database.echo
    if not dry_run:
        engine = make_engine(url, echo=echo)
        create_schema(engine)
        return engine
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return make_engine("sqlite://", echo=echo)
    return make_engine(url, echo=echo)


def thread_secret(
    settings: Settings, sessions: sessionmaker[Session], *, dry_run: bool = False
) -> bytes:
    """The HMAC key: configured, else generated once and kept in the store for every instance.

    A dry run sends nothing, so an unconfigured key is a throwaway one, never stored.
    """
    if settings.intake.thread_secret is not None:
        return settings.intake.thread_secret.get_secret_value().encode()
    if dry_run:
        return secrets.token_hex(32).encode()
    with session_scope(sessions) as session:
        value = repo.get_or_create_secret(session, "thread_hmac", secrets.token_hex(32), utc_now())
    return value.encode()


def make_identity(settings: Settings) -> Identity:
    return Identity(
        addresses=tuple(address_key(a) for a in ours(settings)),
        loop_marker=loop_marker(settings),
        staff_addresses=tuple(address_key(a) for a in settings.intake.staff_addresses),
        staff_domains=tuple(canonical_domain(d) for d in settings.intake.staff_domains),
        ticket_tag=ticket_tag(settings.intake.ticket_number_format),
    )


def make_sender(settings: Settings) -> Sender:
    return Sender(
        address=settings.intake.primary_address,
        name=settings.intake.support_name,
        noc_cc=settings.intake.noc_cc,
        loop_marker=loop_marker(settings),
    )


def loop_marker(settings: Settings) -> str:
    return address_key(settings.intake.primary_address)


async def serve(app: App, stop: asyncio.Event | None = None) -> None:
    """Run the SMTP listener, processing worker and outbox sender until ``stop``.

    Then, losing nothing: the listener stops accepting (421), the sessions in DATA get
    their answer within ``smtp.shutdown_grace``, the writer commits what is queued, the
    worker and the outbox sender finish their round.
    """
    stop = stop or _stop_on_signals()
    log = structlog.get_logger("intake.serve")
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(throttled_loop_errors(app.settings.logging.repeat_interval))
    writer = GroupCommitWriter(app.pipeline)
    writer.start()
    worker = ProcessingWorker(app.pipeline, app.sessions, app.settings.intake.sweep_interval)
    handler = IntakeHandler(
        app.settings.intake.support_addresses,
        app.settings.smtp.max_recipients,
        writer,
        worker.submit,
        utc_now,
    )
    smtp = app.settings.smtp
    listener = SmtpListener(handler, smtp)
    try:
        port = await listener.start()
    except BaseException:
        await asyncio.to_thread(writer.stop)
        raise
    pollers = _start_pollers(app, worker.submit)
    tasks = [
        asyncio.create_task(worker.run(stop)),
        asyncio.create_task(app.outbox.run(stop)),
        asyncio.create_task(_autoclose_loop(app, stop)),
    ]
    log.info(
        "intake.started",
        listen=f"{smtp.host}:{port}",
        policy=app.policy.name,
        database=_safe_url(app),
        deliver=_deliver_target(app),
        imap=[poller.mailbox.name for poller in pollers.pollers],
    )
    try:
        await stop.wait()
    finally:
        listener.stop_accepting()
        await listener.drain(smtp.shutdown_grace)
        await listener.close()
        await asyncio.to_thread(pollers.stop)
        await asyncio.to_thread(writer.stop)
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("intake.stopped")


async def _autoclose_loop(app: App, stop: asyncio.Event) -> None:
    interval = app.settings.intake.autoclose_interval
    while not stop.is_set():
        try:
            await asyncio.to_thread(app.autocloser.run_once, utc_now())
        except Exception as exc:  # the store may be down; try again next round
            structlog.get_logger("intake.autoclose").error("autoclose.failed", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _start_pollers(app: App, submit: Callable[[int], None]) -> PollerGroup:
    """One IMAP poller thread per mailbox; the ids they store reach the worker on the loop."""
    loop = asyncio.get_running_loop()

    def hand_over(inbound_id: int) -> None:
        loop.call_soon_threadsafe(submit, inbound_id)

    group = PollerGroup(imap_pollers(app, hand_over))
    group.start()
    return group


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def _safe_url(app: App) -> str:
    return app.engine.url.render_as_string(hide_password=True)


def _deliver_target(app: App) -> str:
    out = app.settings.outbound
    if out.uses_relay:
        return f"smtp://{out.relay_host}:{out.relay_port} ({out.security})"
    return str(out.directory.resolve())
