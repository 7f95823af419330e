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
