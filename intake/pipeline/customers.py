"""The customer directory: who wrote to us, and which contract terms apply to them.

Owns the ``CustomerRecord`` value, customer-name normalisation, matching a message to a
customer (support ID, subject customer, sender domain), the two contract checks that
need a customer (authorized contacts, subscription expiry), the CSV/TOML directory
readers and the conversion between store rows and records.

Pure apart from the file readers (which take a Path) and ``load_directory`` (which takes
a session). It never reads the clock: callers pass the day to check against.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import tomllib
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from intake.errors import ConfigError
from parsing import address_domain, address_key, canonical_address, canonical_domain
from store import repository as repo
from store.models import Customer

MatchedBy = Literal["name", "alias", "domain", "support_id"]
Scorer = Callable[["CustomerRecord"], int]  # 0: no match; higher: a more specific one

FIELDS = (
    "name",
    "aliases",
    "domains",
    "support_id",
    "timezone",
    "authorized_contacts",
    "subscription_expires",
    "policy",
)
LIST_FIELDS = frozenset({"aliases", "domains", "authorized_contacts"})

# Trailing words that say what kind of company it is, not which one: "Acme Corp.",
# "ACME corp" and "Acme" are the same customer, and all three normalise to "acme".
LEGAL_SUFFIXES = frozenset(
    {
        "inc",
        "incorporated",
        "llc",
        "ltd",
        "limited",
        "corp",
        "corporation",
        "co",
        "company",
        "gmbh",
        "plc",
        "sa",
        "ag",
        "bv",
    }
)
_DROPPED = str.maketrans("", "", ".'’‘\"“”")  # "A.C.M.E." is "ACME", "O'Neil" is "ONeil"
_SPACED = str.maketrans({",": " ", "(": " ", ")": " "})
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_EMAIL = re.compile(rf"[^@\s<>(),;:\"]+@{_LABEL}(?:\.{_LABEL})+")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    name: str
    aliases: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()  # lower-case, e.g. "acme.example"
    support_id: str | None = None
    timezone: str | None = None  # IANA, validated with zoneinfo
    authorized_contacts: tuple[str, ...] = ()  # lower-case addresses, primary first
    subscription_expires: date | None = None
    policy: str | None = None  # policy name; None = the configured default


@dataclass(frozen=True, slots=True)
class CustomerMatch:
    customer: CustomerRecord
    matched_by: MatchedBy


# ---------------------------------------------------------------------------- matching


@functools.lru_cache(maxsize=8192)  # pure; the directory's names repeat on every message
def normalize_name(text: str) -> str:
    """The comparison key of a customer name.

    Case-folded NFKC, punctuation removed, ``&`` read as ``and``, whitespace collapsed,
    and trailing legal suffixes dropped (``Acme Corp`` -> ``acme``); a name that is only
    a suffix keeps it (``Company`` -> ``company``), so no name normalises to nothing.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    words = folded.translate(_DROPPED).translate(_SPACED).replace("&", " and ").split()
    while len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
        words.pop()
        if len(words) > 1 and words[-1] == "and":  # "Smith & Co" is "Smith"
            words.pop()
    return " ".join(words)


def match_customer(
    directory: Sequence[CustomerRecord],
    subject_customer: str | None,
    from_address: str | None,
    support_id: str | None = None,
) -> CustomerMatch | None:
    """The one customer a message is from, or None when unknown or ambiguous.

    Evidence in order of strength: the support ID, the subject's customer equal to a
    name, then to an alias, then the sender's domain (exact or a subdomain; the longest
    listed domain wins). The first tier that finds exactly one customer decides. A tie
    is not guessed: the later tiers may break it among the tied customers only (the
    match then reports the tier that found them); a tie that stays is None.
    """
    pool = list(directory)
    index = directory.lookup if isinstance(directory, Directory) else None
    first: MatchedBy | None = None
    for tier, score, keys in _tiers(subject_customer, from_address, support_id):
        # The index only narrows whom to score: every customer it leaves out scores 0.
        candidates = pool if index is None or first else index.candidates(tier, keys)
        hits = _best(candidates, score)
        if not hits:
            continue
        first = first or tier
        if len(hits) == 1:
            return CustomerMatch(hits[0], first)
        pool = hits
    return None


def _tiers(
    subject_customer: str | None, from_address: str | None, support_id: str | None
) -> list[tuple[MatchedBy, Scorer, tuple[str, ...]]]:
    """Each tier's scorer, and the index keys under which a customer can score above 0."""
    tiers: list[tuple[MatchedBy, Scorer, tuple[str, ...]]] = []
    wanted_id = (support_id or "").strip().casefold()
    if wanted_id:
        tiers.append(
            (
                "support_id",
                lambda c: int((c.support_id or "").casefold() == wanted_id),
                (wanted_id,),
            )
        )
    key = normalize_name(subject_customer or "")
    if key:
        tiers.append(("name", lambda c: int(normalize_name(c.name) == key), (key,)))
        tiers.append(("alias", lambda c: int(key in _alias_keys(c.aliases)), (key,)))
    host = address_domain(from_address)
    if host:
        # host itself and every parent: "a.acme.example", "acme.example", "example".
        parents = tuple(host[i + 1 :] for i, ch in enumerate(host) if ch == ".")
        tiers.append(("domain", lambda c: _domain_score(c, host), (host, *parents)))
    return tiers


class Directory(tuple[CustomerRecord, ...]):
    """The customer directory with a pre-normalised match index, built once per load.

    A tuple like any other directory (``match_customer`` takes either); the index maps
    each tier's key (case-folded Support ID, normalised name, normalised alias, listed
    domain) to the positions of the customers it names, so matching scores a handful of
    candidates instead of normalising every customer for every message.
    """

    lookup: DirectoryIndex

    def __new__(cls, records: Iterable[CustomerRecord] = ()) -> Directory:
        self = super().__new__(cls, records)
        self.lookup = DirectoryIndex.of(self)
        return self


@dataclass(frozen=True, slots=True)
class DirectoryIndex:
    records: tuple[CustomerRecord, ...]
    keys: Mapping[MatchedBy, Mapping[str, tuple[int, ...]]]

    @classmethod
    def of(cls, records: tuple[CustomerRecord, ...]) -> DirectoryIndex:
        keys: dict[MatchedBy, dict[str, list[int]]] = {
            "support_id": {},
            "name": {},
            "alias": {},
            "domain": {},
        }

        def add(tier: MatchedBy, key: str, position: int) -> None:
            positions = keys[tier].setdefault(key, [])
            if not positions or positions[-1] != position:
                positions.append(position)

        for position, record in enumerate(records):
            if record.support_id:
                add("support_id", record.support_id.casefold(), position)
            add("name", normalize_name(record.name), position)
            for alias in sorted(_alias_keys(record.aliases)):
                add("alias", alias, position)
            for domain in record.domains:
                add("domain", canonical_domain(domain), position)
        frozen = {tier: {k: tuple(v) for k, v in table.items()} for tier, table in keys.items()}
        return cls(records, frozen)

    def candidates(self, tier: MatchedBy, keys: Sequence[str]) -> list[CustomerRecord]:
        """The customers that may score above 0 in ``tier``, in directory order."""
        table = self.keys[tier]
        positions = sorted({p for key in keys for p in table.get(key, ())})
        return [self.records[p] for p in positions]


@functools.lru_cache(maxsize=8192)
def _alias_keys(aliases: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize_name(a) for a in aliases)


def _best(pool: list[CustomerRecord], score: Scorer) -> list[CustomerRecord]:
    scored = [(score(c), c) for c in pool]
    top = max((s for s, _ in scored), default=0)
    return [c for s, c in scored if s == top] if top > 0 else []


def _domain_score(customer: CustomerRecord, host: str) -> int:
    """Length of the most specific listed domain the host is in (0: none)."""
    lengths = [
        len(d)
        for d in (canonical_domain(d) for d in customer.domains)
        if host == d or host.endswith(f".{d}")
    ]
    return max(lengths, default=0)


# ---------------------------------------------------------------------- contract checks


def is_authorized(customer: CustomerRecord, address: str | None) -> bool:
    """True when the customer restricts nobody (no contacts listed) or lists the sender."""
    if not customer.authorized_contacts:
        return True
    bare = canonical_address(address)
    return bare is not None and bare in {address_key(c) for c in customer.authorized_contacts}


def subscription_active(customer: CustomerRecord, on: date) -> bool:
    """Active through the expiry date itself; no expiry on file means active."""
    return customer.subscription_expires is None or on <= customer.subscription_expires


# ------------------------------------------------------------------------ file readers


class _FieldError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


def read_directory(path: Path, policies: Collection[str] | None = None) -> list[CustomerRecord]:
    """Read and validate a ``.csv`` or ``.toml`` directory file, all of it or nothing.

    ``policies``: the policy names a customer may refer to (None: any well-formed name).
    Raises ConfigError ``<file>:<line>: <field>: <problem>`` (TOML: ``<file>: customer
    <n> (<name>): <field>: <problem>``) at the first bad entry.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        entries = _csv_entries(path)
    elif suffix == ".toml":
        entries = _toml_entries(path)
    else:
        raise ConfigError(f"{path}: a customer directory is a .csv or .toml file")
    records = [_record(values, where, policies) for where, values in entries]
    _reject_duplicates(records, [where for where, _ in entries])
    return records


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets write a BOM
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _csv_entries(path: Path) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header: list[str] | None = None
    entries: list[tuple[str, dict[str, Any]]] = []
    last_line = 0
    for row in reader:
        where, last_line = f"{path}:{last_line + 1}", reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank lines are layout, not customers
        if header is None:
            header = _csv_header(row, where)
            continue
        if len(row) > len(header):
            raise ConfigError(f"{where}: {len(row)} values, but the header names {len(header)}")
        entries.append((where, dict(zip(header, row, strict=False))))
    if header is None:
        raise ConfigError(f"{path}: empty; the first row must name the columns ({_columns()})")
    return entries


def _csv_header(row: list[str], where: str) -> list[str]:
    header = [cell.strip().lower() for cell in row]
    for column, name in enumerate(header, start=1):
        if name not in FIELDS:
            what = f"unknown column {name!r}" if name else f"column {column} has no name"
            raise ConfigError(f"{where}: header: {what} (expected {_columns()})")
        if header.count(name) > 1:
            raise ConfigError(f"{where}: header: column {name!r} appears twice")
    if "name" not in header:
        raise ConfigError(f"{where}: header: no 'name' column (expected {_columns()})")
    return header


def _columns() -> str:
    return ", ".join(FIELDS)


def _toml_entries(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for key in data:
        if key != "customer":
            raise ConfigError(f"{path}: {key}: unknown key (expected [[customer]] tables)")
    tables = data.get("customer", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: customer: must be [[customer]] tables")
    entries = []
    for number, table in enumerate(tables, start=1):
        name = table.get("name")
        label = f" ({name.strip()})" if isinstance(name, str) and name.strip() else ""
        where = f"{path}: customer {number}{label}"
        for key in table:
            if key not in FIELDS:
                raise ConfigError(f"{where}: {key}: unknown key (expected {_columns()})")
        entries.append((where, table))
    return entries


# ---------------------------------------------------------------------- field checks


def _record(
    values: Mapping[str, Any], where: str, policies: Collection[str] | None
) -> CustomerRecord:
    try:
        return CustomerRecord(
            name=_name(values.get("name")),
            aliases=_texts("aliases", values.get("aliases")),
            domains=tuple(_domain(d) for d in _texts("domains", values.get("domains"))),
            support_id=_text("support_id", values.get("support_id")),
            timezone=_zone(_text("timezone", values.get("timezone"))),
            authorized_contacts=_contacts(values.get("authorized_contacts")),
            subscription_expires=_date(values.get("subscription_expires")),
            policy=_policy(_text("policy", values.get("policy")), policies),
        )
    except _FieldError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _name(value: Any) -> str:
    name = _text("name", value)
    if name is None or not normalize_name(name):
        raise _FieldError("name", "missing (every customer needs a name)")
    return name


def _text(field: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _FieldError(field, f"must be text, not {type(value).__name__}")
    return " ".join(value.split()) or None


def _texts(field: str, value: Any) -> tuple[str, ...]:
    """A list column: ``a;b`` in CSV, an array of strings in TOML; blanks are dropped."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = value.split(";")
    elif isinstance(value, list):
        items = value
    else:
        raise _FieldError(field, f"must be a list of text, not {type(value).__name__}")
    cleaned = (_text(field, item) for item in items)
    return tuple(dict.fromkeys(item for item in cleaned if item))  # ordered, no repeats


def _domain(value: str) -> str:
    domain = canonical_domain(value.removeprefix("@"))
    if not _DOMAIN.fullmatch(domain):
        raise _FieldError("domains", f"{value!r} is not a domain like acme.example")
    return domain


def _contacts(value: Any) -> tuple[str, ...]:
    addresses = _texts("authorized_contacts", value)
    for address in addresses:
        if not _EMAIL.fullmatch(address.lower()):
            raise _FieldError("authorized_contacts", f"{address!r} is not an e-mail address")
    return tuple(dict.fromkeys(address_key(a) for a in addresses))


def _zone(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        problem = f"unknown time zone {name!r} (IANA, e.g. America/Denver)"
        raise _FieldError("timezone", problem) from None
    return name


def _date(value: Any) -> date | None:
    if isinstance(value, datetime):
        raise _FieldError("subscription_expires", "give a date without a time (YYYY-MM-DD)")
    if isinstance(value, date):
        return value  # a TOML local date
    text = _text("subscription_expires", value)
    if text is None:
        return None
    problem = _FieldError("subscription_expires", f"{text!r} is not a date (YYYY-MM-DD)")
    if not _ISO_DATE.fullmatch(text):  # fromisoformat would also take 20261122
        raise problem
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise problem from None


def _policy(name: str | None, policies: Collection[str] | None) -> str | None:
    if name is None:
        return None
    if not name.replace("-", "_").isidentifier():  # the rule policy file names follow
        raise _FieldError("policy", f"{name!r} is not a policy name")
    if policies is not None and name not in policies:
        known = ", ".join(sorted(policies)) or "none"
        raise _FieldError("policy", f"no policy named {name!r} (available: {known})")
    return name


def _reject_duplicates(records: Sequence[CustomerRecord], places: Sequence[str]) -> None:
    """One entry per customer: two names with one key, or one support ID twice, is a typo."""
    names: dict[str, CustomerRecord] = {}
    ids: dict[str, CustomerRecord] = {}
    for record, where in zip(records, places, strict=True):
        key = normalize_name(record.name)
        if key in names:
            other = names[key].name
            raise ConfigError(f"{where}: name: {record.name!r} is the same customer as {other!r}")
        names[key] = record
        support_id = (record.support_id or "").casefold()
        if support_id and support_id in ids:
            other = ids[support_id].name
            raise ConfigError(f"{where}: support_id: {record.support_id!r} is already {other!r}'s")
        if support_id:
            ids[support_id] = record


# ------------------------------------------------------------------------ the store


def support_id_conflicts(
    stored: Sequence[CustomerRecord], incoming: Sequence[CustomerRecord]
) -> list[str]:
    """Incoming support IDs already held by a stored customer the import does not rewrite."""
    incoming_keys = {normalize_name(r.name) for r in incoming}
    holders = {
        (r.support_id or "").casefold(): r
        for r in stored
        if r.support_id and normalize_name(r.name) not in incoming_keys
    }
    problems = []
    for record in incoming:
        holder = holders.get((record.support_id or "").casefold())
        if record.support_id and holder is not None:
            problems.append(
                f"{record.name}: support_id: {record.support_id!r} already belongs to "
                f"{holder.name!r} in the store"
            )
    return problems


def values_from_record(record: CustomerRecord) -> repo.CustomerValues:
    return repo.CustomerValues(
        name=record.name,
        normalized_name=normalize_name(record.name),
        aliases=record.aliases,
        domains=record.domains,
        support_id=record.support_id,
        timezone=record.timezone,
        authorized_contacts=record.authorized_contacts,
        subscription_expires=record.subscription_expires,
        policy=record.policy,
    )


def record_from_row(row: Customer) -> CustomerRecord:
    return CustomerRecord(
        name=row.name,
        aliases=tuple(row.aliases),
        domains=tuple(row.domains),
        support_id=row.support_id,
        timezone=row.timezone,
        authorized_contacts=tuple(row.authorized_contacts),
        subscription_expires=row.subscription_expires,
        policy=row.policy,
    )


def load_directory(session: Session) -> Directory:
    """Every customer in the store, read now (the CLI; processing uses DirectoryCache)."""
    return Directory(record_from_row(row) for row in repo.list_customers(session))


class DirectoryCache:
    """The directory as of its version row: no statement of its own per message, not 500 rows.

    ``customers import`` bumps the version in its own transaction, so every instance
    reloads at its next message after the import commits. ``load`` takes the version
    already read in this transaction (COMMIT 2 reads it in the same SELECT as the message,
    ``PendingInbound.directory_version``), so it is read before the rows: an import
    landing in between is cached under the older version and reloaded on the next call,
    never the other way round. One tuple is swapped whole (thread-safe).
    """

    def __init__(self) -> None:
        self._cached: tuple[int, Directory] | None = None

    def load(self, session: Session, version: int) -> Directory:
        cached = self._cached
        if cached is not None and cached[0] == version:
            return cached[1]
        records = load_directory(session)
        self._cached = (version, records)
        return records


def customer_view(record: CustomerRecord) -> dict[str, Any]:
    """The ``intake customers list --json`` object."""
    expires = record.subscription_expires
    return {
        "name": record.name,
        "aliases": list(record.aliases),
        "domains": list(record.domains),
        "support_id": record.support_id,
        "timezone": record.timezone,
        "authorized_contacts": list(record.authorized_contacts),
        "subscription_expires": expires.isoformat() if expires else None,
        "policy": record.policy,
    }
