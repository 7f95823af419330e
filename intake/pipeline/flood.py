"""Inbound flood limits: how many new tickets one sender may open in a rolling hour.

A mail loop, a misconfigured monitor or an attacker can send a thousand mails in a
minute; each would open a ticket, carry its charges and earn a confirmation. Past the
limit a message is still stored and kept — attached to the sender's latest ticket as a
``flood`` message, never answered (RFC 3834 §2 asks an automatic responder not to answer
without limit), charging nothing — and staff are told once an hour per ticket it is
kept on.

Two counts, both of tickets opened in the last hour:
- per canonical sender address (``intake.flood_per_address``, default 20);
- per sender domain (``intake.flood_per_domain``, default 100), which catches one site's
  many addresses (a broken monitoring host, a compromised server). Free-mail domains
  (``intake.flood_shared_domains``) and our staff domains have no domain limit: their
  users are unrelated people, and one of them flooding must not silence the others.

The counts are exact across instances: the sender's keys are locked for the rest of the
transaction (``repository.lock_senders``, the reply budget's advisory-lock approach)
before they are read, and the ticket is opened in that same transaction (COMMIT 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from intake.settings import IntakeSettings
from parsing import address_domain, canonical_address
from store import repository as repo

WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class FloodSettings:
    per_address: int = 20
    per_domain: int = 100
    unlimited_domains: frozenset[str] = frozenset()  # free mail and our staff domains
    notify: tuple[str, ...] = ()  # staff told of a flood

    @classmethod
    def from_intake(cls, settings: IntakeSettings) -> FloodSettings:
        staff_domains = {d.lower() for d in settings.staff_domains}
        return cls(
            per_address=settings.flood_per_address,
            per_domain=settings.flood_per_domain,
            unlimited_domains=frozenset({*settings.flood_shared_domains, *staff_domains}),
            notify=settings.flood_notify or settings.staff_addresses,
        )


@dataclass(frozen=True, slots=True)
class Sender:
    """One message's sender as the limits count it."""

    address: str  # canonical addr-spec
    domain: str

    @classmethod
    def of(cls, from_address: str | None) -> Sender | None:
        address = canonical_address(from_address)
        domain = address_domain(address)
        return cls(address, domain) if address and domain else None


@dataclass(frozen=True, slots=True)
class FloodVerdict:
    """A sender over a limit: which one, the ticket its mail is kept on, and why."""

    key: str  # address:… or domain:…, what the staff notice and the log name
    reason: str
    ticket_id: int | None  # the sender's latest ticket (open first), where mail is kept


def check_flood(
    session: Session, sender: Sender, now: datetime, settings: FloodSettings
) -> FloodVerdict | None:
    """None when ``sender`` may open one more ticket now; locks its counts until commit."""
    limits = [(f"address:{sender.address}", settings.per_address)]
    domain = sender.domain if sender.domain not in settings.unlimited_domains else None
    if domain is not None:
        limits.append((f"domain:{domain}", settings.per_domain))
    repo.lock_senders(session, [key for key, _ in limits])
    counts = repo.count_new_tickets(session, now - WINDOW, sender.address, domain)
    for (key, limit), count in zip(limits, counts, strict=True):
        if count >= limit:
            return FloodVerdict(
                key,
                f"{count} new tickets from {key} in the last hour (limit {limit})",
                _keeper(session, sender),
            )
    return None


def _keeper(session: Session, sender: Sender) -> int | None:
    """The sender's own latest ticket, else (a domain flood) its domain's latest one."""
    for where in ({"address": sender.address}, {"domain": sender.domain}):
        ticket_id = repo.latest_ticket_of(session, **where)
        if ticket_id is not None:
            return ticket_id
    return None


def window_start(now: datetime) -> datetime:
    """The clock hour ``now`` falls in: one staff notice per sender and window."""
    return now.replace(minute=0, second=0, microsecond=0)
