"""The operations pages' data as JSON under ``/api/``: quarantine, outbox, mailboxes and
customers, for scripts.

The same view model as the pages (``intake.web.ops``) and the same token rule as the rest
of the API (``intake.web.api.Api``: ``Authorization: Bearer TOKEN``, RFC 6750 §2.1; off
without ``web.api_token``). Read-only: the retries are the pages' CSRF-protected forms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from intake.policy.policy import PolicyBook
from intake.web import ops
from intake.web.api import Api, _json
from store.db import session_scope

Clock = Callable[[], datetime]


class OpsApi(Api):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        policies: PolicyBook,
        clock: Clock,
        token: SecretStr | None,
        mailboxes: Sequence[str],
    ) -> None:
        super().__init__(sessions, policies, clock, token)
        self.mailboxes = tuple(mailboxes)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/quarantine", self.quarantine, methods=["GET"]),
            Route("/api/outbox", self.outbox, methods=["GET"]),
            Route("/api/mailboxes", self.mailbox_states, methods=["GET"]),
            Route("/api/customers", self.customers, methods=["GET"]),
        ]

    def quarantine(self, request: Request) -> JSONResponse:
        """``{"messages": [...]}``: the page's rows (no headers, no body)."""
        if (refused := self._refused(request)) is not None:
            return refused
        with session_scope(self.sessions) as session:
            rows = ops.load_quarantine(session)
        return JSONResponse({"messages": _rows(rows)})

    def outbox(self, request: Request) -> JSONResponse:
        """``?status=dead|suppressed|queued|sending|sent``, else every status in the page's
        order; ``counts`` per status."""
        if (refused := self._refused(request)) is not None:
            return refused
        status = ops.outbox_status(request.query_params.get("status", ""))
        with session_scope(self.sessions) as session:
            page = ops.load_outbox(session, status)
        return JSONResponse({"status": status, "counts": page.counts, "replies": _rows(page.rows)})

    def mailbox_states(self, request: Request) -> JSONResponse:
        if (refused := self._refused(request)) is not None:
            return refused
        with session_scope(self.sessions) as session:
            rows = ops.load_mailboxes(session, self.mailboxes)
        return JSONResponse({"mailboxes": _rows(rows)})

    def customers(self, request: Request) -> JSONResponse:
        """``?q=TEXT``: the page's filter."""
        if (refused := self._refused(request)) is not None:
            return refused
        wanted = request.query_params.get("q", "").strip()[:256]
        with session_scope(self.sessions) as session:
            rows = ops.load_customers(session, wanted)
        return JSONResponse({"customers": _rows(rows)})


def _rows(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [_json(asdict(row)) for row in rows]
