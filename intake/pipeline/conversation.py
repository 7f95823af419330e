"""Threading: which ticket, if any, an incoming message continues.

Evidence, strongest first:
1. one of *our* Message-IDs in In-Reply-To/References (RFC 5322 §3.6.4) whose HMAC
   token verifies — it can only have come from a mail we sent;
2. a Message-ID we already know for a ticket (the customer's own earlier mails, our
   replies) in those headers;
3. the ticket number in the subject (``[TKT-000123]``).
Only the token is proof on its own. A known Message-ID is no secret (it travels in every
copy and mailing-list archive) and a number is printed in every subject, so 2 and 3 are
honoured only when the sender takes part in that ticket: its requester, someone copied
on it, an authorized contact of its customer, or staff. A stranger citing either gets a
new ticket *linked* to the one cited (``Threading.linked``), which supplies nothing to it.
Anything else starts a new ticket. Every rejected piece of evidence is reported, so
the pipeline can log why (a forged token, a number that does not exist, …).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from intake.pipeline.customers import CustomerRecord, is_authorized
from intake.pipeline.identity import Identity
from intake.replies.tokens import read_token
from parsing import ParsedMessage, address_key, canonical_address
from store import repository as repo
from store.models import Ticket


@dataclass(frozen=True, slots=True)
class ThreadMatch:
    ticket_id: int
    evidence: str  # token | references | subject


@dataclass(frozen=True, slots=True)
class Threading:
    match: ThreadMatch | None
    rejected: tuple[str, ...] = field(default=())  # why other evidence was not used
    linked: int | None = None  # a ticket cited by a sender who is not on it


@dataclass(frozen=True, slots=True)
class ThreadContext:
    secret: bytes
    domains: tuple[str, ...]  # our Message-ID domains
    identity: Identity  # its ticket_tag reads the number in a subject


def find_thread(
    session: Session,
    message: ParsedMessage,
    ctx: ThreadContext,
    directory: Sequence[CustomerRecord],
    returned_ids: Sequence[str] = (),
) -> Threading:
    """``returned_ids``: ids from the copy of our mail inside a bounce (RFC 3464 §2)."""
    rejected: list[str] = []
    ids = list(dict.fromkeys([*_referenced_ids(message), *returned_ids]))
    match = _by_token(session, ids, ctx, rejected)
    if match:
        return Threading(match, tuple(rejected))
    cited: list[int] = []  # tickets named by a sender who is not on them
    finders: tuple[Callable[[], tuple[Ticket, str] | None], ...] = (
        lambda: _by_known_id(session, ids, rejected),
        lambda: _by_subject(session, message, ctx, rejected),
    )
    for finder in finders:  # in order, each only when the one before found nothing usable
        found = finder()
        if found is None:
            continue
        ticket, evidence = found
        if is_participant(ticket, message.from_address, ctx.identity, directory):
            return Threading(ThreadMatch(ticket.id, evidence), tuple(rejected))
        cites = "References cite" if evidence == "references" else "subject names"
        rejected.append(f"{cites} {ticket.number}, but the sender is not on it")
        cited.append(ticket.id)
    return Threading(None, tuple(rejected), cited[0] if cited else None)


def _referenced_ids(message: ParsedMessage) -> list[str]:
    # Newest first: In-Reply-To names the parent; References ends with it (RFC 5322 §3.6.4).
    ordered = [*message.in_reply_to, *reversed(message.references)]
    return list(dict.fromkeys(ordered))


def _by_token(
    session: Session, ids: list[str], ctx: ThreadContext, rejected: list[str]
) -> ThreadMatch | None:
    for message_id in ids:
        token = read_token(ctx.secret, message_id, ctx.domains)
        if token is False:
            rejected.append(f"forged token in {message_id}")
            continue
        if token is None:
            continue
        ticket = repo.ticket_by_number(session, token.number)
        if ticket is not None:
            return ThreadMatch(ticket.id, "token")
        rejected.append(f"token for unknown ticket {token.number}")
    return None


def _by_known_id(
    session: Session, ids: list[str], rejected: list[str]
) -> tuple[Ticket, str] | None:
    if not ids:
        return None
    found = repo.ticket_id_by_message_ids(session, ids)
    if found is not None:
        return session.get_one(Ticket, found), "references"
    rejected.append("References name no message we know")
    return None


def _by_subject(
    session: Session, message: ParsedMessage, ctx: ThreadContext, rejected: list[str]
) -> tuple[Ticket, str] | None:
    number = ctx.identity.ticket_tag.number_in(message.subject)
    if number is None:
        return None
    ticket = repo.ticket_by_number(session, number)
    if ticket is None:
        rejected.append(f"subject names {number}, which does not exist")
        return None
    return ticket, "subject"


def is_participant(
    ticket: Ticket,
    address: str | None,
    identity: Identity,
    directory: Sequence[CustomerRecord],
) -> bool:
    canonical = canonical_address(address)
    if canonical is None:
        return False
    if canonical in (address_key(p) for p in ticket.participants) or identity.is_staff(canonical):
        return True
    customer = next((c for c in directory if c.name == ticket.customer), None)
    return bool(customer and customer.authorized_contacts and is_authorized(customer, canonical))


def participants_of(message: ParsedMessage, identity: Identity) -> list[str]:
    """Requester and everyone copied, minus our own addresses."""
    people = [message.from_address, *message.reply_to, *message.to, *message.cc]
    ours = set(identity.addresses)
    canonical = (canonical_address(p) for p in people)
    return list(dict.fromkeys(p for p in canonical if p and p not in ours))
