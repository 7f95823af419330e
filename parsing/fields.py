"""Report fields in a message body: labelled lines, table rows and call examples.

This module owns reading the details a support contract asks for (serial number,
software version, contact, call examples …) out of the text a customer wrote. Only
labels some ``FieldSpec`` knows count (matching rules: ``parsing.labels``); a value that
is a placeholder (N/A, TBD, ?, -) marks the field as present but blank. A field may
need several parts (both serial numbers); it is given only when every part is. Every
value carries its provenance (line, synonym, rule) for ``intake check --explain``. The
managed-PBX "specific call example" (date/time, calling party, called party) is built
in. Only the new text is read, and the HTML only up to its quoted history. Pure: no
I/O, never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from parsing.labels import LabelIndex, LabelMatch, fold, label_index, tokens
from parsing.tables import html_rows, text_cells
from parsing.types import CallExample, FieldExtraction, FieldSource, FieldSpec

DEFAULT_PLACEHOLDERS: Final[frozenset[str]] = frozenset(
    {"n/a", "na", "none", "unknown", "tbd", "?", "-", "--", "—", "nil", "null", ""}
)

# The three built-in call-example labels (not policy data: the grammar of item 8).
_CALL_PREFIX: Final = "call:"
_CALL_SPECS: Final = (
    FieldSpec(
        "call:when",
        (
            "date/time",
            "date time",
            "date and time",
            "time",
            "when",
            "call time",
            "datum/uhrzeit",
            "datum",
            "uhrzeit",
            "date/heure",
            "date et heure",
            "heure",
            "fecha/hora",
            "fecha y hora",
            "fecha",
            "hora",
        ),
    ),
    FieldSpec(
        "call:calling",
        (
            "calling",
            "calling number",
            "calling extension",
            "calling user",
            "calling party",
            "from number",
            "caller",
            "caller id",
            "anrufer",
            "anrufende nummer",
            "appelant",
            "numero appelant",
            "llamante",
            "numero llamante",
            "origen",
        ),
    ),
    FieldSpec(
        "call:called",
        (
            "called",
            "called number",
            "called extension",
            "called user",
            "called party",
            "to number",
            "dialed number",
            "dialled number",
            "angerufen",
            "angerufene nummer",
            "ziel",
            "appele",
            "numero appele",
            "destinataire",
            "llamado",
            "numero llamado",
            "destino",
        ),
    ),
)
_BLOCK_HEADER: Final = re.compile(r"(?:call\s+)?example\s*#?\s*\d{0,3}\s*:?", re.IGNORECASE)
# List markers a copied contract list brings along, repeated ("5. a)"): "7." "1)" "ii."
# "a)" "-" "*" "•", and a table's leading "|".
_MARKER: Final = r"(?:\(?(?:\d{1,3}(?:\.\d{1,3})*|[ivx]{1,5}|[a-h])[.)]|[-*•·▪◦–+])"
_LINE_PREFIX: Final = re.compile(rf"\s*(?:\|\s*)?(?:{_MARKER}\s+)*", re.IGNORECASE)
# Label/value separators: ":", a spaced dash, "|", a tab or 2+ spaces (Outlook's text
# table), or white space after a label ending in "?" or "#" ("Reproduced? Yes").
# A colon, pipe or dash wins over a tab or space run: "Serial   Number: X" is one label.
_SEPARATORS: Final = (
    re.compile(r"\s*[:：]?\s*\|\s*|\s*[:：]\s*|\s+[-–—]\s+|\s*\|\s*|(?<=[?#])\s+"),
    re.compile(r"\t+\s*| {2,}"),
)
# A character every match of the separators above (same order) has in the label window:
# a line without one has no such separator, and is not scanned for it. Each separator
# pattern opens with ``\s*`` and so is tried at every position; most lines of a report are
# prose without any of these, and that scan was ~15 % of a reading worker (issue 11).
_SEPARATOR_HINTS: Final = (re.compile(r"[:：|\-–—?#]"), re.compile(r"\t| {2}"))
_BOLD: Final = "*_ "
# The closing half of Markdown/Gmail bold around a label: "*Label:* v", "**Label**: v".
_CLOSING_BOLD: Final = re.compile(r"(?<=[\w?#:)])\*{1,2}(?=[\s:?#|]|$)")
_TRAILING_PUNCTUATION: Final = ".,;:!"
_MAX_LABEL_LINE: Final = 2_000  # a "line" longer than this is prose or junk, not a field
_MAX_LABEL_CHARS: Final = 120  # where a label's separator may be at the latest
_MAX_FIELD_LINES: Final = 2_000  # lines read for labels
_MAX_CONTINUATION: Final = 20  # lines an empty label may take from below it
_MAX_TEXT: Final = 200  # provenance text kept per source
_MAX_MENTIONS: Final = 3  # prose mentions kept per field, for --explain
# Splitting one value into parts: "board X, appliance Y", "X / Y", "X and Y".
_PART_SPLIT: Final = re.compile(r"\s*(?:[,;]|\s/\s|\band\b|\bund\b|\bet\b|\by\b|&|\t)\s*", re.I)
_PART_NOISE: Final = re.compile(
    r"\b(?:serial|serials|number|no|nr|s/n|sn|#|seriennummer|numero|de|serie)\b|[:=()\[\]#]",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Labelled:
    match: LabelMatch
    value: str
    bare: bool  # the label alone on its line, no separator
    rule: str = "labelled line"


@dataclass(frozen=True, slots=True)
class _Found:
    field: str
    value: str
    part: str | None
    source: FieldSource


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
    index = label_index((*specs, *_CALL_SPECS))
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # A report's fields are in its first lines; what follows thousands of lines is a
    # pasted log, read as free text only (bounds the work on hostile input).
    parsed = [
        _parse_line(line, index) if n < _MAX_FIELD_LINES else None for n, line in enumerate(lines)
    ]
    found, consumed = _read_field_lines(lines, parsed, index, specs)
    examples, example_lines = _read_call_examples(lines, parsed, consumed, blanks, index)
    consumed |= example_lines
    if html:
        rows = html_rows(html)
        found.extend(_row_fields(rows, index, specs))
        examples = _unique((*examples, *_table_examples(rows, index, blanks)[0]))
    settled = _settle(found, specs, blanks)
    return FieldExtraction(
        values=settled.values,
        blank=frozenset(settled.blank - settled.values.keys()),
        call_examples=examples,
        free_text=_free_text(lines, consumed),
        parts=settled.parts,
        unassigned=settled.unassigned,
        sources=settled.sources,
        mentions=_mentions(lines, consumed, index, specs, settled),
    )


# --- one line -------------------------------------------------------------------------


def _parse_line(line: str, index: LabelIndex) -> _Labelled | None:
    """The label and value of a line that starts with a known label, else None."""
    if len(line) > _MAX_LABEL_LINE or not line.strip():
        return None
    prefix = _LINE_PREFIX.match(line)
    body = _CLOSING_BOLD.sub("", line[prefix.end() if prefix else 0 :].lstrip(_BOLD))
    window = body[:_MAX_LABEL_CHARS]
    for separators, hint in zip(_SEPARATORS, _SEPARATOR_HINTS, strict=True):
        if hint.search(window) is None:
            continue
        best: tuple[LabelMatch, re.Match[str]] | None = None
        for separator in separators.finditer(body, 1, _MAX_LABEL_CHARS):
            match = index.match(body[: separator.start()])
            # The longest synonym wins ("Ticket # Ref: 42" over "Ticket #"), then the first.
            if match is not None and (best is None or match.size > best[0].size):
                best = (match, separator)
        if best is not None:
            match, separator = best
            value = body[separator.end() :]
            table = "|" in separator[0] or separators is _SEPARATORS[1]
            if "|" in separator[0]:
                value = value.split("|")[0]  # a table row: the value is the next cell
            rule = "text table row" if table else "labelled line"
            return _Labelled(match, value.strip().strip(_BOLD), bare=False, rule=rule)
    label = body.rstrip(_BOLD)
    if len(label) > _MAX_LABEL_CHARS or label.endswith("."):
        return None
    match = index.match(label)
    if match is None:
        return None
    # "Can the issue be reproduced?" / "Serial #" take their answer from below.
    return _Labelled(match, "", bare=not label.endswith(("?", "#")))


def _read_field_lines(
    lines: list[str],
    parsed: list[_Labelled | None],
    index: LabelIndex,
    specs: Sequence[FieldSpec],
) -> tuple[list[_Found], set[int]]:
    """Every known-label line in order, and the indexes of the lines they took."""
    found: list[_Found] = []
    consumed: set[int] = set()
    pairs = _table_pairs(lines, parsed)
    for number, item in enumerate(parsed):
        if item is None or item.match.field.startswith(_CALL_PREFIX) or number in consumed:
            continue
        if item.bare and number not in pairs:
            continue  # a label alone on its line is a heading ("Description")
        consumed.add(number)
        if number in pairs:
            below = pairs[number]
            value, rule, taken = lines[below].strip(), "label line, value line (table)", {below}
        elif item.value:
            value, rule, taken = item.value, item.rule, set()
        else:  # "Description:" with the text on the lines below it
            value, taken = _continuation(lines, parsed, number + 1)
            rule = "value on the lines below the label"
        consumed |= taken
        source = _source(item.match, value, rule, lines[number], number + 1)
        if len(taken) > 1 and _has_parts(item.match.field, specs):
            # A list of parts below the label ("a) board: X" / "b) appliance: Y").
            for below in sorted(taken):
                piece = _strip_marker(lines[below])
                below_source = _source(item.match, piece, rule, lines[below], below + 1)
                found.extend(_with_parts(item.match, piece, below_source, index, specs))
        else:
            found.extend(_with_parts(item.match, value, source, index, specs))
    return found, consumed


def _table_pairs(lines: list[str], parsed: list[_Labelled | None]) -> dict[int, int]:
    """Label line -> value line, for runs of 2+ such pairs (a table Outlook rendered as text).

    A single "Description" line above a paragraph stays a heading; only a run of
    label/value pairs (blank lines between allowed) reads as a two-column table.
    """
    candidates: list[tuple[int, int]] = []
    for number, item in enumerate(parsed):
        if item is None or not item.bare or item.match.field.startswith(_CALL_PREFIX):
            continue
        below = _next_filled(lines, number + 1)
        if below is not None and parsed[below] is None:
            candidates.append((number, below))
    pairs: dict[int, int] = {}
    run: list[tuple[int, int]] = []
    for pair in candidates:
        if run and _next_filled(lines, run[-1][1] + 1) != pair[0]:
            pairs.update(run if len(run) > 1 else ())
            run = []
        run.append(pair)
    pairs.update(run if len(run) > 1 else ())
    return pairs


def _next_filled(lines: list[str], start: int) -> int | None:
    """The next non-blank line within two lines of ``start``."""
    for number in range(start, min(len(lines), start + 2)):
        if lines[number].strip():
            return number
    return None


def _has_parts(name: str, specs: Sequence[FieldSpec]) -> bool:
    return any(spec.name == name and spec.parts for spec in specs)


def _strip_marker(line: str) -> str:
    prefix = _LINE_PREFIX.match(line)
    return line[prefix.end() if prefix else 0 :].strip()


def _continuation(
    lines: list[str], parsed: list[_Labelled | None], start: int
) -> tuple[str, set[int]]:
    """The paragraph right below an empty label: up to a blank line or the next label.

    One blank line between the label and its paragraph is allowed ("Description:",
    blank, text), as a table rendered by Outlook puts one there.
    """
    taken: list[str] = []
    indexes: set[int] = set()
    if start + 1 < len(lines) and not lines[start].strip() and lines[start + 1].strip():
        start += 1
    for number in range(start, min(len(lines), start + _MAX_CONTINUATION)):
        line = lines[number]
        if not line.strip() or parsed[number] is not None or _is_block_header(line):
            break
        taken.append(line.strip())
        indexes.add(number)
    return " ".join(taken), indexes


def _source(match: LabelMatch, value: str, rule: str, text: str, line: int | None) -> FieldSource:
    return FieldSource(
        field=match.field,
        value=value,
        synonym=match.synonym,
        rule=rule,
        text=text.strip()[:_MAX_TEXT],
        line=line,
        part=match.part,
    )


# --- several parts --------------------------------------------------------------------


def _with_parts(
    match: LabelMatch,
    value: str,
    source: FieldSource,
    index: LabelIndex,
    specs: Sequence[FieldSpec],
) -> list[_Found]:
    """One found value, or one per part when the value names several ("board X, appliance Y")."""
    spec = next((s for s in specs if s.name == match.field), None)
    if spec is None or not spec.parts or match.part is not None:
        return [_Found(match.field, value, match.part, source)]
    pieces = _split_parts(value, index.part_words(spec.name), len(spec.parts))
    return [
        _Found(match.field, piece, part, _replace(source, piece, part)) for part, piece in pieces
    ]


def _replace(source: FieldSource, value: str, part: str | None) -> FieldSource:
    return FieldSource(
        source.field, value, source.synonym, source.rule, source.text, source.line, part
    )


def _split_parts(value: str, words: Mapping[str, str], count: int) -> list[tuple[str | None, str]]:
    """Split a value that gives several parts; the whole value, unassigned, otherwise.

    "board X, appliance Y" and "X (board) / Y (appliance)" name their parts; "X / Y"
    gives them in the contract's order when there are exactly as many single-word
    values (each holding a digit) as parts.
    """
    segments = [s for s in _PART_SPLIT.split(value) if s.strip()]
    named: list[tuple[str | None, str]] = []
    for segment in segments:
        parts = {words[w] for w in tokens(segment) if w in words}
        rest = _strip_part_words(segment, words)
        named.append((parts.pop() if len(parts) == 1 else None, rest))
    distinct = len({part for part, _ in named}) == len(named)
    if len(named) > 1 and distinct and all(part and rest for part, rest in named):
        return named
    if len(segments) == count > 1 and all(_is_code(s) for s in segments):
        return [(None, segment.strip()) for segment in segments]  # positional
    if len(named) == 1 and named[0][0] and named[0][1]:
        return named
    return [(None, value)]


def _strip_part_words(segment: str, words: Mapping[str, str]) -> str:
    kept = [w for w in segment.split() if tokens(w) and tokens(w)[0] not in words]
    rest = _PART_NOISE.sub(" ", " ".join(kept))
    return " ".join(rest.split()).strip(" -–,.")


def _is_code(segment: str) -> bool:
    """One word with a digit in it: a serial, a version, an extension."""
    words = segment.split()
    return len(words) == 1 and any(ch.isdigit() for ch in words[0])


# --- settling -------------------------------------------------------------------------


@dataclass(slots=True)
class _Settled:
    values: dict[str, str] = field(default_factory=dict)
    blank: set[str] = field(default_factory=set)
    parts: dict[str, dict[str, str]] = field(default_factory=dict)
    unassigned: dict[str, str] = field(default_factory=dict)
    sources: tuple[FieldSource, ...] = ()


def _settle(found: list[_Found], specs: Sequence[FieldSpec], blanks: frozenset[str]) -> _Settled:
    """First non-placeholder value per field (and per part) wins; the rest is recorded unused."""
    settled = _Settled()
    multi = {spec.name: spec for spec in specs if spec.parts}
    loose: dict[str, list[tuple[int, _Found]]] = {}
    used: set[int] = set()
    for number, item in enumerate(found):
        if _is_placeholder(item.value, blanks):
            settled.blank.add(item.field)
        elif item.field in multi and item.part is None:
            loose.setdefault(item.field, []).append((number, item))
        elif item.field in multi and item.part is not None:
            given = settled.parts.setdefault(item.field, {})
            if item.part not in given:
                given[item.part] = item.value
                used.add(number)
        elif item.field not in settled.values:
            settled.values[item.field] = item.value
            used.add(number)
    for name, spec in multi.items():
        _fill_parts(settled, spec, loose.get(name, []), used)
    settled.sources = tuple(
        _mark(item.source, number in used, _assigned_part(item, settled))
        for number, item in enumerate(found)
    )
    return settled


def _fill_parts(
    settled: _Settled, spec: FieldSpec, loose: list[tuple[int, _Found]], used: set[int]
) -> None:
    """Settle one multi-part field: unlabelled values fill the parts still open."""
    given = settled.parts.setdefault(spec.name, {})
    waiting = [p.name for p in spec.parts if p.name not in given]
    # The same serial twice (the text part and the HTML table of one mail) is one.
    taken = set(given.values())
    values: list[tuple[int, _Found]] = []
    for number, item in loose:
        if item.value not in taken:
            taken.add(item.value)
            values.append((number, item))
    if waiting and values and len(values) >= len(waiting):
        # Unlabelled serials fill the parts still open, in the contract's order.
        for part, (number, item) in zip(waiting, values, strict=False):
            given[part] = item.value
            used.add(number)
    elif values:
        settled.unassigned[spec.name] = values[0][1].value
        used.add(values[0][0])
    if given and len(given) == len(spec.parts):
        settled.values[spec.name] = format_parts([p.name for p in spec.parts], given)
    if not given:
        del settled.parts[spec.name]


def format_parts(names: Sequence[str], given: Mapping[str, str]) -> str:
    """A complete multi-part value as stored and shown: "board: X; appliance: Y"."""
    return "; ".join(f"{name}: {given[name]}" for name in names)


def _assigned_part(item: _Found, settled: _Settled) -> str | None:
    if item.part is not None:
        return item.part
    given = settled.parts.get(item.field, {})
    return next((part for part, value in given.items() if value == item.value), None)


def _mark(source: FieldSource, used: bool, part: str | None) -> FieldSource:
    return FieldSource(
        source.field, source.value, source.synonym, source.rule, source.text, source.line,
        part, used,
    )  # fmt: skip


def _normalise_set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(" ".join(v.casefold().split()) for v in values)


def _is_placeholder(value: str, blanks: frozenset[str]) -> bool:
    normalised = " ".join(value.casefold().split())
    trimmed = normalised.rstrip(_TRAILING_PUNCTUATION).rstrip()
    return not trimmed or normalised in blanks or trimmed in blanks


# --- call examples --------------------------------------------------------------------


def _read_call_examples(
    lines: list[str],
    parsed: list[_Labelled | None],
    consumed: set[int],
    blanks: frozenset[str],
    index: LabelIndex,
) -> tuple[tuple[CallExample, ...], set[int]]:
    """Call examples: a table (one row per call), "Call Example N:" blocks, or top-level lines."""
    rows = [text_cells(line) if n not in consumed else [] for n, line in enumerate(lines)]
    tabled, table_lines = _table_examples(rows, index, blanks)
    examples: list[_CallBuilder] = []
    current: _CallBuilder | None = None
    for number, line in enumerate(lines):
        if number in consumed or number in table_lines:
            continue
        if _is_block_header(line):
            current = _CallBuilder(header_line=number)
            examples.append(current)
            continue
        item = parsed[number]
        if item is None or not item.match.field.startswith(_CALL_PREFIX) or item.bare:
            continue
        key = item.match.field.removeprefix(_CALL_PREFIX)
        if current is None or key in current.parts:
            current = _CallBuilder()
            examples.append(current)
        current.parts[key] = None if _is_placeholder(item.value, blanks) else item.value
        current.lines.append(number)
    used = [example for example in examples if example.lines]  # a lone "Example:" is prose
    blocks = tuple(_to_call_example(example) for example in used)
    return _unique((*tabled, *blocks)), _lines_of(used) | table_lines


def _table_examples(
    rows: Sequence[Sequence[str]], index: LabelIndex, blanks: frozenset[str]
) -> tuple[tuple[CallExample, ...], set[int]]:
    """Rows under a "Date/Time | Calling | Called" header row, one call example each."""
    examples: list[CallExample] = []
    taken: set[int] = set()
    header: list[str | None] | None = None
    for number, row in enumerate(rows):
        cells = [cell for cell in row if cell]
        keys = _call_header(cells, index)
        if keys is not None:
            header = keys
            taken.add(number)
            continue
        if header is None or len(cells) != len(header):
            header = None if cells else header
            continue
        parts = {
            key: (None if _is_placeholder(cell, blanks) else cell)
            for key, cell in zip(header, cells, strict=True)
            if key
        }
        examples.append(CallExample(parts.get("when"), parts.get("calling"), parts.get("called")))
        taken.add(number)
    return tuple(examples), taken


def _call_header(cells: Sequence[str], index: LabelIndex) -> list[str | None] | None:
    """The column keys (when/calling/called, None for others) of a call-example header row:
    at least two distinct call labels head it."""
    if len(cells) < 2:
        return None
    keys: list[str | None] = []
    for cell in cells:
        match = index.match(cell.rstrip(":"))
        field_name = match.field if match else ""
        keys.append(
            field_name.removeprefix(_CALL_PREFIX) if field_name.startswith(_CALL_PREFIX) else None
        )
    named = [key for key in keys if key]
    return keys if len(named) >= 2 and len(set(named)) == len(named) else None


def _unique(examples: Iterable[CallExample]) -> tuple[CallExample, ...]:
    """Each example once: Outlook sends the same table in the HTML and the text part."""
    seen: dict[tuple[str, ...], CallExample] = {}
    for example in examples:
        values = (example.when, example.calling, example.called)
        key = tuple(fold(" ".join((value or "").split())) for value in values)
        seen.setdefault(key, example)
    return tuple(seen.values())


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


# --- the rest -------------------------------------------------------------------------


def _free_text(lines: list[str], consumed: set[int]) -> str:
    kept = "\n".join(line for index, line in enumerate(lines) if index not in consumed)
    return re.sub(r"\n{3,}", "\n\n", kept).strip()


def _row_fields(
    rows: list[list[str]], index: LabelIndex, specs: Sequence[FieldSpec]
) -> list[_Found]:
    """A found value for every table row whose first filled cell is a known label."""
    found: list[_Found] = []
    for row in rows:
        cells = [cell for cell in row if cell]
        if len(cells) < 2:
            continue
        match = index.match(cells[0].strip().rstrip(":").strip(_BOLD))
        if match is None or match.field.startswith(_CALL_PREFIX):
            continue
        source = _source(match, cells[1], "HTML table row", " | ".join(cells), None)
        found.extend(_with_parts(match, cells[1], source, index, specs))
    return found


def _mentions(
    lines: list[str],
    consumed: set[int],
    index: LabelIndex,
    specs: Sequence[FieldSpec],
    settled: _Settled,
) -> tuple[FieldSource, ...]:
    """Lines that name a field nothing was read for, but not as a label (for --explain)."""
    wanted = {s.name for s in specs} - settled.values.keys() - settled.parts.keys()
    wanted -= settled.blank
    mentions: list[FieldSource] = []
    counts: dict[str, int] = {}
    for number, line in enumerate(lines[:500]):
        if number in consumed or not wanted or len(line) > _MAX_LABEL_LINE:
            continue
        named: dict[str, str] = {}  # per field, its longest synonym on this line
        for synonym in index.mentions(line):
            if len(synonym.written) > len(named.get(synonym.field, "")):
                named[synonym.field] = synonym.written
        for name, written in named.items():
            if name in wanted and counts.get(name, 0) < _MAX_MENTIONS and len(written) > 3:
                counts[name] = counts.get(name, 0) + 1
                rule = "mentioned in prose, not as a label at the start of a line"
                text = line.strip()[:_MAX_TEXT]
                mentions.append(FieldSource(name, "", written, rule, text, number + 1, used=False))
    return tuple(mentions)
