"""Free-text search end to end: mail in over SMTP, found on the board, the API and the CLI.

The daemon indexes each ticket while it opens it (COMMIT 2) and each follow-up while it
merges it; the same ``q`` finds the same tickets on the queue page, in ``/api/tickets``
and in ``intake tickets list --search``, on SQLite and on PostgreSQL. Hostile queries are
words, never syntax: every one answers 200.
"""

from __future__ import annotations

import json
import re
import smtplib
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake.cli import main
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import InboundMessage, Ticket
from tests.conftest import RunningDaemon, make_mail, start_daemon, stop_daemon, wait_for
from tests.intake.web.board_support import BOUND, get
from tests.intake.web.test_board_api import TOKEN, api

Tickets = tuple[RunningDaemon, dict[str, str]]


def mail(daemon: RunningDaemon, subject: str, body: str, in_reply_to: str = "") -> str:
    """Send one mail from Jane and wait until it is processed; its Message-ID."""
    message_id = f"<{uuid.uuid4().hex}@acme.example>"
    headers = {"In-Reply-To": in_reply_to} if in_reply_to else None
    raw = make_mail(subject=subject, body=body, message_id=message_id, headers=headers)
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as client:
        client.sendmail("jane@acme.example", ["support@example.com"], raw)

    def processed() -> bool:
        with session_scope(daemon.app.sessions) as session:
            row = session.execute(
                select(InboundMessage).where(InboundMessage.message_id == message_id.strip("<>"))
            ).scalar_one_or_none()
            return row is not None and row.outcome is not None

    wait_for(processed, BOUND)
    return message_id


def ticket_number(daemon: RunningDaemon, message_id: str) -> str:
    with session_scope(daemon.app.sessions) as session:
        ticket_id = repo.ticket_id_by_message_ids(session, [message_id.strip("<>")])
        assert ticket_id is not None
        return session.get_one(Ticket, ticket_id).number or ""


@pytest.fixture
def tickets(make_settings: Callable[..., Settings], db_url: str) -> Iterator[Tickets]:
    """Two tickets by name; the first has a follow-up that quotes the first mail."""
    daemon = start_daemon(make_settings(db_url, **{"web.api_token": TOKEN}))
    dialtone = mail(
        daemon,
        "Acme Corp – Zürich HQ – No dial tone – P1",
        "Since 08:10 the Café phones are silent.\nBoard Serial Number: MX-0042-7781\n",
    )
    echo = mail(
        daemon, "Acme Corp – 9 Elm St, Austin TX – Echo on calls – P3", "Callers hear a voice.\n"
    )
    mail(
        daemon,
        "Re: No dial tone",
        "The PBX in the basement shows a red alarm.\n\n> Since 08:10 the Café phones\n",
        in_reply_to=dialtone,
    )
    made = {"dialtone": ticket_number(daemon, dialtone), "echo": ticket_number(daemon, echo)}
    with session_scope(daemon.app.sessions) as session:
        outcomes = session.execute(select(InboundMessage.outcome)).scalars().all()
    assert sorted(o or "" for o in outcomes) == ["follow_up", "ticket_created", "ticket_created"]
    yield daemon, made
    stop_daemon(daemon)


def numbers(html: str) -> list[str]:
    return re.findall(r'<tr class="ticket [^"]*" data-number="([^"]+)"', html)


def board(daemon: RunningDaemon, query: str) -> set[str]:
    status, _, html = get(daemon, "/?" + urllib.parse.urlencode({"q": query}))
    assert status == 200
    return set(numbers(html))


def api_search(daemon: RunningDaemon, query: str) -> set[str]:
    status, body = api(daemon, "/api/tickets?" + urllib.parse.urlencode({"q": query}))
    assert status == 200
    return {t["number"] for t in body["tickets"]}


def cli_search(daemon: RunningDaemon, query: str, tmp_path: Path) -> set[str]:
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{daemon.app.settings.database.url}"\n')
    args = ["tickets", "list", "--json", "--config", str(config), "--search", query]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {t["number"] for t in json.loads(result.stdout)}


CASES = [
    ("dial tone", {"dialtone"}),  # subject words
    ("cafe silent", {"dialtone"}),  # the first mail's body, diacritics folded
    ("basement alarm", {"dialtone"}),  # a follow-up's new text
    ('"red alarm"', {"dialtone"}),  # a phrase
    ('"alarm red"', set()),
    ("MX-0042-7781", {"dialtone"}),
    ("zurich echo", set()),  # ANDed: no ticket has both
    ("acme", {"dialtone", "echo"}),
    ("", {"dialtone", "echo"}),  # no search: the whole queue
]


@pytest.mark.parametrize(("query", "names"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_the_board_the_api_and_the_cli_find_the_same_tickets(
    tickets: Tickets, tmp_path: Path, query: str, names: set[str]
) -> None:
    daemon, made = tickets
    wanted = {made[n] for n in names}
    assert board(daemon, query) == wanted
    assert api_search(daemon, query) == wanted
    assert cli_search(daemon, query, tmp_path) == wanted


HOSTILE = ['"', "*", "NEAR(", "a:b", "-", '"unclosed', "dial AND (", "^", "tone*"]


def test_hostile_queries_answer_200_on_every_surface(tickets: Tickets, tmp_path: Path) -> None:
    daemon, made = tickets
    for query in HOSTILE:
        found = board(daemon, query)
        assert found <= set(made.values()), query
        assert api_search(daemon, query) == found, query
        path = "/queue/rows?" + urllib.parse.urlencode({"q": query})
        assert get(daemon, path)[0] == 200, query
    assert board(daemon, "tone*") == {made["dialtone"]}  # "*" is no operator: just "tone"
    assert board(daemon, '"') == set()  # no word: nothing


def test_the_search_box_keeps_the_query_escaped_and_the_pager_carries_it(
    tickets: Tickets,
) -> None:
    daemon, _ = tickets
    status, _, html = get(daemon, "/?" + urllib.parse.urlencode({"q": '"<b>dial</b>"'}))
    assert status == 200
    assert 'name="q"' in html
    assert "&#34;&lt;b&gt;dial&lt;/b&gt;&#34;" in html  # the value is text, never markup
    assert "q=%22%3Cb%3Edial%3C%2Fb%3E%22" in html  # the live rows keep the filter
