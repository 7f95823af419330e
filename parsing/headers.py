"""The shape of a header line: a field name, optional white space, then a colon.

RFC 5322 §3.6.8 makes a field name any printable US-ASCII except the colon (``ftext``);
§4.5.8 (``obs-optional``) lets old software put white space before the colon, which a
reader must still accept. Every check for "does this line start a header field" — the
IMAP edge refusing bytes that are no message, the DSN reader finding a pasted header
block, the part counter finding Content-Type lines, the Return-Path reader — uses the
one regex built here, in its ``str`` or ``bytes`` form.
"""

from __future__ import annotations

import re
from typing import Final

_FIELD_NAME: Final = r"[!-9;-~]+"  # RFC 5322 §3.6.8 ftext: %d33-57 / %d59-126


def header_line_regex(name: str | None = None) -> str:
    """Regex source for the start of a header line: ``name`` (any field when None), ``:``."""
    field = re.escape(name) if name is not None else _FIELD_NAME
    return rf"{field}[ \t]*:"


_HEADER_LINE: Final = re.compile(header_line_regex())
_HEADER_LINE_BYTES: Final = re.compile(header_line_regex().encode("ascii"))


def is_header_line(line: str | bytes) -> bool:
    """True when ``line`` starts with a header field name and its colon."""
    if isinstance(line, bytes):
        return _HEADER_LINE_BYTES.match(line) is not None
    return _HEADER_LINE.match(line) is not None


# The most of one header value handed to the email package's structured parsers. They
# are super-linear on junk (CPython's Content-Transfer-Encoding and RFC 2231 parameter
# parsers, a 30,000-address To list), and nothing a support request needs is longer:
# RFC 2045 §6.1 mechanisms are short tokens, 8 KB of To/Cc is some 400 addresses.
_VALUE_CAPS: Final[dict[str, int]] = {
    "content-transfer-encoding": 256,
    "content-type": 8_192,
    "content-disposition": 8_192,
    "from": 8_192,
    "sender": 8_192,
    "reply-to": 8_192,
    "to": 8_192,
    "cc": 8_192,
    "bcc": 8_192,
    # Decoded by us, not the email package, but parsed by the subject grammar after that.
    "subject": 16_384,
}
_DEFAULT_CAP: Final = 65_536
# Where a capped value may be cut without leaving half a token: after a list separator.
_SEPARATORS: Final = {"content-type": ";", "content-disposition": ";", "subject": " "}


def bound_header_value(name: str, value: str) -> tuple[str, bool]:
    """``value`` cut to the cap for ``name`` (at its last separator); whether it was cut."""
    key = name.lower()
    cap = _VALUE_CAPS.get(key, _DEFAULT_CAP)
    if len(value) <= cap:
        return value, False
    cut = value[:cap]
    separator = _SEPARATORS.get(key, ",")
    end = cut.rfind(separator)
    return (cut[:end] if end > 0 else cut), True
