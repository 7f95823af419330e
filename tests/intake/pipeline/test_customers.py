"""The customer directory: name normalisation, matching, contract checks, the readers,
the store round trip (SQLite and PostgreSQL) and ``intake customers`` as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import ConfigError
from intake.pipeline.customers import (
    FIELDS,
    CustomerMatch,
    CustomerRecord,
    Directory,
    customer_view,
    is_authorized,
    load_directory,
    match_customer,
    normalize_name,
    read_directory,
    record_from_row,
    subscription_active,
    support_id_conflicts,
    values_from_record,
)
from intake.policy.policy import available_policies
from store import repository as repo
from store.db import create_schema, make_engine, make_session_factory, session_scope

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = (REPO / "config" / "customers.example.toml", REPO / "config" / "customers.example.csv")
POLICIES = frozenset({"standard", "managed-pbx", "subscription", "cloud-services"})
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

ACME = CustomerRecord(
    "Acme Corp",
    aliases=("Acme Widgets",),
    domains=("acme.example",),
    timezone="America/Denver",
    authorized_contacts=("jane@acme.example", "it-backup@acme.example"),
    subscription_expires=date(2027, 6, 30),
    policy="managed-pbx",
)
GLOBEX = CustomerRecord(
    "Globex Corporation", aliases=("Globex International",), domains=("globex.example",)
)
INITECH = CustomerRecord("Initech, Inc.", domains=("initech.example",), support_id="ALT-4471")
DIRECTORY = (ACME, GLOBEX, INITECH)

# Two customers sharing an alias, and two sharing a domain: ties the matcher must not guess.
WIDGETS_UK = CustomerRecord("Acme Widgets UK Ltd", aliases=("Acme Widgets",), domains=("acme.uk",))
SHARED_A = CustomerRecord("Alpha", domains=("shared.example",))
SHARED_B = CustomerRecord("Beta", domains=("shared.example",))
PARENT = CustomerRecord("Example Holdings", domains=("example.org",))
BRANCH = CustomerRecord("Example Europe", domains=("eu.example.org",))
TWIN_ID = CustomerRecord("Initech Labs", support_id="alt-4471")


# ------------------------------------------------------------------------ normalize_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("ACME corp.", "acme", id="case-and-suffix-with-dot"),
        pytest.param("Acme Corp", "acme", id="suffix-dropped"),
        pytest.param("Acme", "acme", id="bare-name"),
        pytest.param("Acme Co., Ltd.", "acme", id="stacked-suffixes"),
        pytest.param("  Initech,   Inc. ", "initech", id="comma-and-whitespace"),
        pytest.param("Smith & Jones LLC", "smith and jones", id="ampersand"),
        pytest.param("Smith and Jones", "smith and jones", id="and-spelled-out"),
        pytest.param("Smith & Co", "smith", id="and-co"),
        pytest.param("AT&T", "at and t", id="ampersand-inside"),
        pytest.param("O’Neil Ltd", "oneil", id="curly-apostrophe"),
        pytest.param('"Globex" (Intl)', "globex intl", id="quotes-and-parentheses"),
        pytest.param("A.C.M.E. GmbH", "acme", id="initials"),
        pytest.param("ＡＣＭＥ Corp", "acme", id="nfkc-fullwidth"),
        pytest.param("Straße AG", "strasse", id="casefold"),
        pytest.param("Acme\u00a0Corp", "acme", id="nbsp"),
        pytest.param("Acme Corp (Denver)", "acme corp denver", id="suffix-not-trailing"),
        pytest.param("Company", "company", id="only-a-suffix-is-kept"),
        pytest.param("Smith-Jones LLC", "smith-jones", id="hyphen-kept"),
        pytest.param("", "", id="empty"),
    ],
)
def test_normalize_name(text: str, expected: str) -> None:
    assert normalize_name(text) == expected


# ------------------------------------------------------------------------ match_customer


@pytest.mark.parametrize(
    ("directory", "subject", "sender", "support_id", "expected"),
    [
        pytest.param(DIRECTORY, "ACME corp.", None, None, (ACME, "name"), id="name-normalized"),
        pytest.param(DIRECTORY, "acme", None, None, (ACME, "name"), id="name-without-suffix"),
        pytest.param(DIRECTORY, "Initech Inc", None, None, (INITECH, "name"), id="name-comma"),
        pytest.param(DIRECTORY, "ACME widgets", None, None, (ACME, "alias"), id="alias"),
        pytest.param(DIRECTORY, None, "jane@acme.example", None, (ACME, "domain"), id="domain"),
        pytest.param(
            DIRECTORY,
            None,
            "Jane Doe <Jane@Denver.ACME.example>",
            None,
            (ACME, "domain"),
            id="subdomain-with-display-name",
        ),
        pytest.param(DIRECTORY, None, "x@notacme.example", None, None, id="not-a-subdomain"),
        pytest.param(
            DIRECTORY, "Acme Corp", None, "alt-4471", (INITECH, "support_id"), id="support-id-wins"
        ),
        pytest.param(
            DIRECTORY, "Acme Corp", None, "ALT-0000", (ACME, "name"), id="unknown-support-id"
        ),
        pytest.param(
            DIRECTORY,
            "Globex",
            "jane@acme.example",
            None,
            (GLOBEX, "name"),
            id="name-beats-domain",
        ),
        pytest.param(
            DIRECTORY,
            "Hooli",
            "gavin@hooli.example",
            None,
            None,
            id="unknown-customer",
        ),
        pytest.param(
            DIRECTORY,
            "Hooli",
            "peter@initech.example",
            None,
            (INITECH, "domain"),
            id="unknown-name-known-domain",
        ),
        pytest.param(DIRECTORY, None, None, None, None, id="no-evidence"),
        pytest.param(DIRECTORY, "", "not an address", "  ", None, id="blank-evidence"),
        pytest.param((), "Acme Corp", "jane@acme.example", None, None, id="empty-directory"),
        pytest.param((ACME, WIDGETS_UK), "Acme Widgets", None, None, None, id="ambiguous-alias"),
        pytest.param(
            (ACME, WIDGETS_UK),
            "Acme Widgets",
            "bob@acme.uk",
            None,
            (WIDGETS_UK, "alias"),
            id="ambiguous-alias-broken-by-domain",
        ),
        pytest.param(
            (SHARED_A, SHARED_B), None, "x@shared.example", None, None, id="ambiguous-domain"
        ),
        pytest.param(
            (PARENT, BRANCH),
            None,
            "x@eu.example.org",
            None,
            (BRANCH, "domain"),
            id="most-specific-domain",
        ),
        pytest.param(
            (PARENT, BRANCH),
            None,
            "x@us.example.org",
            None,
            (PARENT, "domain"),
            id="parent-domain",
        ),
        pytest.param(
            (INITECH, TWIN_ID),
            "Initech Labs",
            None,
            "ALT-4471",
            (TWIN_ID, "support_id"),
            id="duplicate-support-id-broken-by-name",
        ),
        pytest.param(
            (INITECH, TWIN_ID), None, None, "ALT-4471", None, id="duplicate-support-id-ambiguous"
        ),
    ],
)
@pytest.mark.parametrize("indexed", [False, True], ids=["scan", "indexed"])
def test_match_customer(
    directory: tuple[CustomerRecord, ...],
    subject: str | None,
    sender: str | None,
    support_id: str | None,
    expected: tuple[CustomerRecord, str] | None,
    indexed: bool,
) -> None:
    # The pre-normalised index (processing's cached Directory) must match like the scan.
    pool = Directory(directory) if indexed else directory
    found = match_customer(pool, subject, sender, support_id)
    assert found == (CustomerMatch(*expected) if expected else None)  # type: ignore[arg-type]


# ------------------------------------------------------------------- contract checks


@pytest.mark.parametrize(
    ("customer", "address", "expected"),
    [
        pytest.param(GLOBEX, "anyone@elsewhere.example", True, id="no-contacts-no-restriction"),
        pytest.param(GLOBEX, None, True, id="no-contacts-no-address"),
        pytest.param(ACME, "jane@acme.example", True, id="primary"),
        pytest.param(ACME, "it-backup@acme.example", True, id="backup"),
        pytest.param(ACME, "JANE@Acme.Example", True, id="case-insensitive"),
        pytest.param(ACME, "Jane Doe <jane@acme.example>", True, id="display-name"),
        pytest.param(ACME, "bob@acme.example", False, id="colleague-not-listed"),
        pytest.param(ACME, None, False, id="no-address"),
        pytest.param(
            CustomerRecord("X", authorized_contacts=("Jane@Acme.Example",)),
            "jane@acme.example",
            True,
            id="mixed-case-contact-in-record",
        ),
    ],
)
def test_is_authorized(customer: CustomerRecord, address: str | None, expected: bool) -> None:
    assert is_authorized(customer, address) is expected


@pytest.mark.parametrize(
    ("expires", "on", "expected"),
    [
        pytest.param(None, date(2099, 1, 1), True, id="no-expiry"),
        pytest.param(date(2026, 11, 22), date(2026, 11, 21), True, id="day-before"),
        pytest.param(date(2026, 11, 22), date(2026, 11, 22), True, id="expiry-day-inclusive"),
        pytest.param(date(2026, 11, 22), date(2026, 11, 23), False, id="day-after"),
        pytest.param(date(2026, 9, 30), date(2026, 11, 22), False, id="long-lapsed"),
    ],
)
def test_subscription_active(expires: date | None, on: date, expected: bool) -> None:
    customer = CustomerRecord("Globex", subscription_expires=expires)
    assert subscription_active(customer, on) is expected


# ------------------------------------------------------------------------ file readers


def test_both_example_files_read_the_same_directory() -> None:
    toml, csv = (read_directory(path, available_policies()) for path in EXAMPLES)
    assert toml == csv
    assert [r.name for r in toml][:3] == ["Acme Corp", "Globex Corporation", "Initech, Inc."]
    acme, globex, initech = toml[:3]
    assert acme.authorized_contacts == ("jane@acme.example", "it-backup@acme.example")
    assert acme.timezone == "America/Denver" and acme.policy == "managed-pbx"
    assert not subscription_active(globex, date(2026, 11, 22))
    assert initech.support_id == "ALT-4471" and initech.policy == "cloud-services"


def test_csv_reads_lists_dates_and_blanks(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "\ufeffName , Domains,authorized_contacts,subscription_expires,policy\n"
        "\n"
        '"Acme, Corp"," ACME.example ; @Acme-Widgets.Example. ;",'
        "JANE@acme.example;jane@acme.example,2027-06-30,managed-pbx\n"
        "Globex,,,,\n",
        encoding="utf-8",
    )
    acme, globex = read_directory(path, POLICIES)
    assert acme == CustomerRecord(
        "Acme, Corp",
        domains=("acme.example", "acme-widgets.example"),
        authorized_contacts=("jane@acme.example",),
        subscription_expires=date(2027, 6, 30),
        policy="managed-pbx",
    )
    assert globex == CustomerRecord("Globex")


def test_toml_reads_arrays_and_native_dates(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[customer]]\nname = "Acme Corp"\naliases = ["ACME HQ", ""]\n'
        'subscription_expires = 2027-06-30\ntimezone = "America/Denver"\n'
        '[[customer]]\nname = "Globex"\nsubscription_expires = "2026-09-30"\n'
        'domains = "globex.example;globex.test"\n',
        encoding="utf-8",
    )
    acme, globex = read_directory(path, POLICIES)
    assert acme.aliases == ("ACME HQ",) and acme.subscription_expires == date(2027, 6, 30)
    assert globex.subscription_expires == date(2026, 9, 30)
    assert globex.domains == ("globex.example", "globex.test")


def test_an_empty_toml_file_is_an_empty_directory(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("# nobody yet\n", encoding="utf-8")
    assert read_directory(path) == []


HEADER = ",".join(FIELDS) + "\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("name,notes\nAcme,x\n", "c.csv:1: header: unknown column 'notes'", id="col"),
        pytest.param("domains\nacme.example\n", "c.csv:1: header: no 'name' column", id="no-name"),
        pytest.param("name,name\nA,B\n", "c.csv:1: header: column 'name' appears twice", id="dup"),
        pytest.param("name,,policy\nA,,\n", "c.csv:1: header: column 2 has no name", id="blank"),
        pytest.param("", "c.csv: empty; the first row must name the columns", id="empty-file"),
        pytest.param("name,domains\n,acme.example\n", "c.csv:2: name: missing", id="no-name"),
        pytest.param("name\n...\n", "c.csv:2: name: missing", id="name-of-punctuation"),
        pytest.param(
            "name,timezone\nAcme,Mars/Olympus\n",
            "c.csv:2: timezone: unknown time zone 'Mars/Olympus'",
            id="timezone",
        ),
        pytest.param(
            "name,timezone\n\n\nAcme,../etc/passwd\n",
            "c.csv:4: timezone: unknown time zone '../etc/passwd'",
            id="timezone-path-after-blank-lines",
        ),
        pytest.param(
            "name,subscription_expires\nAcme,2026-13-01\n",
            "c.csv:2: subscription_expires: '2026-13-01' is not a date (YYYY-MM-DD)",
            id="impossible-date",
        ),
        pytest.param(
            "name,subscription_expires\nAcme,30/06/2027\n",
            "c.csv:2: subscription_expires: '30/06/2027' is not a date",
            id="date-format",
        ),
        pytest.param(
            "name,subscription_expires\nAcme,20270630\n",
            "c.csv:2: subscription_expires: '20270630' is not a date",
            id="date-basic-format",
        ),
        pytest.param(
            "name,authorized_contacts\nAcme,jane@acme.example;jane.acme.example\n",
            "c.csv:2: authorized_contacts: 'jane.acme.example' is not an e-mail address",
            id="email",
        ),
        pytest.param(
            "name,domains\nAcme,acme\n",
            "c.csv:2: domains: 'acme' is not a domain",
            id="domain",
        ),
        pytest.param(
            "name,domains\nAcme,https://acme.example/\n",
            "c.csv:2: domains: 'https://acme.example/' is not a domain",
            id="domain-url",
        ),
        pytest.param(
            "name,policy\nAcme,gold\n",
            "c.csv:2: policy: no policy named 'gold' (available: cloud-services, managed-pbx",
            id="unknown-policy",
        ),
        pytest.param(
            "name,policy\nAcme,../standard\n",
            "c.csv:2: policy: '../standard' is not a policy name",
            id="policy-path",
        ),
        pytest.param(
            "name,policy\nAcme,standard,extra\n",
            "c.csv:2: 3 values, but the header names 2",
            id="too-many-values",
        ),
        pytest.param(
            "name\nAcme Corp\nACME corp.\n",
            "c.csv:3: name: 'ACME corp.' is the same customer as 'Acme Corp'",
            id="duplicate-customer",
        ),
        pytest.param(
            "name,support_id\nAcme,ALT-1\nGlobex,alt-1\n",
            "c.csv:3: support_id: 'alt-1' is already 'Acme''s",
            id="duplicate-support-id",
        ),
    ],
)
def test_csv_errors_name_file_line_and_field(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "c.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_directory(path, POLICIES)
    assert str(caught.value).startswith(f"{tmp_path}/{expected}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param('[[client]]\nname = "A"\n', "c.toml: client: unknown key", id="top-key"),
        pytest.param("customer = 5\n", "c.toml: customer: must be [[customer]] tables", id="type"),
        pytest.param(
            '[[customer]]\nname = "Acme"\ncolour = "red"\n',
            "c.toml: customer 1 (Acme): colour: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            '[[customer]]\nname = "Acme"\n[[customer]]\ndomains = ["globex.example"]\n',
            "c.toml: customer 2: name: missing",
            id="missing-name",
        ),
        pytest.param(
            '[[customer]]\nname = "Acme"\ntimezone = 7\n',
            "c.toml: customer 1 (Acme): timezone: must be text, not int",
            id="wrong-type",
        ),
        pytest.param(
            '[[customer]]\nname = "Acme"\naliases = [1]\n',
            "c.toml: customer 1 (Acme): aliases: must be text, not int",
            id="wrong-item-type",
        ),
        pytest.param(
            '[[customer]]\nname = "Acme"\ndomains = {a = 1}\n',
            "c.toml: customer 1 (Acme): domains: must be a list of text, not dict",
            id="wrong-list-type",
        ),
        pytest.param(
            '[[customer]]\nname = "Acme"\nsubscription_expires = 2027-06-30T00:00:00\n',
            "c.toml: customer 1 (Acme): subscription_expires: give a date without a time",
            id="datetime-not-date",
        ),
        pytest.param(
            '[[customer]]\nname = "Acme"\ntimezone = "Europe/Atlantis"\n',
            "c.toml: customer 1 (Acme): timezone: unknown time zone 'Europe/Atlantis'",
            id="timezone",
        ),
        pytest.param(
            '[[customer]]\nname = "Acme"\nauthorized_contacts = ["jane at acme"]\n',
            "c.toml: customer 1 (Acme): authorized_contacts: 'jane at acme' is not an e-mail",
            id="email",
        ),
        pytest.param('[[customer]\nname = "A"\n', "c.toml: ", id="syntax"),
    ],
)
def test_toml_errors_name_file_entry_and_field(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_directory(path, POLICIES)
    assert str(caught.value).startswith(f"{tmp_path}/{expected}")


def test_reader_errors_for_the_file_itself(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.json: a customer directory is a \.csv or \.toml"):
        read_directory(tmp_path / "c.json")
    with pytest.raises(ConfigError, match=r"missing\.csv: cannot read: No such file"):
        read_directory(tmp_path / "missing.csv")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("name\nMüller GmbH\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.csv: not UTF-8 text"):
        read_directory(latin1)


def test_without_a_policy_list_any_well_formed_policy_name_passes(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("name,policy\nAcme,gold\n", encoding="utf-8")
    assert read_directory(path)[0].policy == "gold"


# ----------------------------------------------------------------------------- store


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    create_schema(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _upsert(
    factory: sessionmaker[Session], records: list[CustomerRecord], now: datetime = NOW
) -> tuple[int, int]:
    with session_scope(factory) as session:
        return repo.upsert_customers(session, [values_from_record(r) for r in records], now)


def _load(factory: sessionmaker[Session]) -> tuple[CustomerRecord, ...]:
    with session_scope(factory) as session:
        return load_directory(session)


def test_store_round_trips_records(session_factory: sessionmaker[Session]) -> None:
    assert _upsert(session_factory, [INITECH, ACME, GLOBEX]) == (3, 0)
    assert _load(session_factory) == (ACME, GLOBEX, INITECH)  # ordered by normalized name


def test_reimport_updates_by_normalized_name_instead_of_duplicating(
    session_factory: sessionmaker[Session],
) -> None:
    _upsert(session_factory, [ACME, GLOBEX])
    renamed = CustomerRecord("ACME corp.", domains=("acme.example",), policy="standard")
    later = datetime(2026, 12, 1, tzinfo=UTC)
    assert _upsert(session_factory, [renamed, INITECH], later) == (1, 1)
    assert _load(session_factory) == (renamed, GLOBEX, INITECH)
    with session_scope(session_factory) as session:
        acme = repo.list_customers(session)[0]
        assert (acme.normalized_name, acme.created_at, acme.updated_at) == ("acme", NOW, later)


def test_customers_can_swap_support_ids_in_one_import(
    session_factory: sessionmaker[Session],
) -> None:
    first = CustomerRecord("Acme", support_id="S-1")
    second = CustomerRecord("Globex", support_id="S-2")
    _upsert(session_factory, [first, second])
    swapped = [CustomerRecord("Acme", support_id="S-2"), CustomerRecord("Globex", support_id="S-1")]
    assert _upsert(session_factory, swapped) == (0, 2)
    assert [r.support_id for r in _load(session_factory)] == ["S-2", "S-1"]


def test_upsert_refuses_two_records_with_one_key(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="share a normalized name"):
        _upsert(session_factory, [ACME, CustomerRecord("ACME corp.")])


def test_record_from_row_copies_every_field(session_factory: sessionmaker[Session]) -> None:
    _upsert(session_factory, [ACME])
    with session_scope(session_factory) as session:
        assert isinstance(session, Session)
        [row] = repo.list_customers(session)
        assert record_from_row(row) == ACME


def test_support_id_conflicts_ignore_customers_the_import_rewrites() -> None:
    stored = (CustomerRecord("Acme Corp", support_id="S-1"), INITECH)
    incoming = [CustomerRecord("ACME", support_id="S-9"), CustomerRecord("Hooli", support_id="S-1")]
    assert support_id_conflicts(stored, incoming) == []
    clash = [CustomerRecord("Hooli", support_id="alt-4471")]
    assert support_id_conflicts(stored, clash) == [
        "Hooli: support_id: 'alt-4471' already belongs to 'Initech, Inc.' in the store"
    ]


def test_customer_view_has_the_list_columns() -> None:
    view = customer_view(ACME)
    assert list(view) == list(FIELDS)
    assert view["subscription_expires"] == "2027-06-30" and view["domains"] == ["acme.example"]


# ------------------------------------------------------------------------------- CLI


def intake(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intake", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "INTAKE_LOGGING__FORMAT": "json"},
        timeout=120,
        check=False,
    )


def test_cli_imports_lists_and_reimports(db_url: str, tmp_path: Path) -> None:
    toml, csv = EXAMPLES
    first = intake("customers", "import", str(toml), "--database", db_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "imported 4 new, 0 updated"

    again = intake("customers", "import", str(csv), "--database", db_url, cwd=tmp_path)
    assert again.stdout.strip() == "imported 0 new, 4 updated", again.stderr

    listed = intake("customers", "list", "--json", "--database", db_url, cwd=tmp_path)
    rows = json.loads(listed.stdout)
    assert [list(row) for row in rows] == [list(FIELDS)] * 4
    assert rows[0] == customer_view(read_directory(toml)[0])
    assert [row["name"] for row in rows] == [
        "Acme Corp",
        "Globex Corporation",
        "Initech, Inc.",
        "Vandelay Industries",
    ]


def test_cli_dry_run_writes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'intake.db'}"
    dry = intake(
        "customers", "import", str(EXAMPLES[0]), "--dry-run", "--database", db, cwd=tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == "would import 4 new, 0 updated (dry run: nothing written)"
    assert list(tmp_path.iterdir()) == []  # not even an empty database
    listed = intake("customers", "list", "--database", db, cwd=tmp_path)
    assert listed.returncode == 78 and "no intake database at" in listed.stderr


def test_cli_bad_file_is_one_line_and_imports_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'intake.db'}"
    bad = tmp_path / "bad.csv"
    bad.write_text("name,timezone\nAcme Corp,America/Denver\nGlobex,Mars/Olympus\n")
    result = intake("customers", "import", str(bad), "--database", db, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: {bad}:3: timezone: unknown time zone 'Mars/Olympus' (IANA, e.g. America/Denver)"
    ]
    assert not (tmp_path / "intake.db").exists()  # refused before the store was opened


def test_cli_names_an_unknown_policy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[customer]]\nname = "Acme"\npolicy = "platinum"\n')
    db = f"sqlite:///{tmp_path / 'intake.db'}"
    result = intake("customers", "import", str(bad), "--database", db, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "customer 1 (Acme): policy: no policy named 'platinum'" in result.stderr


def test_cli_refuses_a_support_id_another_stored_customer_holds(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'intake.db'}"
    intake("customers", "import", str(EXAMPLES[0]), "--database", db, cwd=tmp_path)
    clash = tmp_path / "clash.csv"
    clash.write_text("name,support_id\nHooli,alt-4471\n")
    result = intake("customers", "import", str(clash), "--database", db, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "'alt-4471' already belongs to 'Initech, Inc.'" in result.stderr
