"""Full-text search over tickets: the text a ticket is found by, and the query that finds it.

A ticket's document (``ticket_search.document``) is its subject, the text of the mail that
opened it and the new text of every follow-up the customer sent: decoded text, never raw
MIME, never our replies or the quoted history a follow-up repeats. The pipeline writes it
in the transaction that writes the ticket or the follow-up (COMMIT 2), so a ticket is
findable exactly when it is on the board. Each database indexes the column itself
(migration 0009): SQLite an FTS5 external-content table (``ticket_search_fts``, tokenizer
``unicode61 remove_diacritics 2``) kept by triggers on ``ticket_search``; PostgreSQL a GIN
index over ``to_tsvector('simple', document)``.

Both databases see the same words: :func:`words` folds case and diacritics (NFKD with the
combining marks dropped, so "Zürich" is "zurich") and splits on everything that is not a
letter or a digit, for the document and for the query alike. PostgreSQL's ``simple``
configuration then only lower-cases: no stemming and no stop words, which would drop
words like "no" or "down" and mangle host names, serial numbers and other languages, and
which SQLite's unicode61 does not do either; ``unaccent`` would need an extension, and
it is not IMMUTABLE, so no index expression may use it.

Query syntax: words are ANDed; ``"a quoted phrase"`` must appear as written, in order;
anything else in a term that is not a word (``a:b``, ``db-01``) makes it a phrase of its
words, as they stand in the document. User input never reaches FTS5 or tsquery syntax:
each term becomes a quoted FTS5 string of plain words, or ``phraseto_tsquery`` of them,
so ``"``, ``*``, ``NEAR(``, ``:`` or ``-`` can never be an operator or an error. A
query without any word finds nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import reduce
from itertools import chain
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    false,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.orm import Session

from store.models import TicketSearch

if TYPE_CHECKING:
    from alembic.runtime.environment import NameFilterParentNames, NameFilterType

# unicode61's token characters are letters, digits and private-use code points; "_" and
# every other punctuation mark separate tokens (sqlite.org/fts5.html §4.3.1).
WORD = re.compile(r"[^\W_]+")
# The same on ASCII text, where re.ASCII's \W is the same class and ~25 % quicker to scan.
_ASCII_WORD = re.compile(r"[^\W_]+", re.ASCII)
# A quoted phrase (an unterminated quote runs to the end), else a run without blanks.
TERM = re.compile(r'"([^"]*)"?|([^\s"]+)')
MAX_TERMS = 16
# Enough for a long thread; PostgreSQL refuses a tsvector over 1 MB, and keeps word
# positions only up to 16,383, which phrases need.
MAX_DOCUMENT = 100_000
FTS_TABLE = "ticket_search_fts"
PG_INDEX = "ix_ticket_search_document_tsv"
# The objects migration 0009 makes that the models cannot declare (FTS5's virtual table
# and its shadow tables ``ticket_search_fts_*``, the expression index).
_UNMODELLED = re.compile(rf"^({FTS_TABLE}(_\w+)?|{PG_INDEX})$")
# ``index_ticket``'s INSERT, built once with bound values (the FTS5 triggers of migration
# 0009 fire for it as for an ORM insert).
_SEARCH_INSERT = insert(TicketSearch).values(
    ticket_id=bindparam("ticket_id"), document=bindparam("document")
)


def words(text: str) -> list[str]:
    """The words of ``text``, case and diacritics folded, as the index keeps them."""
    folded = text.casefold()
    if folded.isascii():
        # NFKD leaves ASCII as it is and no ASCII character is combining: skipping the
        # per-character pass over the ~5 KB body was ~5 % of a ticket's CPU (issue 11).
        return _ASCII_WORD.findall(folded)
    decomposed = unicodedata.normalize("NFKD", folded)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return WORD.findall(plain)


def document(texts: Iterable[str]) -> str:
    """The words of ``texts`` in order, one space apart, cut to ``MAX_DOCUMENT``."""
    return _capped(" ".join(chain.from_iterable(map(words, texts))))


def _capped(value: str) -> str:
    if len(value) <= MAX_DOCUMENT:
        return value
    return value[: MAX_DOCUMENT + 1].rsplit(" ", 1)[0]  # never half a word


def phrases(query: str) -> list[str]:
    """Each term of ``query`` as the phrase of its words; a term without one is dropped."""
    found = []
    for quoted, bare in TERM.findall(query):
        term = " ".join(words(quoted or bare))
        if term:
            found.append(term)
    return found[:MAX_TERMS]


def ticket_document(subject: str, body: str) -> str:
    """The document of a new ticket: its subject and the text of its first mail. Pure, so
    the reading worker makes it outside COMMIT 2's lock (issue 11)."""
    return document([subject, body])


def index_ticket(session: Session, ticket_id: int, ticket_text: str) -> None:
    """Write a new ticket's document (``ticket_document``)."""
    # Core on the session's connection (same transaction): no ORM flush for a row nothing
    # reads back in COMMIT 2 (issue 11).
    values = {"ticket_id": ticket_id, "document": ticket_text}
    session.connection().execute(_SEARCH_INSERT, values)


def add_follow_up(session: Session, ticket_id: int, new_text: str) -> None:
    """Append what a follow-up said; the caller holds the ticket's lock (``lock_ticket``),
    so two follow-ups on two instances cannot both append to the same old document."""
    addition = document([new_text])
    if not addition:
        return
    row = session.get(TicketSearch, ticket_id)
    if row is None:  # not indexed yet (written by hand or a tool): start it now
        session.add(TicketSearch(ticket_id=ticket_id, document=addition))
    elif len(row.document) < MAX_DOCUMENT:
        row.document = _capped(f"{row.document} {addition}")


def matching_ids(session: Session, query: str) -> Any:
    """A SELECT of the ids of the tickets whose document has every term of ``query``."""
    wanted = phrases(query)
    if not wanted:
        return select(TicketSearch.ticket_id).where(false())
    if session.get_bind().dialect.name == "postgresql":
        return _postgresql_match(wanted)
    # Each phrase a double-quoted FTS5 string (fts5.html §3.1): words only, so it holds no
    # quote, and a string is never an operator (NEAR, AND, *, column filters). Adjacent
    # strings are ANDed.
    expression = " ".join(f'"{p}"' for p in wanted)
    statement = text(
        "SELECT rowid FROM ticket_search_fts WHERE ticket_search_fts MATCH :expression"
    )
    return statement.bindparams(expression=expression).columns(rowid=Integer)


def _postgresql_match(wanted: list[str]) -> Any:
    # The index expression exactly (to_tsvector of the 'simple' regconfig constant), so
    # the planner can use the GIN index.
    config: ColumnElement[str] = literal_column("'simple'")
    vector = func.to_tsvector(config, TicketSearch.document)
    queries: list[ColumnElement[Any]] = [func.phraseto_tsquery(config, p) for p in wanted]
    both = reduce(lambda a, b: a.op("&&")(b), queries)
    return select(TicketSearch.ticket_id).where(vector.op("@@")(both))


def include_name(name: str | None, type_: NameFilterType, _parents: NameFilterParentNames) -> bool:
    """Alembic's ``include_name``: leave the index objects the models cannot declare out
    of autogenerate's comparison (it would propose dropping them)."""
    return not (name and type_ in {"table", "index"} and _UNMODELLED.match(name))
