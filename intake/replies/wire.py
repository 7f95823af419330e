"""Our replies on the wire: header fields and a multipart/alternative body as bytes.

This module owns serialising a reply we built (``intake.replies.render`` decides what it
says) into an RFC 5322 message with CRLF line endings, from pre-folded strings rather
than ``email.policy`` header objects: parsing our own header values back into the header
registry's objects and refolding them was ~14 % of a ticket's CPU (issue 11).

The fast path covers what our headers are almost always made of: printable ASCII. It
folds at spaces so a line stays within 78 characters where it can (RFC 5322 §2.2.3,
§2.1.1). A Subject with non-ASCII words (a customer's en dash, an accent) gets RFC 2047
encoded words for those words only (``_encode_unstructured``). Everything else — a
non-ASCII display name, a literal ``=?`` that a reader would decode as one, a word too
long to fold, unusual spacing — goes through the stdlib's header registry as before.
Callers pass values already stripped of control characters (invariant 8); a value that
still holds one is never written by the fast path either.
"""

from __future__ import annotations

import binascii
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import formataddr
from typing import Final, TypeAlias

CRLF: Final = "\r\n"
MAX_LINE: Final = 78  # RFC 5322 §2.1.1: SHOULD be no more than 78 characters
# RFC 5322 §2.1.1: MUST be no more than 998; a word this long cannot be folded by us.
_MAX_WORD: Final = 900
_ENCODED_WORD_START: Final = "=?"  # RFC 2047 §2: a reader would decode what follows

Header: TypeAlias = tuple[str, str | Address]
# The fields we write whose value is RFC 5322 unstructured text (§3.6.5).
_UNSTRUCTURED: Final = frozenset({"subject", "comments"})
_MAX_ENCODED_WORD: Final = 75  # RFC 2047 §2
_Q_START: Final = "=?utf-8?q?"
_B_START: Final = "=?utf-8?b?"
# RFC 2047 §5 (3): the characters an encoded word may carry as themselves in any field.
_Q_LITERAL: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/"
)


def fold_header(name: str, value: str | Address) -> str:
    """One header field, folded and terminated with CRLF, ready to be written as is."""
    text = _plain_address(value) if isinstance(value, Address) else value
    if text is not None and _fast_path_fits(text):
        return _fold_ascii(name, text)
    if isinstance(value, str) and name.lower() in _UNSTRUCTURED:
        encoded = _encode_unstructured(name, value)
        if encoded is not None:
            return _fold_ascii(name, encoded)
    # RFC 2047 encoded words (or a quoted phrase) from the stdlib's header registry.
    return str(SMTP.header_factory(name, value).fold(policy=SMTP))


def _encode_unstructured(name: str, text: str) -> str | None:
    """``text`` with each run of words holding non-ASCII as RFC 2047 encoded words, the
    ASCII words left as they are; None for what the registry should do (a literal
    ``=?``, a control or unprintable character, spacing other than single spaces).

    RFC 2047 §5 (1): encoded words may stand for text in an unstructured field such as
    Subject. A run keeps its inner spaces inside the encoded words, because a reader drops
    the white space between two encoded words (§6.2) but keeps it next to plain text.
    The registry did this for every reply to a subject with an en dash (~4 % of a ticket,
    issue 11).
    """
    if not text.isprintable() or _ENCODED_WORD_START in text:
        return None
    tokens = text.split(" ")
    if not all(0 < len(token) <= _MAX_WORD for token in tokens):
        return None
    # The first encoded word shares its line with the field name (RFC 5322 §2.1.1).
    limit = min(_MAX_ENCODED_WORD, MAX_LINE - len(name) - 2)
    atoms: list[str] = []
    run: list[str] = []
    for token in tokens:
        if token.isascii():
            if run:
                atoms += _encoded_words(" ".join(run), limit)
                run = []
            atoms.append(token)
        else:
            run.append(token)
    if run:
        atoms += _encoded_words(" ".join(run), limit)
    return " ".join(atoms)


def _encoded_words(text: str, limit: int) -> list[str]:
    """``text`` as UTF-8 encoded words of at most ``limit`` characters, cut between
    characters (RFC 2047 §5: never inside one), "Q" or "B" whichever is shorter (§4)."""
    q = _pack(text, limit - len(_Q_START) - 2, _q_length, _q_encode)
    b = _pack(text, limit - len(_B_START) - 2, _b_length, _b_encode)
    start, chunks = (_Q_START, q) if sum(map(len, q)) <= sum(map(len, b)) else (_B_START, b)
    return [f"{start}{chunk}?=" for chunk in chunks]


def _pack(
    text: str, room: int, length: Callable[[bytes], int], encode: Callable[[bytes], str]
) -> list[str]:
    chunks: list[str] = []
    current = b""
    for char in text:
        data = char.encode("utf-8")
        if current and length(current + data) > room:
            chunks.append(encode(current))
            current = b""
        current += data
    if current:
        chunks.append(encode(current))
    return chunks


def _q_length(data: bytes) -> int:
    return sum(1 if byte in _Q_LITERAL else 3 for byte in data)


def _q_encode(data: bytes) -> str:
    """RFC 2047 §4.2 "Q", with only the characters §5 (3) allows anywhere left literal."""
    return "".join(
        "_" if byte == 0x20 else chr(byte) if byte in _Q_LITERAL else f"={byte:02X}"
        for byte in data
    )


def _b_length(data: bytes) -> int:
    return 4 * -(-len(data) // 3)


def _b_encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _plain_address(address: Address) -> str | None:
    """``Name <addr>`` (the name quoted if it needs it, RFC 5322 §3.4), or None when the
    name or address is not printable ASCII and needs the registry's encoding."""
    name, spec = address.display_name, address.addr_spec
    if not (name.isascii() and spec.isascii()):
        return None
    return formataddr((name, spec))


def _fast_path_fits(text: str) -> bool:
    return (
        text.isascii()
        and text.isprintable()
        and _ENCODED_WORD_START not in text
        and all(0 < len(word) <= _MAX_WORD for word in text.split(" "))  # no empty fold
    )


def _fold_ascii(name: str, text: str) -> str:
    """RFC 5322 §2.2.3 folding: a CRLF goes before a space, never inside a word."""
    line = f"{name}: {text}"
    if len(line) <= MAX_LINE:
        return line + CRLF
    lines: list[str] = []
    current, has_word = f"{name}:", False
    for word in text.split(" "):
        if has_word and len(current) + 1 + len(word) > MAX_LINE:
            lines.append(current)
            current = ""
        current, has_word = f"{current} {word}", True
    lines.append(current)
    return CRLF.join(lines) + CRLF


def text_part(subtype: str, text: str) -> bytes:
    """A ``text/<subtype>`` UTF-8 body part with the transfer encoding the email package's
    content manager would choose: 7bit or 8bit when every line fits 78 characters
    (RFC 5322 §2.1.1; our relay path is 8BITMIME, RFC 6152), else quoted-printable or
    base64, whichever is shorter (RFC 2045 §6)."""
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) <= MAX_LINE:
        cte = "7bit" if text.isascii() else "8bit"
        body = b"\r\n".join(lines) + b"\r\n"
    else:
        data = b"\r\n".join(lines) + b"\r\n"
        quoted = binascii.b2a_qp(data, istext=True)
        based = _base64_lines(data)
        cte, body = ("quoted-printable", quoted) if len(quoted) <= len(based) else ("base64", based)
    head = f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}Content-Transfer-Encoding: {cte}'
    return (head + CRLF + CRLF).encode("ascii") + body


def _base64_lines(data: bytes) -> bytes:
    """RFC 2045 §6.8: base64 in lines of at most 76 characters."""
    encoded = binascii.b2a_base64(data, newline=False)
    return b"".join(encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


def alternative_message(headers: Sequence[Header], plain: str, html: str) -> bytes:
    """The whole reply: our headers, then the text and HTML versions (RFC 2046 §5.1.4)."""
    return whole_message(headers, alternative_body(plain, html))


@dataclass(frozen=True, slots=True)
class Body:
    """A multipart/alternative body as bytes, and the boundary its head must name."""

    boundary: str
    data: bytes


def alternative_body(plain: str, html: str) -> Body:
    """The text and HTML versions as one multipart/alternative body (RFC 2046 §5.1.4)."""
    parts = (text_part("plain", plain), text_part("html", html))
    boundary = _boundary(parts)
    delimiter = f"--{boundary}{CRLF}".encode("ascii")
    body = delimiter + (b"\r\n" + delimiter).join(parts)
    return Body(boundary, body + f"{CRLF}--{boundary}--{CRLF}".encode("ascii"))


def whole_message(headers: Sequence[Header], body: Body) -> bytes:
    """``headers`` folded, then the MIME fields naming ``body``'s boundary, then the body."""
    head = "".join(fold_header(name, value) for name, value in headers)
    head += f"MIME-Version: 1.0{CRLF}"
    head += f'Content-Type: multipart/alternative;{CRLF} boundary="{body.boundary}"{CRLF}{CRLF}'
    return head.encode("ascii") + body.data


def _boundary(parts: Sequence[bytes]) -> str:
    """A delimiter that occurs in no part (RFC 2046 §5.1.1). ``=_`` never occurs in
    quoted-printable or base64 text; a 7bit/8bit part is checked."""
    while True:
        boundary = f"=_{secrets.token_hex(12)}"
        marker = f"--{boundary}".encode("ascii")
        if not any(marker in part for part in parts):
            return boundary
