"""The board's JSON API under ``/api/``: the queue and a ticket, for scripts, with a token.

The same data as the pages, from the same view model (``intake.web.board``,
``intake.web.ticket``), as JSON. Every request needs ``Authorization: Bearer TOKEN``
(RFC 6750 §2.1) with ``web.api_token``; without the setting the API is off and every
request is 401, so turning the board on never opens an unauthenticated data feed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from intake.policy.policy import PolicyBook
from intake.web import ticket as ticket_page
from intake.web.board import QueueFilter, QueueRow, load_queue, queue_row
from store import repository as repo
from store.db import session_scope

Clock = Callable[[], datetime]


class Api:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        policies: PolicyBook,
        clock: Clock,
        token: SecretStr | None,
    ) -> None:
        self.sessions, self.policies, self.clock = sessions, policies, clock
        self.token = token.get_secret_value() if token else None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/tickets", self.tickets, methods=["GET"]),
            Route("/api/tickets/{number}", self.ticket, methods=["GET"]),
        ]

    def _refused(self, request: Request) -> JSONResponse | None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if self.token and scheme.lower() == "bearer" and hmac.compare_digest(given, self.token):
            return None
        error = "the API is off: set web.api_token" if not self.token else "a valid token needed"
        return JSONResponse(
            {"error": error}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="api"'}
        )

    def tickets(self, request: Request) -> JSONResponse:
        """``/api/tickets``: the queue with the page's filters (query string) and paging."""
        if (refused := self._refused(request)) is not None:
            return refused
        wanted = QueueFilter.from_query(request.query_params)
        with session_scope(self.sessions) as session:
            page = load_queue(session, self.policies, wanted, self.clock())
        return JSONResponse(
            {
                "total": page.total,
                "page": page.page,
                "pages": page.pages,
                "tickets": [row_json(row) for row in page.rows],
            }
        )

    def ticket(self, request: Request) -> JSONResponse:
        if (refused := self._refused(request)) is not None:
            return refused
        number = request.path_params["number"]
        with session_scope(self.sessions) as session:
            found = repo.ticket_by_number(session, number)
            if found is None:
                return JSONResponse({"error": f"no ticket {number}"}, status_code=404)
            body = {
                **row_json(queue_row(found, self.policies, self.clock())),
                "fields": found.fields,
                "findings": found.findings,
                "timezone": found.timezone,
                "deadlines": [_json(asdict(d)) for d in ticket_page.deadlines(found)],
                "thread": [_json(asdict(e)) for e in ticket_page.thread(session, found)],
                "charges": [_json(asdict(c)) for c in ticket_page.ledger(found.charges)],
                "events": [
                    {"at": _iso(e.at), "actor": e.actor, "action": e.action, "detail": e.detail}
                    for e in repo.ticket_events(session, found.id)
                ],
            }
        return JSONResponse(body)


def row_json(row: QueueRow) -> dict[str, Any]:
    return _json(asdict(row))


def _json(data: dict[str, Any]) -> dict[str, Any]:
    """Datetimes as ISO 8601 UTC (``Z``), tuples as lists: what ``json`` can write."""
    return {key: _value(value) for key, value in data.items()}


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    return value


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
