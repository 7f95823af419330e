"""The composition root: settings in, a wired daemon out. No other module builds things.

It wires logging (once per process), opens the store (a new one is created at the schema's
head, one that is behind is refused), loads the policy, the templates and the identity,
and wires the pipeline, the group-commit writer, the processing worker, the outbox sender,
the SMTP listener, the IMAP pollers and the HTTP server (``intake.web``). ``serve`` binds
both ports first (a busy port fails before any thread starts), then runs every
long-running task under one ``Supervisor`` until SIGTERM/SIGINT, and stops them in order:
stop accepting, finish polling and storing, finish processing, flush the outbox, and
answer health until the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

import structlog
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp

from intake.edges.groupcommit import GroupCommitWriter
from intake.edges.imap import MailboxPoller, MailboxStore, make_pollers
from intake.edges.pipe import PipeEdge
from intake.edges.smtp import IntakeHandler, SmtpListener
from intake.errors import ListenError, SchemaError
from intake.logs import configure_logging, throttled_loop_errors
from intake.metrics import Metrics
from intake.pipeline.batch import CommitGroup
from intake.pipeline.conversation import ThreadContext
from intake.pipeline.core import Pipeline, RetryPolicy
from intake.pipeline.dkimcheck import DkimVerifier
from intake.pipeline.flood import FloodSettings
from intake.pipeline.identity import Identity
from intake.pipeline.isolation import ProcessReader, default_workers
from intake.pipeline.mailstate import StoredMailboxState
from intake.pipeline.remote import ProcessingProcess, serve_child
from intake.pipeline.worker import ProcessingWorker
from intake.policy.policy import Policy, PolicyBook, available_policies, load_policy
from intake.replies.autoclose import AutoCloser
from intake.replies.budget import BudgetSettings
from intake.replies.outbox import Outbox
from intake.replies.reflection import ReflectionSettings
from intake.replies.render import Sender, make_template_environment
from intake.replies.sender import OutboxSender, Transport
from intake.schema import schema_refusal, where
from intake.settings import MailboxSettings, Settings
from intake.supervisor import Supervisor
from intake.web.board import Board
from intake.web.checks import Check, readiness
from intake.web.collectors import CheckCollector, StoreCollector, TaskCollector
from intake.web.server import WebServer, make_web_app
from parsing import address_domain, address_key, canonical_domain, ticket_tag
from store import migrate
from store import repository as repo
from store.db import make_engine, make_session_factory, session_scope
from store.notify import BoardChanges


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
    metrics: Metrics = field(default_factory=Metrics.create)  # one registry per App


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


def build_app(
    settings: Settings,
    *,
    policy_name: str | None = None,
    dry_run: bool = False,
    create: bool = True,
) -> App:
    """The daemon, wired from ``settings``; :class:`SchemaError` when its store is not usable.

    ``create`` lets a new (empty) store be created at head; commands that only read pass
    False, so pointing one at the wrong place never leaves an empty database behind.

    ``dry_run`` is the same wiring (policies, identity, pipeline settings) over the store as
    it is, for ``intake check`` and ``intake health``: it creates no schema, no secret and no
    SQLite file, so running it changes nothing on disk.
    """
    wire_logging(settings)
    policies = load_policies(settings, policy_name)
    policy = policies.default
    identity = make_identity(settings)
    engine = open_store(settings, dry_run=dry_run, create=create)
    sessions = make_session_factory(engine)
    sender, secret = make_sender(settings), thread_secret(settings, sessions, dry_run=dry_run)
    budget = BudgetSettings.from_intake(settings.intake)
    replies = Outbox(sender, secret, budget, ReflectionSettings.from_intake(settings.intake))
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
        commits=CommitGroup(commit_group(settings)),
        dkim=DkimVerifier() if settings.intake.verify_dkim else None,
        flood=FloodSettings.from_intake(settings.intake),
    )
    metrics = Metrics.create()
    transport = Transport(settings.outbound)
    outbox = OutboxSender(sessions, transport, settings.outbound, utc_now, metrics=metrics)
    autocloser = AutoCloser(sessions, policies, replies, templates)
    return App(settings, engine, sessions, policy, pipeline, outbox, autocloser, metrics)


def readiness_checks(app: App, *, live: bool = True) -> list[Check]:
    """What ``/readyz`` and ``intake health`` check. ``live``: this process runs the sender,
    so its last delivery attempt counts; ``intake health`` (another process) has none."""
    last = (lambda: app.outbox.last_delivery) if live else (lambda: None)
    return readiness(app.engine, app.sessions, app.settings, utc_now, last)


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


def open_store(settings: Settings, *, dry_run: bool = False, create: bool = True) -> Engine:
    """The configured store, its schema at the version this code runs on, or SchemaError.

    ``create``: a database with no schema yet (the embedded SQLite default on a fresh
    machine, an empty PostgreSQL database) is created at head by the migrations, under
    their lock, so instances starting together create it once. Without ``create`` (the
    read-only commands) a missing database is an error saying where intake looked. Either
    way a schema that is behind, or newer than this code, is refused with the command to
    run: upgrading is the operator's step (``intake db upgrade``).

    A dry run opens the store as it is and creates nothing; connecting to a SQLite file
    that does not exist would create it, so it reads an empty in-memory database instead.
    """
    url, echo = settings.database.url, settings.database.echo
    if dry_run:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
            return make_engine("sqlite://", echo=echo)
        return make_engine(url, echo=echo)
    engine = make_engine(url, echo=echo)
    try:
        status = migrate.create_if_new(engine) if create else migrate.schema_status(engine)
        refusal = schema_refusal(status, settings)
    except migrate.SchemaMismatchError as exc:
        refusal = f"{where(settings)}: {exc}"
    except Exception:
        engine.dispose()
        raise
    if refusal is not None:
        engine.dispose()
        raise SchemaError(refusal)
    return engine


def upgrade_store(settings: Settings) -> migrate.Upgrade:
    """``intake db upgrade``: bring the store to head under the migration lock.

    A database that does not exist yet is created; several hosts may run this at once
    (the others find the schema at head and change nothing).
    """
    wire_logging(settings)
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    try:
        done = migrate.run_upgrade(engine)
    except migrate.SchemaMismatchError as exc:
        raise SchemaError(f"{where(settings)}: {exc}") from None
    finally:
        engine.dispose()
    structlog.get_logger("intake.db").info(
        "schema.upgrade",
        before=done.before.current,
        after=done.after.current,
        head=done.after.head,
        changed=done.changed,
    )
    return done


def store_status(settings: Settings) -> migrate.SchemaStatus:
    """``intake db current``: where the store stands; reading it creates nothing."""
    wire_logging(settings)
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    try:
        return migrate.schema_status(engine)
    finally:
        engine.dispose()


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
        trusted_authserv_ids=tuple(
            canonical_domain(i) for i in settings.intake.trusted_authserv_ids
        ),
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
    """Run the SMTP listener, IMAP pollers, writer, worker, outbox sender, auto-close and the
    HTTP server under one supervisor until ``stop``.

    Then, losing nothing, the supervisor stops them in the order they were added: the
    listener stops accepting (421) and the sessions in DATA get their answer within
    ``smtp.shutdown_grace``, the pollers finish, the writer commits what is queued, the
    worker and the outbox sender finish their round, and HTTP answers until the end.
    """
    stop = stop or _stop_on_signals()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(throttled_loop_errors(app.settings.logging.repeat_interval))
    writer = GroupCommitWriter(app.pipeline)
    worker = _processing(app)
    pollers = imap_pollers(app, _on_loop(worker.submit))  # ConfigError before any bind
    supervisor = Supervisor(
        utc_now,
        restart_initial=app.settings.intake.restart_initial,
        restart_max=app.settings.intake.restart_max,
    )
    listener = SmtpListener(_smtp_handler(app, writer, worker), app.settings.smtp)
    web_settings = app.settings.web  # a malformed web.auth.users_file fails here, unbound
    changes = BoardChanges.for_url(app.settings.database.url)  # one LISTEN per process
    board = Board(
        app.sessions,
        app.autocloser.policies,
        utc_now,
        poll_interval=web_settings.board_poll_interval,
        api_token=web_settings.api_token,
        mailboxes=[m.name for m in app.settings.imap.mailboxes],
        auth=web_settings.auth,
        changes=changes,
    )
    web = WebServer(
        _web_app(app, supervisor, board), app.settings.web.host, app.settings.web.port, board.close
    )
    port = await _bind(listener, web)
    reload_on_hup = _reload_on_sighup(listener)
    supervisor.add("smtp", partial(_listen, listener))
    for poller in pollers:
        supervisor.add_thread(f"imap {poller.mailbox.name}", poller.run)
    supervisor.add_thread("writer", lambda _stop: writer.run(), writer.request_stop)
    supervisor.add("worker", worker.run)
    supervisor.add("outbox", app.outbox.run)
    supervisor.add("autoclose", partial(_autoclose_loop, app))
    supervisor.add("web", web.run)
    if changes.url is not None:  # PostgreSQL: the board's LISTEN connection
        supervisor.add("board-listen", changes.run)
    collectors = _collectors(app, supervisor, pollers)
    supervisor.start()
    _log_started(app, port, web, pollers)
    try:
        await stop.wait()
    finally:
        if reload_on_hup:
            loop.remove_signal_handler(signal.SIGHUP)
        await supervisor.stop(grace=_unit_grace(app.settings))
        for collector in collectors:
            app.metrics.registry.unregister(collector)
        structlog.get_logger("intake.serve").info("intake.stopped")


def _unit_grace(settings: Settings) -> float:
    """How long a unit may take to stop: the SMTP drain's grace and then some, so none is
    cut off mid-drain (the supervisor's stop, and the processing process's)."""
    return settings.smtp.shutdown_grace + 30.0


def _processing(app: App) -> ProcessingWorker | ProcessingProcess:
    """COMMIT 2's unit: in a child process of its own (``intake.processing``), or here."""
    if app.settings.intake.processing == "process":
        grace = _unit_grace(app.settings)  # the child finishes as every unit may
        return ProcessingProcess(processing_main, app.settings, app.metrics, grace=grace)
    return _processing_worker(app)


# Messages in hand per reading worker: one being read, one queued for the pool or waiting
# to be written, so COMMIT 2's groups form (intake.pipeline.batch). Measured on 2 cores
# against one per worker: tickets/s +15-30 %, CPU per ticket -10-20 %, the same accept
# rate; four per worker took CPU from the listener (10-session accept -30 %).
IN_HAND_PER_WORKER = 2


def _processing_worker(app: App) -> ProcessingWorker:
    workers = reading_workers(app.settings)
    return ProcessingWorker(
        app.pipeline,
        app.sessions,
        app.settings.intake.sweep_interval,
        app.metrics,
        reader_factory=partial(_process_reader, app, workers) if workers else None,
        concurrency=max(1, workers) * IN_HAND_PER_WORKER,
    )


def processing_main(settings: Settings, conn: Connection) -> None:
    """The processing process's entry (``intake.pipeline.remote``): the daemon's settings
    in, COMMIT 2 for every id the daemon passes (and every due row it sweeps) until the
    end of input. Its own App: own store connections, own reading pool, own logging."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # the parent decides when this stops
        signal.signal(sig, signal.SIG_IGN)
    app = build_app(settings, create=False)
    try:
        asyncio.run(_process_in_child(app, conn))
    finally:
        app.engine.dispose()
        conn.close()


async def _process_in_child(app: App, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(throttled_loop_errors(app.settings.logging.repeat_interval))
    stop = asyncio.Event()
    worker = _processing_worker(app)
    worker.on_done = serve_child(conn, worker.submit, loop, stop)
    await worker.run(stop)


# COMMIT 2's group limit per store (``intake.commit_group`` unset). On SQLite a group is
# one hold of the file's one write lock, which every COMMIT 1 (every 250) waits behind:
# measured on 2 cores (Python client, 1,500 messages, processing running, in turn) groups
# of up to 32 held it ~9 ms per transaction against ~5.5 ms one by one, and the accept
# rate at 10 sessions was 443-450 msg/s against 530-545, tickets/s the same. PostgreSQL
# locks rows, not the store: there the group saves commits (accept 549-617 against
# 460-469 one by one).
COMMIT_GROUP_DEFAULT = {"sqlite": 1, "postgresql": 32}


def commit_group(settings: Settings) -> int:
    """``intake.commit_group``, its default resolved for the configured store."""
    configured = settings.intake.commit_group
    if configured is not None:
        return configured
    backend = make_url(settings.database.url).get_backend_name()
    return COMMIT_GROUP_DEFAULT.get(backend, 1)


def reading_workers(settings: Settings) -> int:
    """``intake.workers``, its default resolved: one worker process per usable CPU."""
    configured = settings.intake.workers
    return default_workers() if configured is None else configured


def _process_reader(app: App, workers: int) -> ProcessReader:
    pipeline = app.pipeline
    return ProcessReader(
        pipeline.policies,
        pipeline.identity,
        workers=workers,
        timeout=app.settings.intake.parse_timeout,
        nice=app.settings.intake.reading_nice,
    )


async def _bind(listener: SmtpListener, web: WebServer) -> int:
    """Both ports, before anything runs: a busy one fails start-up and leaks nothing.

    The HTTP port first: once SMTP accepts, a client (or a test, or a load balancer) may
    take the daemon as up and ask for its health at once, so that port must be listening
    by then. The listener accepts from here on; what a client sends before the writer runs
    waits in the writer's queue.
    """
    smtp = listener.settings
    try:
        web.bind()
    except OSError as exc:
        raise ListenError(f"cannot listen on {web.host}:{web.port}: {exc} (web.listen)") from exc
    try:
        port = await listener.start()
    except OSError as exc:
        web.close()
        raise ListenError(f"cannot listen on {smtp.host}:{smtp.port}: {exc} (smtp)") from exc
    return port


async def _listen(listener: SmtpListener, stop: asyncio.Event) -> None:
    """The listener as a supervised unit: serve until ``stop``, then drain and close."""
    if not listener.serving:  # a restart: listen again
        await listener.start()
    try:
        await stop.wait()
        listener.stop_accepting()
        await listener.drain(listener.settings.shutdown_grace)
    finally:
        await listener.close()


def _smtp_handler(
    app: App, writer: GroupCommitWriter, worker: ProcessingWorker | ProcessingProcess
) -> IntakeHandler:
    return IntakeHandler(
        app.settings.intake.support_addresses,
        app.settings.smtp.max_recipients,
        writer,
        worker.submit,
        utc_now,
        app.metrics,
    )


def _web_app(app: App, supervisor: Supervisor, board: Board) -> ASGIApp:
    return make_web_app(supervisor.health, readiness_checks(app), app.metrics.registry, board)


def _collectors(app: App, supervisor: Supervisor, pollers: list[MailboxPoller]) -> list[Collector]:
    mailboxes = [poller.mailbox.name for poller in pollers]
    owner = pollers[0].owner if pollers else None
    collectors: list[Collector] = [
        StoreCollector(app.sessions, utc_now, mailboxes, owner),
        TaskCollector(supervisor.health),
        CheckCollector(readiness_checks(app)),
    ]
    for collector in collectors:
        app.metrics.registry.register(collector)
    return collectors


def _log_started(app: App, port: int, web: WebServer, pollers: list[MailboxPoller]) -> None:
    structlog.get_logger("intake.serve").info(
        "intake.started",
        listen=f"{app.settings.smtp.host}:{port}",
        web=f"{web.host}:{web.port}",
        policy=app.policy.name,
        database=_safe_url(app),
        deliver=_deliver_target(app),
        imap=[poller.mailbox.name for poller in pollers],
    )


async def _autoclose_loop(app: App, stop: asyncio.Event) -> None:
    interval = app.settings.intake.autoclose_interval
    while not stop.is_set():
        try:
            await asyncio.to_thread(app.autocloser.run_once, utc_now())
        except Exception as exc:  # the store may be down; try again next round
            structlog.get_logger("intake.autoclose").error("autoclose.failed", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _on_loop(submit: Callable[[int], None]) -> Callable[[int], None]:
    """The ids IMAP poller threads store reach the worker on the event loop."""
    loop = asyncio.get_running_loop()

    def hand_over(inbound_id: int) -> None:
        loop.call_soon_threadsafe(submit, inbound_id)

    return hand_over


def _reload_on_sighup(listener: SmtpListener) -> bool:
    """SIGHUP re-reads the STARTTLS certificate and key (certbot's renewal hook sends it).

    Only in the main thread (an in-process test's loop runs elsewhere): True when set.
    """
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, listener.reload_tls)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


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
