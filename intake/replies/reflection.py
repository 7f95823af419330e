"""The confirmation reflection caps: how many distinct addresses one source makes us write to.

A confirmation echoes the sender's subject to the reply address, and ``Reply-To`` is
whatever the sender wrote: without a cap, one sender makes us mail its text to any number
of victims (issue 13; the per-recipient budget limits how often we write to *one*
address, not to how many). So per rolling hour:

- per sending IP (the SMTP client, ``intake.reflection_per_ip``, default 30) — IMAP and
  pipe mail has no peer IP, and an MTA in front is every message's peer
  (``intake.reflection_exempt_peers``, loopback by default), so only the domain cap
  applies to those;
- per From domain (``intake.reflection_per_domain``, default 30), the domain the inbound
  flood limits count by, sparing the same free-mail and staff domains.

30 is above the number of different people one site (or one sending host) normally has
open tickets in one hour, and bounds what a reflection attack gets to 30 victims an hour
per IP and per domain. An address already confirmed for that source in the window is no
new one. Past a cap the ticket is still made and charged; only its confirmation is
suppressed, recorded the way the reply budget records it (``replies/outbox.py``).

Exact across instances: the sources are locked (``repository.lock_reflection``, the
reply budget's advisory-lock approach) before they are counted, in one query, and the
confirmation is queued in the same transaction.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from intake.settings import IntakeSettings
from store import repository as repo

WINDOW = timedelta(hours=1)
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ReflectionSettings:
    per_ip: int = 30
    per_domain: int = 30
    exempt_peers: tuple[_Network, ...] = ()

    @classmethod
    def from_intake(cls, settings: IntakeSettings) -> ReflectionSettings:
        return cls(
            per_ip=settings.reflection_per_ip,
            per_domain=settings.reflection_per_domain,
            exempt_peers=tuple(
                ipaddress.ip_network(n, strict=False) for n in settings.reflection_exempt_peers
            ),
        )

    def counts_ip(self, ip: str | None) -> str | None:
        """``ip`` when the cap applies to it; None for no IP, junk or an exempt peer."""
        try:
            address = ipaddress.ip_address(ip or "")
        except ValueError:
            return None
        if any(address in network for network in self.exempt_peers):
            return None
        return str(address)


@dataclass(frozen=True, slots=True)
class Source:
    """Where the mail being confirmed came from, as the caps count it."""

    ip: str | None  # None: no peer IP (IMAP, pipe) or exempt
    domain: str | None  # None: no From domain, or one the caps spare


@dataclass(frozen=True, slots=True)
class ReflectionDecision:
    allowed: tuple[str, ...]
    suppressed: dict[str, str] = field(default_factory=dict)  # address -> reason
    scope: str | None = None  # "ip" or "domain": the cap that suppressed someone


def check_reflection(
    session: Session,
    recipients: Sequence[str],
    source: Source,
    now: datetime,
    settings: ReflectionSettings,
) -> ReflectionDecision:
    """Split ``recipients`` by the caps; locks the source's counts until commit."""
    limits = {"ip": (source.ip, settings.per_ip), "domain": (source.domain, settings.per_domain)}
    keys = [f"{name}:{value}" for name, (value, _) in limits.items() if value]
    if not recipients or not keys:
        return ReflectionDecision(tuple(recipients))
    repo.lock_reflection(session, keys)
    facts = repo.reflection_facts(
        session, recipients, now - WINDOW, ip=source.ip, domain=source.domain
    )
    counted = {name: fact.distinct for name, fact in facts.items()}
    allowed: list[str] = []
    suppressed: dict[str, str] = {}
    scope: str | None = None
    for address in recipients:
        key = repo.recipient_key(address)
        over = [
            name
            for name, fact in facts.items()
            if key not in fact.known and counted[name] >= limits[name][1]
        ]
        if not over:
            allowed.append(address)
            for name, fact in facts.items():
                counted[name] += key not in fact.known
            continue
        name = over[0]
        scope = scope or name
        suppressed[address] = (
            f"{counted[name]} distinct addresses confirmed for {name}:{limits[name][0]} "
            f"in the last hour (reflection limit {limits[name][1]})"
        )
    return ReflectionDecision(tuple(allowed), suppressed, scope)
