"""Reading an SMTP DATA section in bulk: its end and its dot transparency.

This module owns how the listener reads the mail data after its 354 (RFC 5321 §4.1.1.4):
up to the line that holds a lone period, with the leading period that the client added
to every line starting with one removed again (§4.5.2), and the size limit of RFC 1870
(§4.5.3.1.10: a 552 only once all the data has been read, so the client sees the answer).

aiosmtpd reads DATA one line at a time: one ``readuntil``, one debug log call and a list
append per line, ~116 of each for a 5.5 KB mail, and that loop was the largest single
cost in the listener's event loop (issue 11). Here the stream is read up to each
``.<CRLF>`` instead, which ends only the lines that end with a period, so a mail takes a
few reads. The result is byte for byte what aiosmtpd's loop gives (its
``original_content``): ``tests/intake/edges/test_smtpdata.py`` checks it against §4.5.2's
line-by-line rule on arbitrary data cut into arbitrary segments, and against aiosmtpd's
own server on raw sessions.

Unlike aiosmtpd, no line length is enforced: the listener set aiosmtpd's line limit to
the size limit already (real mail has lines over RFC 5321's 1,000 octets), so the size
is the one limit, answered with 552.
"""

from __future__ import annotations

import asyncio
from typing import Final

_END: Final = b".\r\n"  # what ends every read: a line that ends with a period
_LAST_LINE: Final = b"\r\n.\r\n"  # a line that is only a period (after the CRLF before it)
_STUFFED: Final = b"\r\n."  # RFC 5321 §4.5.2: a line that starts with a period


async def read_data(reader: asyncio.StreamReader, limit: int | None) -> bytes | None:
    """The mail data after DATA's 354, its transparency undone; None when it is larger
    than ``limit`` octets (then it has been read to its end and dropped).

    The data is counted as it arrives, its lines' CRLFs and stuffed periods included
    and the end line not, as aiosmtpd counts it. Raises ``asyncio.IncompleteReadError``
    when the stream ends first.
    """
    # The CRLF that ended the DATA command, so that the end line and a first line starting
    # with a period look like every other line.
    data = bytearray(b"\r\n")
    received = 0
    while True:
        try:
            chunk = await reader.readuntil(_END)
        except asyncio.LimitOverrunError as error:
            # More than the stream's limit without ".<CRLF>" (a long base64 part): take
            # what cannot hold part of one and go on looking.
            chunk = await reader.readexactly(error.consumed)
        received += len(chunk)
        data += chunk
        over = limit is not None and received - len(_END) > limit  # the end line not counted
        if data.endswith(_LAST_LINE):
            break
        if over:  # it can only grow: keep just enough to see the end line arrive
            del data[: -len(_LAST_LINE) + 1]
    if over:
        return None
    del data[-len(_END) :]
    return bytes(data.replace(_STUFFED, b"\r\n"))[2:]
