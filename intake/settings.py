"""The daemon's configuration: one validated pydantic-settings tree.

Sources, strongest first: CLI flags (passed in as overrides), ``INTAKE_…`` environment
variables (``__`` nests: ``INTAKE_SMTP__PORT=2526``), then one TOML file (``--config``,
else ``$INTAKE_CONFIG``, else the shipped ``config/intake.toml``). Unknown keys and bad
values are refused at start-up with one line per problem naming the dotted key. The IMAP
mailbox URL grammar is config syntax and lives here too; it imports no layer of intake.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from intake.errors import ConfigError
from parsing import address_domain, canonical_domain, format_literals

_STRICT = ConfigDict(extra="forbid", frozen=True)

# -- mailbox URLs: config syntax, so they live here (credentials live in edges/mailboxes) --
#
# ``imap://USER:PASSWORD@HOST:PORT/FOLDER`` (plaintext, loopback only unless allowed),
# ``imap+starttls://…`` (STARTTLS required, RFC 3501 §6.2.1; never a plaintext fallback)
# and ``imaps://…`` (implicit TLS, RFC 8314). Query parameters name further per-mailbox
# settings, e.g. ``imaps://bot@imap.example.net/INBOX?password_env=IMAP_PW``. The user and
# password are percent-decoded, so ``%40`` stands for ``@`` in a user name.

Security = Literal["plain", "starttls", "tls"]
SCHEMES: dict[str, Security] = {"imap": "plain", "imap+starttls": "starttls", "imaps": "tls"}
DEFAULT_PORTS: dict[Security, int] = {"plain": 143, "starttls": 143, "tls": 993}


@dataclass(frozen=True, slots=True)
class MailboxUrl:
    security: Security
    host: str
    port: int
    username: str
    password: str | None
    folder: str
    options: dict[str, str]  # the query string: further MailboxSettings keys

    @property
    def name(self) -> str:
        """The mailbox's stable name (logs, status, lease): never contains the password."""
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"

    def without_password(self) -> str:
        scheme = next(s for s, sec in SCHEMES.items() if sec == self.security)
        user, folder = quote(self.username, safe=""), quote(self.folder, safe="/")
        return f"{scheme}://{user}@{self.host}:{self.port}/{folder}"


def parse_mailbox_url(url: str) -> MailboxUrl:
    """Split a mailbox URL; raises ValueError naming what is wrong (never the password)."""
    parts = urlsplit(url)
    security = SCHEMES.get(parts.scheme.lower())
    if security is None:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("no host in mailbox URL")
    if not parts.username:
        raise ValueError("no user in mailbox URL (imap://USER@HOST/FOLDER)")
    try:
        port = parts.port or DEFAULT_PORTS[security]
    except ValueError:
        raise ValueError("port must be a number from 1 to 65535") from None
    return MailboxUrl(
        security=security,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username),
        password=unquote(parts.password) if parts.password is not None else None,
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
        options=dict(parse_qsl(parts.query, keep_blank_values=True)),
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class DatabaseSettings(BaseModel):
    model_config = _STRICT
    # SQLite in WAL mode is the embedded default; PostgreSQL (postgresql+psycopg://…)
    # for production and for several instances sharing one store.
    url: str = "sqlite:///./intake.db"
    echo: bool = False


class SmtpSettings(BaseModel):
    model_config = _STRICT
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=0, le=65535)
    # Given to aiosmtpd so it does not call socket.getfqdn() per connection.
    hostname: str = "localhost"
    max_message_size: int = Field(default=25 * 1024 * 1024, gt=0)  # 552 above this
    max_recipients: int = Field(default=100, gt=0)
    # RFC 5321 §4.5.3.2.7 asks for 10 minutes of DATA inactivity tolerance.
    timeout: float = Field(default=300.0, gt=0)
    # On SIGTERM: seconds a session already in DATA may take to get its answer.
    shutdown_grace: float = Field(default=30.0, ge=0)
    # Error replies (4xx/5xx) a session may get before 421 and disconnect, like Postfix's
    # smtpd_hard_error_limit; delivering a message resets the count.
    max_errors: int = Field(default=20, gt=0)
    # STARTTLS (RFC 3207): a PEM certificate chain and its key, re-read on SIGHUP. Without
    # them STARTTLS is not offered; ``require_tls`` refuses MAIL (530) before STARTTLS.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    # Sessions at once, in total and from one client IP: 421 at connect beyond either.
    max_sessions: int = Field(default=200, gt=0)
    max_sessions_per_ip: int = Field(default=50, gt=0)
    # Bytes of DATA held in memory by all sessions at once: while reached, MAIL gets 452.
    max_data_in_flight: int = Field(default=64 * 1024 * 1024, gt=0)

    @model_validator(mode="after")
    def _tls_pair(self) -> SmtpSettings:
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("tls_certificate and tls_key go together")
        if self.require_tls and self.tls_certificate is None:
            raise ValueError("require_tls needs tls_certificate and tls_key")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certificate is not None


class OutboundSettings(BaseModel):
    model_config = _STRICT
    # With no relay host, replies are written as .eml files into ``directory``.
    directory: Path = Path("outbox")
    relay_host: str | None = None
    relay_port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    verify_certificates: bool = True
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=10, ge=1)
    backoff_initial: float = Field(default=30.0, gt=0)  # seconds, doubled per attempt
    backoff_max: float = Field(default=3600.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0)
    # Seconds a sender's claim on a reply lasts; renewed every third of it while the batch
    # is sent, so only a dead sender's claim runs out (and then another sender takes over).
    claim_ttl: float = Field(default=30.0, ge=1)

    @property
    def uses_relay(self) -> bool:
        return bool(self.relay_host)


# Free-mail providers: one domain, millions of unrelated senders. A flood from one of them
# is one address's (or a botnet's many addresses'), never "gmail.com" as a customer.
FREE_MAIL_DOMAINS = (
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "ymail.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "mail.com",
    "proton.me",
    "protonmail.com",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
)


class IntakeSettings(BaseModel):
    model_config = _STRICT
    support_addresses: tuple[str, ...] = ("support@example.com",)
    support_name: str = "Support"
    # Extra addresses that are ours (aliases, the relay's bounce address): mail from them
    # is a loop and never answered.
    own_addresses: tuple[str, ...] = ()
    noc_cc: tuple[str, ...] = ()
    # Our staff: individual addresses and whole domains (CC reminders, staff replies).
    staff_addresses: tuple[str, ...] = ()
    staff_domains: tuple[str, ...] = ()
    # Sender authentication (issue 13, README "Security"): the authserv-ids of our own MTAs
    # whose Authentication-Results (RFC 8601) are believed; empty believes none of them.
    trusted_authserv_ids: tuple[str, ...] = ()
    # Verify DKIM signatures ourselves (dkimpy, DNS TXT look-ups) besides the MTA's results.
    verify_dkim: bool = False
    # HMAC key for our Message-ID tokens; generated once and kept in the store when unset.
    thread_secret: SecretStr | None = None
    reopen_window_days: float = Field(default=14.0, ge=0)  # a follow-up reopens a closed ticket
    policy: str = "standard"
    policy_dir: Path | None = None  # extra policy files, searched before the shipped ones
    ticket_number_format: str = "TKT-{:06d}"
    max_attempts: int = Field(default=5, ge=1)  # processing attempts before quarantine
    retry_initial: float = Field(default=5.0, gt=0)
    retry_max: float = Field(default=600.0, gt=0)
    sweep_interval: float = Field(default=5.0, gt=0)
    # The time budget of reading one message (parse + assessment) in a worker process;
    # past it the worker is killed and the message quarantined (intake.pipeline.isolation).
    parse_timeout: float = Field(default=5.0, gt=0)
    # Worker processes that read messages; None: one per usable CPU; 0: in the daemon's
    # own process, without a budget (debugging only).
    workers: int | None = Field(default=None, ge=0)
    # Where COMMIT 2 runs (intake.pipeline.remote): "process", a child process of its own,
    # so accepting never waits on processing's GIL; "inline", threads of the daemon's
    # process (embedding, debugging).
    processing: Literal["process", "inline"] = "process"
    # The reading workers' nice(2) increment (0-19): parsing yields the CPU to accepting.
    # Not the processes that take store locks: one descheduled holding SQLite's write lock
    # would hold up every COMMIT 1 (a priority inversion; measured: p99 of the 250 4x).
    reading_nice: int = Field(default=10, ge=0, le=19)
    # COMMIT 2's group commit (intake.pipeline.batch): at most this many messages that
    # finished reading meanwhile are written in one transaction (1: one each). None: the
    # store's default (intake.app.commit_group): 1 on SQLite, 32 on PostgreSQL.
    commit_group: int | None = Field(default=None, ge=1)
    autoclose_interval: float = Field(default=300.0, gt=0)  # seconds between auto-close scans
    stall_after: float = Field(default=300.0, gt=0)  # health fails past this backlog age
    # The supervisor restarts a task that died after this, doubled per failure in a row.
    restart_initial: float = Field(default=1.0, gt=0)
    restart_max: float = Field(default=60.0, gt=0)
    # The outbound budget (intake.replies.budget; RFC 3834 §2): automatic replies per recipient
    # in a rolling hour / day, and how long a permanent bounce silences an address.
    replies_per_hour: int = Field(default=10, ge=1)
    replies_per_day: int = Field(default=40, ge=1)
    bounce_suppression_days: float = Field(default=7.0, gt=0)
    # Inbound flood limits (intake.pipeline.flood): new tickets per sender address and per
    # sender domain in a rolling hour; past them mail is kept on the sender's latest ticket.
    flood_per_address: int = Field(default=20, ge=1)
    flood_per_domain: int = Field(default=100, ge=1)
    # Domains whose users are unrelated people (free mail): only the address limit applies.
    flood_shared_domains: tuple[str, ...] = FREE_MAIL_DOMAINS
    # Who is told of a flood (once per keeping ticket and hour); empty: staff_addresses.
    flood_notify: tuple[str, ...] = ()
    # Confirmation reflection caps (intake.replies.reflection): distinct addresses one
    # sending IP / one From domain may have us confirm to in a rolling hour. Past them the
    # ticket is made, its confirmation suppressed. The domain cap spares the same domains as
    # the flood limits (free mail, staff); the IP cap spares ``reflection_exempt_peers``, the
    # MTA in front (all mail comes from its address there, so only the domain cap means
    # anything).
    reflection_per_ip: int = Field(default=30, ge=1)
    reflection_per_domain: int = Field(default=30, ge=1)
    reflection_exempt_peers: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    @field_validator("reflection_exempt_peers")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            try:
                ipaddress.ip_network(network.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP network: {network!r}") from None
        return tuple(n.strip() for n in value)

    @field_validator("flood_shared_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(canonical_domain(d) for d in value if d.strip())

    @field_validator(
        "support_addresses", "own_addresses", "noc_cc", "staff_addresses", "flood_notify"
    )
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if address.count("@") != 1 or any(c.isspace() for c in address):
                raise ValueError(f"not an e-mail address: {address!r}")
        return tuple(a.strip() for a in value)

    @field_validator("support_addresses")
    @classmethod
    def _at_least_one(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one support address is required")
        return value

    @field_validator("ticket_number_format")
    @classmethod
    def _number_format(cls, value: str) -> str:
        try:
            value.format(1)
            format_literals(value)  # one number, so a reply's [tag] reads back unambiguously
        except (IndexError, KeyError, ValueError) as exc:
            raise ValueError(f"must format one integer, like 'TKT-{{:06d}}': {exc}") from exc
        return value

    @property
    def primary_address(self) -> str:
        return self.support_addresses[0]

    @property
    def domain(self) -> str:
        return address_domain(self.primary_address) or ""


class MailboxSettings(BaseModel):
    """One IMAP mailbox (see ``parse_mailbox_url`` above for the URL forms)."""

    model_config = _STRICT
    # A password given in the URL is moved to ``password`` (masked in `config show`).
    url: str
    password: SecretStr | None = None
    password_env: str | None = None  # or: the password from this environment variable
    password_file: Path | None = None  # or: the first line of this secrets file
    processed_folder: str = "Processed"  # created when missing
    quarantine_folder: str = "Quarantine"
    verify_certificates: bool = True
    ca_file: Path | None = None  # extra CA bundle (a private CA, a test certificate)
    allow_plaintext: bool = False  # imap:// to a host that is not loopback
    oauth2_token_command: str | None = None  # XOAUTH2: prints the access token
    oauth2_token_file: Path | None = None  # XOAUTH2: holds the access token
    oauth2_refresh_token_expires_at: datetime | None = None  # warn well before this

    @model_validator(mode="before")
    @classmethod
    def _split_url(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"url": data}
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        try:
            parsed = parse_mailbox_url(data["url"])
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from None
        merged = {**parsed.options, **data, "url": parsed.without_password()}
        if parsed.password is not None:
            merged.setdefault("password", parsed.password)
        return merged

    @model_validator(mode="after")
    def _check(self) -> MailboxSettings:
        url = parse_mailbox_url(self.url)
        if url.security == "plain" and not is_loopback(url.host) and not self.allow_plaintext:
            raise ValueError(
                f"imap:// to {url.host} sends the password in clear; use imaps:// or "
                "imap+starttls://, or set allow_plaintext = true"
            )
        sources = [self.password, self.password_env, self.password_file]
        sources += [self.oauth2_token_command, self.oauth2_token_file]
        if sum(s is not None for s in sources) > 1:
            raise ValueError("give one of password, password_env, password_file, oauth2_token_*")
        return self

    @property
    def name(self) -> str:
        return parse_mailbox_url(self.url).name


class ImapSettings(BaseModel):
    model_config = _STRICT
    mailboxes: tuple[MailboxSettings, ...] = ()
    batch_size: int = Field(default=200, ge=1, le=5000)  # UIDs per FETCH BODY.PEEK[]
    poll_interval: float = Field(default=60.0, gt=0)  # without IDLE; also lease standby
    # RFC 2177: servers may drop an IDLE after 30 minutes; re-issue well before that.
    idle_timeout: float = Field(default=25 * 60.0, gt=0, lt=29 * 60)
    connect_timeout: float = Field(default=15.0, gt=0)
    timeout: float = Field(default=60.0, gt=0)  # per command (socket read)
    max_message_size: int = Field(default=25 * 1024 * 1024, gt=0)  # larger: quarantine
    max_attempts: int = Field(default=3, ge=1)  # store attempts per message: then quarantine
    backoff_initial: float = Field(default=2.0, gt=0)  # seconds, doubled per failure
    backoff_max: float = Field(default=300.0, gt=0)  # ±20 % jitter
    lease_duration: float = Field(default=60.0, ge=1)  # one instance polls a mailbox
    failing_after: float = Field(default=600.0, gt=0)  # health fails past this

    @field_validator("mailboxes")
    @classmethod
    def _distinct(cls, value: tuple[MailboxSettings, ...]) -> tuple[MailboxSettings, ...]:
        names = [m.name for m in value]
        if len(set(names)) != len(names):
            raise ValueError("the same mailbox (user@host:port/folder) is listed twice")
        return value


# A staff account name: what the board records as "who", and a key of the users file
# (``NAME:HASH`` lines), so no colon, no space, nothing a log line or a header could split on.
STAFF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def check_staff_name(name: str) -> str:
    """``name`` when it may name a staff account, else ValueError saying what may."""
    if not STAFF_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a staff name: 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


class WebAuthSettings(BaseModel):
    """The board's login (README "The NOC board", Login). On when any account source is set."""

    model_config = _STRICT
    # Staff accounts inline: name -> argon2 PHC hash (`intake staff add NAME --print` makes
    # one). Secret: a hash is an offline guessing target, so `config show` masks it.
    users: dict[str, SecretStr] = Field(default_factory=dict)
    # And/or a file of ``NAME:HASH`` lines that `intake staff add` writes (mode 0600).
    users_file: Path | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)  # a signed cookie's life
    # Failed logins per account and per client IP in the window, then 429 until it passes.
    max_failures: int = Field(default=5, ge=1)
    failure_window_minutes: float = Field(default=15.0, gt=0)

    @field_validator("users")
    @classmethod
    def _hashes(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, phc in value.items():
            check_staff_name(name)
            if not phc.get_secret_value().startswith("$argon2"):
                raise ValueError(f"{name}: not an argon2 hash (intake staff add NAME --print)")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.users_file is not None


class WebSettings(BaseModel):
    """The HTTP server inside ``intake serve``: /healthz, /readyz, /metrics, the board."""

    model_config = _STRICT
    # HOST:PORT; port 0 takes a free port (the test suite). Off loopback the board needs
    # ``auth`` (staff accounts): an open board is only ever reachable from this machine.
    listen: str = "127.0.0.1:8025"
    # The board's JSON API (/api/) answers only "Authorization: Bearer <this>"; unset: the
    # API is off (every /api/ request is 401). Generate one with `openssl rand -hex 32`.
    api_token: SecretStr | None = None
    auth: WebAuthSettings = WebAuthSettings()
    # Seconds between the board's polls of the store for its live updates: on SQLite, and
    # on PostgreSQL only while the LISTEN connection is down (a NOTIFY wakes it otherwise).
    board_poll_interval: float = Field(default=0.5, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_host_port(value)
        return value

    @model_validator(mode="after")
    def _login_off_loopback(self) -> WebSettings:
        if not is_loopback(self.host) and not self.auth.enabled:
            raise ValueError(
                f"web.auth: listen {self.listen} is not loopback, so the board needs a login: "
                "set web.auth.users_file (then intake staff add NAME) or web.auth.users"
            )
        return self

    @property
    def host(self) -> str:
        return split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.listen)[1]


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8025`` for IPv6) to its parts; ValueError when malformed."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


class LoggingSettings(BaseModel):
    model_config = _STRICT
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"
    # A repeated error (same kind) is logged once with its traceback, then as one count
    # per this many seconds.
    repeat_interval: float = Field(default=60.0, gt=0)


class Settings(BaseSettings):
    """The whole tree. Build it with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix="INTAKE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by value: the processing process (``intake.pipeline.remote``) runs on the
        daemon's settings as they are. The class ``load_settings`` binds to a config file
        is local to it, so it cannot be pickled by name; the values need no sources."""
        return (_from_values, (self.model_dump(),))

    database: DatabaseSettings = DatabaseSettings()
    smtp: SmtpSettings = SmtpSettings()
    outbound: OutboundSettings = OutboundSettings()
    intake: IntakeSettings = IntakeSettings()
    imap: ImapSettings = ImapSettings()
    web: WebSettings = WebSettings()
    logging: LoggingSettings = LoggingSettings()


def default_config_path() -> Path:
    return Path(str(resources.files("intake.config").joinpath("intake.toml")))


def load_settings(
    config_path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Read file, environment and overrides into one validated tree, or raise ConfigError."""
    path = config_path or _env_config_path() or default_config_path()
    if not path.is_file():
        raise ConfigError(f"config file {path}: not found")
    bound = _bind_sources(path)
    try:
        return bound(**_nest(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source=str(path))) from None
    except ValueError as exc:  # TOML syntax errors surface as ValueError subclasses
        raise ConfigError(f"config file {path}: {exc}") from None


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: ``<source>: <dotted.key>: <what is wrong>``."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{source}: {key}: {message}")
    return "; ".join(lines)


def parse_deliver_target(target: str) -> dict[str, Any]:
    """Turn ``--deliver DIR|smtp://[user:pass@]host:port`` into outbound overrides.

    ``smtp://`` is plain SMTP (use on loopback or trusted networks), ``smtp+starttls://``
    requires STARTTLS (RFC 3207), ``smtps://`` is implicit TLS (RFC 8314).
    """
    schemes = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}
    parts = urlsplit(target)
    if parts.scheme not in schemes:
        return {"directory": Path(target), "relay_host": None}
    if not parts.hostname:
        raise ConfigError(f"--deliver {target}: no host in relay URL")
    default_port = {"none": 25, "starttls": 587, "tls": 465}[schemes[parts.scheme]]
    result: dict[str, Any] = {
        "relay_host": parts.hostname,
        "relay_port": parts.port or default_port,
        "security": schemes[parts.scheme],
    }
    if parts.username:
        result["username"] = unquote(parts.username)
        result["password"] = unquote(parts.password or "")
    return result


def _env_config_path() -> Path | None:
    value = os.environ.get("INTAKE_CONFIG")
    return Path(value) if value else None


def _from_values(values: dict[str, Any]) -> Settings:
    return Settings.model_validate(values)  # validated again; no file or environment read


def _bind_sources(path: Path) -> type[Settings]:
    class BoundSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            toml = TomlConfigSettingsSource(settings_cls, toml_file=path)
            return (init_settings, env_settings, toml)

    return BoundSettings


def _nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"smtp.port": 1}`` → ``{"smtp": {"port": 1}}``; None values are dropped."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested
