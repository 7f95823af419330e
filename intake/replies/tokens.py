"""Our outbound Message-IDs carry the ticket number and an HMAC, so replies thread safely.

``TKT-000123.confirmation.<nonce>.<sig>@support.example``: ``sig`` is an HMAC-SHA256 over
number, kind and nonce with a secret only we hold, so a stranger cannot put another
customer's ticket number into References and attach to that ticket. RFC 5322 §3.6.4
lets us choose the id-left freely; dots and hyphens keep it a dot-atom.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

from parsing import address_domain

_SIG_LENGTH = 20  # hex characters: 80 bits, plenty against guessing, short in headers
_TOKEN = re.compile(
    r"^(?P<number>[^.@\s]+)\.(?P<kind>[a-z_-]+)\.(?P<nonce>[^.@\s]+)\.(?P<sig>[0-9a-f]+)@"
)


@dataclass(frozen=True, slots=True)
class Token:
    number: str
    kind: str


def sign(secret: bytes, number: str, kind: str, nonce: str) -> str:
    message = f"{number}.{kind}.{nonce}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:_SIG_LENGTH]


def make_message_id(secret: bytes, number: str, kind: str, nonce: str, domain: str) -> str:
    """A Message-ID (without brackets) that names the ticket and proves we wrote it."""
    return f"{number}.{kind}.{nonce}.{sign(secret, number, kind, nonce)}@{domain}"


def read_token(
    secret: bytes, message_id: str, domains: tuple[str, ...]
) -> Token | Literal[False] | None:
    """The ticket a Message-ID of ours names; None when it is not ours; False when forged.

    "Forged" means it has our shape and one of our domains but the signature is wrong.
    """
    match = _TOKEN.match(message_id)
    # The id-right of a msg-id (RFC 5322 §3.6.4) is read like an address's domain.
    if match is None or address_domain(message_id) not in domains:
        return None
    number, kind, nonce = match["number"], match["kind"], match["nonce"]
    if not hmac.compare_digest(sign(secret, number, kind, nonce), match["sig"]):
        return False
    return Token(number, kind)
