"""Report fields in a message body: ``Label: value`` lines, table rows and call examples.

This module owns reading the details a support contract asks for (serial number,
software version, contact, call examples …) out of the text a customer wrote. Only
labels some ``FieldSpec`` knows count; a value that is a placeholder (N/A, TBD, ?, -)
marks the field as present but blank. The managed-PBX "specific call example"
(date/time, calling party, called party) is built in. Pure: no I/O, never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Final

from parsing.types import CallExample, FieldExtraction, FieldSpec

DEFAULT_PLACEHOLDERS: Final[frozenset[str]] = frozenset(
    {"n/a", "na", "none", "unknown", "tbd", "?", "-", "--", "—", "nil", "null", ""}
)

# The three built-in call-example labels (not policy data: the grammar of item 8).
_WHEN: Final = ("date/time", "date time", "date and time", "time", "when", "call time")
_CALLING: Final = (
    "calling",
    "calling number",
    "calling extension",
    "calling user",
    "from number",
    "caller",
    "caller id",
)
_CALLED: Final = (
    "called",
    "called number",
    "called extension",
    "called user",
    "to number",
    "dialed number",
    "dialled number",
)
_CALL_LABELS: Final[Mapping[str, str]] = {
    **dict.fromkeys(_WHEN, "when"),
    **dict.fromkeys(_CALLING, "calling"),
    **dict.fromkeys(_CALLED, "called"),
}
_BLOCK_HEADER: Final = re.compile(r"(?:call\s+)?example\s*#?\s*\d{0,3}\s*:?", re.IGNORECASE)
# What may stand before a label: list markers "1." "1)" "-" "*" "•" and a table's "|".
_LINE_PREFIX: Final = re.compile(r"\s*(?:\|\s*)?(?:(?:\d{1,3}[.)]|[-*•·])\s+)?")
_TRAILING_PUNCTUATION: Final = ".,;:!"
_MAX_LABEL_LINE: Final = 2_000  # a "line" longer than this is prose or junk, not a field
_MAX_CONTINUATION: Final = 20  # lines an empty label may take from below it


@dataclass(frozen=True, slots=True)
class _FieldLine:
    label: str  # normalised label as matched
    value: str  # the raw value, trimmed


@dataclass(slots=True)
class _CallBuilder:
    """The call example being read; complete or not, it is emitted when it holds a value."""

    parts: dict[str, str | None] = field(default_factory=dict)
    header_line: int | None = None
    lines: list[int] = field(default_factory=list)  # the label lines read into ``parts``


def extract_fields(
    text: str,
    html: str | None,
    specs: Sequence[FieldSpec],
    placeholders: Iterable[str] | None = None,
) -> FieldExtraction:
    """Read the known fields and call examples from ``text`` (and ``html`` tables)."""
    blanks = DEFAULT_PLACEHOLDERS if placeholders is None else _normalise_set(placeholders)
    labels = _label_index(specs)
    matcher = _label_matcher(labels.keys())
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found, consumed = _read_field_lines(lines, matcher, labels)
    examples, example_lines = _read_call_examples(lines, consumed, blanks)
    consumed |= example_lines
    if html:
        found.extend(_html_rows(html, labels))
    values, blank = _settle(found, blanks)
    return FieldExtraction(
        values=values,
        blank=frozenset(blank - values.keys()),
        call_examples=examples,
        free_text=_free_text(lines, consumed),
    )


def _read_field_lines(
    lines: list[str], matcher: re.Pattern[str], labels: Mapping[str, str]
) -> tuple[list[tuple[str, str]], set[int]]:
    """(canonical name, value) per known-label line, in order, and those lines' indexes."""
    found: list[tuple[str, str]] = []
    consumed: set[int] = set()
    for index, line in enumerate(lines):
        parsed = _parse_field_line(line, matcher)
        if not parsed or parsed.label not in labels:
            continue
        value = parsed.value
        consumed.add(index)
        if not value:  # "Description:" with the text on the lines below it
            value, below = _continuation(lines, index + 1, matcher)
            consumed |= below
        found.append((labels[parsed.label], value))
    return found, consumed


def _continuation(lines: list[str], start: int, matcher: re.Pattern[str]) -> tuple[str, set[int]]:
    """The paragraph right below an empty label: up to a blank line or the next label."""
    taken: list[str] = []
    indexes: set[int] = set()
    for index in range(start, min(len(lines), start + _MAX_CONTINUATION)):
        line = lines[index]
        if not line.strip() or _parse_field_line(line, matcher) or _is_block_header(line):
            break
        taken.append(line.strip())
        indexes.add(index)
    return " ".join(taken), indexes


def normalise_label(label: str) -> str:
    """Casefold, collapse white space, drop surrounding space and trailing colons."""
    return " ".join(label.casefold().split()).rstrip(":").rstrip()


def _normalise_set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(" ".join(v.casefold().split()) for v in values)


def _label_index(specs: Sequence[FieldSpec]) -> dict[str, str]:
    """Normalised label -> canonical name; the first spec to claim a label keeps it."""
    index: dict[str, str] = {}
    for spec in specs:
        for label in (spec.name.replace("_", " "), *spec.synonyms):
            normalised = normalise_label(label)
            if normalised:
                index.setdefault(normalised, spec.name)
    return index


def _label_matcher(labels: Iterable[str]) -> re.Pattern[str]:
    """One regex for "<label><separator><value>", longest labels first.

    Separators: ``:``, a spaced ``-``/``–``/``—``, a table ``|``, or - after a label that
    ends in ``?`` or ``#`` - plain white space ("Can the issue be reproduced? Yes").
    """
    alternatives = sorted({*labels, *_CALL_LABELS}, key=len, reverse=True)
    pattern = "|".join(r"\s+".join(re.escape(word) for word in a.split()) for a in alternatives)
    return re.compile(
        rf"(?P<label>{pattern})\??"
        r"(?:(?P<pipe>\s*:?\s*\|\s*)|\s*:\s*|\s+[-–—]\s+|(?<=[?#])\s*|\s*$)"
        r"(?P<value>.*)",
        re.IGNORECASE,
    )


def _parse_field_line(line: str, matcher: re.Pattern[str]) -> _FieldLine | None:
    if len(line) > _MAX_LABEL_LINE or not line.strip():
        return None
    body = line.replace("**", "")
    start = _LINE_PREFIX.match(body)
    match = matcher.fullmatch(body, start.end() if start else 0)
    if not match or _is_bare_label(match):
        return None
    value = match["value"].split("|")[0] if match["pipe"] else match["value"]
    return _FieldLine(label=normalise_label(match["label"]), value=value.strip())


def _is_bare_label(match: re.Match[str]) -> bool:
    """A label alone on a line is a heading ("Description"); with a colon it is a field."""
    rest = match.string[match.end("label") :]
    return not rest.strip() and not match["label"].rstrip().endswith(("?", "#"))


def _is_placeholder(value: str, blanks: frozenset[str]) -> bool:
    normalised = " ".join(value.casefold().split())
    trimmed = normalised.rstrip(_TRAILING_PUNCTUATION).rstrip()
    return not trimmed or normalised in blanks or trimmed in blanks


def _settle(
    found: list[tuple[str, str]], blanks: frozenset[str]
) -> tuple[dict[str, str], set[str]]:
    """First non-placeholder value per field wins; fields seen only as placeholders are blank."""
    values: dict[str, str] = {}
    blank: set[str] = set()
    for name, value in found:
        if _is_placeholder(value, blanks):
            blank.add(name)
        else:
            values.setdefault(name, value)
    return values, blank


def _read_call_examples(
    lines: list[str], consumed: set[int], blanks: frozenset[str]
) -> tuple[tuple[CallExample, ...], set[int]]:
    """Call examples: "Call Example N:" blocks, or top-level Date/Time + Calling + Called."""
    matcher = _label_matcher(())
    examples: list[_CallBuilder] = []
    current: _CallBuilder | None = None
    for index, line in enumerate(lines):
        if index in consumed:
            continue
        if _is_block_header(line):
            current = _CallBuilder(header_line=index)
            examples.append(current)
            continue
        parsed = _parse_field_line(line, matcher)
        if not parsed or parsed.label not in _CALL_LABELS:
            continue
        key = _CALL_LABELS[parsed.label]
        if current is None or key in current.parts:
            current = _CallBuilder()
            examples.append(current)
        current.parts[key] = None if _is_placeholder(parsed.value, blanks) else parsed.value
        current.lines.append(index)
    used = [example for example in examples if example.lines]  # a lone "Example:" is prose
    return tuple(_to_call_example(example) for example in used), _lines_of(used)


def _is_block_header(line: str) -> bool:
    stripped = line.replace("**", "").strip().lstrip("-*•· ")
    return len(stripped) < 40 and bool(_BLOCK_HEADER.fullmatch(stripped))


def _to_call_example(example: _CallBuilder) -> CallExample:
    return CallExample(
        when=example.parts.get("when"),
        calling=example.parts.get("calling"),
        called=example.parts.get("called"),
    )


def _lines_of(examples: Iterable[_CallBuilder]) -> set[int]:
    lines: set[int] = set()
    for example in examples:
        lines.update(example.lines)
        if example.header_line is not None:
            lines.add(example.header_line)
    return lines


def _free_text(lines: list[str], consumed: set[int]) -> str:
    kept = "\n".join(line for index, line in enumerate(lines) if index not in consumed)
    return re.sub(r"\n{3,}", "\n\n", kept).strip()


class _RowCollector(HTMLParser):
    """Collects the cell texts of every <tr>, innermost row first when tables nest."""

    _HIDDEN: Final = frozenset({"script", "style", "head", "title", "template"})

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
        elif tag == "br" and self._open and self._open[-1]:
            self._open[-1][-1] += " "

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden:
            self._hidden -= 1
        elif tag == "tr" and self._open:
            self.rows.append([" ".join(cell.split()) for cell in self._open.pop()])

    def handle_data(self, data: str) -> None:
        if not self._hidden and self._open and self._open[-1]:
            self._open[-1][-1] += data


def _html_rows(html: str, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """(canonical name, value) for every two-cell <tr> whose first cell is a known label."""
    collector = _RowCollector()
    try:
        collector.feed(html)
        collector.close()
    except Exception:  # HTMLParser is lenient; keep the rows read before any surprise
        return _labelled(collector.rows, labels)
    return _labelled(collector.rows, labels)


def _labelled(rows: list[list[str]], labels: Mapping[str, str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for row in rows:
        cells = [cell for cell in row if cell]
        if len(cells) >= 2 and normalise_label(cells[0]) in labels:
            found.append((labels[normalise_label(cells[0])], cells[1]))
    return found
