"""E-mail addresses: the spelling we keep, the spelling we compare, and their domain.

Two spellings, one rule each, used by every package:

* ``normalise_address`` keeps an addr-spec as the sender wrote it, with the domain in
  lower case: the local part may be case-sensitive at its own host (RFC 5321 §2.4), so
  what we store and show (the requester, a bounced recipient) keeps it.
* ``canonical_address`` is the key addresses are *compared* under (staff, authorized
  contacts, participants, our own addresses, the reply budget): display name, angle
  brackets, surrounding space and the root label's trailing dot (RFC 1034 §3.1) dropped,
  local part and domain lower-cased, since every mailbox we deal with treats
  ``Jane@Acme.Example`` and ``jane@acme.example`` as one person.

``address_domain`` is the canonical domain of an address, ``canonical_domain`` the same
rule for a domain on its own (configured staff and customer domains).
"""

from __future__ import annotations

import functools
from email.utils import parseaddr

from parsing.text import clean_header_text


def normalise_address(address: str) -> str | None:
    """``<Local@Example.COM>`` -> ``Local@example.com``; None unless it has both halves."""
    text = clean_header_text(address).strip("<>").strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or " " in local + domain:
        return None
    return f"{local}@{domain.lower()}"


# Pure, and asked ~24 times per message for the same few addresses (sender, recipients, our
# own, staff, contacts): stdlib ``parseaddr`` each time was ~3 ms of a ticket (issue 11).
@functools.lru_cache(maxsize=8192)
def canonical_address(address: str | None) -> str | None:
    """``Jane <Jane@Acme.Example.>`` -> ``jane@acme.example``; None unless it has both halves."""
    if not address:
        return None
    local, at, domain = parseaddr(address)[1].rpartition("@")
    domain = canonical_domain(domain)
    if not (local and at and domain):
        return None
    return f"{local.lower()}@{domain}"


def address_key(text: str) -> str:
    """``canonical_address``, or for text that is no address the text itself, trimmed and
    lower-cased: the one key per-recipient state is stored under, whatever it is given."""
    return canonical_address(text) or text.strip().strip("<>").strip().lower()


def address_domain(address: str | None) -> str | None:
    """The canonical domain of ``jane@acme.example`` or ``Jane <jane@Acme.Example>``."""
    canonical = canonical_address(address)
    return canonical.rpartition("@")[2] if canonical else None


def canonical_domain(domain: str) -> str:
    """``Acme.Example.`` -> ``acme.example`` (DNS names are case-insensitive, RFC 4343)."""
    return domain.strip().rstrip(".").lower()
