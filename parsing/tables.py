"""Tables in a report: HTML ``<tr>`` rows and the same table as a client renders it as text.

This module owns turning a table into rows of cell texts; which rows are fields or call
examples is ``parsing.fields``'s business. Outlook/Exchange (``MsoNormalTable``) puts
each cell's text in ``<p class=MsoNormal><span>…</span></p>``, so paragraphs and line
breaks inside a cell become spaces. Only the author's own part of the HTML counts: rows
inside ``<blockquote>`` and everything after the first reply/forward marker (Outlook's
``divRplyFwdMsg`` header block, Gmail's ``gmail_quote``, Thunderbird's
``moz-cite-prefix``, "-----Original Message-----") are quoted history. Pure: no I/O.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

# Where quoted history starts in the HTML of a reply, per client.
_QUOTE_START: Final = re.compile(
    r"""<div[^>]*\b(?:id=["']?(?:divRplyFwdMsg|appendonsend)|class=["']?(?:gmail_quote|moz-cite-prefix|OutlookMessageHeader))"""
    r"""|<hr[^>]*\bid=["']?stopSpelling"""
    r"""|-{3,}\s*Original Message\s*-{3,}"""
    r"""|<div[^>]*border-top:\s*solid\s+#[0-9a-f]{6}\s+1\.0pt""",
    re.IGNORECASE,
)
# A text row: cells split by "|", tabs or a run of 2+ spaces (Outlook's plain-text table).
_TEXT_CELL_SPLIT: Final = re.compile(r"\s*\|\s*|\t+\s*|\s{2,}")
_MAX_HTML: Final = 2_000_000  # larger HTML is junk for this purpose; read its start only


def own_html(html: str) -> str:
    """The HTML the author wrote: everything before the first quoted-history marker."""
    html = html[:_MAX_HTML]
    match = _QUOTE_START.search(html)
    return html[: match.start()] if match else html


def forwarded_html(html: str) -> str:
    """The HTML after the first reply/forward marker: a forwarded report's own part.

    A forward's report is its forwarded content (``parsing.forwards``); its tables start
    after the marker, and ``own_html`` then cuts that at the forward's own history.
    """
    html = html[:_MAX_HTML]
    match = _QUOTE_START.search(html)
    return html[match.end() :] if match else html


class _RowCollector(HTMLParser):
    """Collects the cell texts of every <tr> outside <blockquote>, innermost row first."""

    _HIDDEN: Final = frozenset({"script", "style", "head", "title", "template", "blockquote"})
    _SPACES: Final = frozenset({"br", "p", "div", "li"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._open: list[list[str]] = []  # the open rows, each a list of cells
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag == "tr":
            self._open.append([])
        elif tag in {"td", "th"} and self._open:
            self._open[-1].append("")
        elif tag in self._SPACES and self._open and self._open[-1]:
            self._open[-1][-1] += " "

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden:
            self._hidden -= 1
        elif tag in self._SPACES and self._open and self._open[-1]:
            self._open[-1][-1] += " "
        elif tag == "tr" and self._open:
            row = [" ".join(cell.split()) for cell in self._open.pop()]
            if not self._hidden:
                self.rows.append(row)

    def handle_data(self, data: str) -> None:
        if not self._hidden and self._open and self._open[-1]:
            self._open[-1][-1] += data


def html_rows(html: str) -> list[list[str]]:
    """Cell texts of every table row the author wrote (empty cells kept, trimmed)."""
    collector = _RowCollector()
    try:
        collector.feed(own_html(html))
        collector.close()
    except Exception:  # HTMLParser is lenient; keep the rows read before any surprise
        return collector.rows
    return collector.rows


def text_cells(line: str) -> list[str]:
    """A text line's table cells ("a | b", "a<TAB>b", "a    b"); one cell when not a row."""
    stripped = line.strip().strip("|").strip()
    return [cell for cell in _TEXT_CELL_SPLIT.split(stripped) if cell]
