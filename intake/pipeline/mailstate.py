"""What the store keeps per IMAP mailbox, behind the IMAP edge's ``MailboxStore`` port.

The edge asks in its own words (a good SELECT, a failure, which UIDs are stored, the
lease); this module answers each in one short transaction over the store, so the IMAP
edge never imports the store nor holds a session while it talks to the server.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.db import session_scope

IMAP_ORIGIN = "imap"  # InboundMessage.origin of mail the pollers stored


@dataclass(frozen=True, slots=True)
class StoredMailboxState:
    """``intake.edges.imap.MailboxStore`` over the store (checked by mypy in app.py)."""

    sessions: sessionmaker[Session]

    def record_ok(self, mailbox: str, now: datetime, uidvalidity: int) -> int | None:
        with session_scope(self.sessions) as session:
            return repo.record_mailbox_ok(session, mailbox, now, uidvalidity)

    def record_failure(self, mailbox: str, error: str, now: datetime) -> datetime | None:
        with session_scope(self.sessions) as session:
            return repo.record_mailbox_failure(session, mailbox, error, now)

    def known_refs(self, refs: Collection[str]) -> set[str]:
        with session_scope(self.sessions) as session:
            return repo.stored_origin_refs(session, IMAP_ORIGIN, list(refs))

    def answers(self) -> bool:
        try:
            with session_scope(self.sessions) as session:
                repo.ping(session)
        except Exception:
            return False
        return True

    def acquire_lease(self, mailbox: str, owner: str, now: datetime, until: datetime) -> bool:
        with session_scope(self.sessions) as session:
            return repo.acquire_mailbox_lease(session, mailbox, owner, now, until)

    def lease_expiry(self, mailbox: str) -> datetime | None:
        with session_scope(self.sessions) as session:
            return repo.mailbox_lease_expiry(session, mailbox)

    def release_lease(self, mailbox: str, owner: str) -> None:
        with session_scope(self.sessions) as session:
            repo.release_mailbox_lease(session, mailbox, owner)
