"""Who we are and who our staff are: the addresses the pipeline never answers as customers.

Our own addresses and the loop marker keep us from answering ourselves (RFC 3834 §2,
X-Loop); the staff addresses and domains tell a staff reply on a thread from a customer
follow-up, and a customer copying staff directly from one writing to the support address;
the ticket tag reads our ticket numbers in subjects.
"""

from __future__ import annotations

from dataclasses import dataclass

from parsing import DEFAULT_TICKET_TAG, TicketTag, address_domain, canonical_address


@dataclass(frozen=True, slots=True)
class Identity:
    """Who we are (loops, RFC 3834 §2, X-Loop), who our staff are (CC reminders), the tag
    our ticket numbers carry in subjects (``intake.ticket_number_format``), and which of
    our MTAs vouch for senders (``intake.trusted_authserv_ids``)."""

    addresses: tuple[str, ...]
    loop_marker: str
    staff_addresses: tuple[str, ...] = ()
    staff_domains: tuple[str, ...] = ()
    ticket_tag: TicketTag = DEFAULT_TICKET_TAG
    # Our MTAs' authserv-ids: whose Authentication-Results we believe (parsing.auth).
    trusted_authserv_ids: tuple[str, ...] = ()

    def is_staff(self, address: str) -> bool:
        """``addresses`` and ``staff_*`` hold canonical spellings (``make_identity``)."""
        canonical = canonical_address(address)
        if canonical is None or canonical in self.addresses:
            return False  # the support address itself is where customers should write
        return canonical in self.staff_addresses or address_domain(canonical) in self.staff_domains
