"""extract_fields: the cases mutation testing (make mutation) found unpinned, table-driven.

HTML table cells (<br>, inline markup and <script> inside a cell, hidden <template> rows,
a parser surprise mid-document), what the free text keeps, the line-length limits, line
endings, multi-word placeholders and labels that extend other labels.
"""

from __future__ import annotations

import pytest

from parsing import CallExample, FieldSpec, extract_fields
from tests.parsing.conftest import DEFAULT_SPECS


def _row(label: str, value: str) -> str:
    return f"<tr><td>{label}</td><td>{value}</td></tr>"


def _table(*rows: str) -> str:
    return "<table>" + "".join(rows) + "</table>"


# (id, html, expected values)
HTML_CASES = [
    (
        "br-in-value-cell",
        _table(_row("Description", "All phones<br>down")),
        {"description": "All phones down"},
    ),
    ("br-in-label-cell", _table(_row("Serial<br>Number", "S-1")), {"serial_number": "S-1"}),
    ("self-closing-br", _table(_row("Serial", "S-<br/>1")), {"serial_number": "S- 1"}),
    (
        "inline-markup-in-cells",
        _table(_row("<b>Serial</b> Number", "A-<i>1</i>")),
        {"serial_number": "A-1"},
    ),
    (
        "script-inside-a-cell",
        _table(
            _row("Serial", "S-1"),
            _row("Notes", "<script>var x = 1;</script>after hours"),
            _row("Version", "9.1"),
        ),
        {"serial_number": "S-1", "notes": "after hours", "software_version": "9.1"},
    ),
    (
        "style-before-the-table",
        "<style>td { color: red }</style>" + _table(_row("Serial", "S-1")),
        {"serial_number": "S-1"},
    ),
    (
        "template-rows-are-hidden",
        "<template><p>draft</p>"
        + _table(_row("Serial", "DRAFT-1"))
        + "</template>"
        + _table(_row("Serial", "REAL-1")),
        {"serial_number": "REAL-1"},
    ),
    (
        "style-nested-in-template",
        "<template><style>p {}</style>"
        + _table(_row("Serial", "DRAFT-1"))
        + "</template>"
        + _table(_row("Serial", "REAL-1")),
        {"serial_number": "REAL-1"},
    ),
    (
        "space-before-colon-in-label-cell",
        _table(_row("Serial Number :", "S-1")),
        {"serial_number": "S-1"},
    ),
    (
        "rows-before-a-parser-surprise-are-kept",
        _table(_row("Serial", "S-1")) + "<![foo[ x ]]>" + _table(_row("Version", "9")),
        {"serial_number": "S-1"},
    ),
]


@pytest.mark.parametrize(
    ("html", "values"), [c[1:] for c in HTML_CASES], ids=[c[0] for c in HTML_CASES]
)
def test_reads_html_cells(html: str, values: dict[str, str]) -> None:
    assert dict(extract_fields("", html, DEFAULT_SPECS).values) == values


# (id, text, expected values, expected free text)
FREE_TEXT_CASES = [
    (
        "continuation-lines-are-consumed",
        "Serial: X\nDescription:\nphones down\nsince 9\n\nThanks",
        {"serial_number": "X", "description": "phones down since 9"},
        "Thanks",
    ),
    ("blank-runs-collapse", "Hi\n\n\n\nSerial: X\nBye", {"serial_number": "X"}, "Hi\n\nBye"),
    ("value-below-hash-label", "Serial #\nABC123\n\nThanks", {"serial_number": "ABC123"}, "Thanks"),
    ("value-keeps-a-pipe-after-a-colon", "Notes: a | b", {"notes": "a | b"}, ""),
    (
        "pipe-row-keeps-a-multi-word-value",
        "| Serial Number | ABC 123 |",
        {"serial_number": "ABC 123"},
        "",
    ),
    (
        "cr-line-endings",
        "Serial: A\rVersion: 2",
        {"serial_number": "A", "software_version": "2"},
        "",
    ),
    (
        "crlf-continuation",
        "Description:\r\nline one\r\nline two",
        {"description": "line one line two"},
        "",
    ),
]


@pytest.mark.parametrize(
    ("text", "values", "free_text"),
    [c[1:] for c in FREE_TEXT_CASES],
    ids=[c[0] for c in FREE_TEXT_CASES],
)
def test_values_and_free_text(text: str, values: dict[str, str], free_text: str) -> None:
    result = extract_fields(text, None, DEFAULT_SPECS)
    assert (dict(result.values), result.free_text) == (values, free_text)


@pytest.mark.parametrize(
    ("length", "values"),
    [(2_000, {"notes": "x" * 1_993}), (2_001, {})],
    ids=["2000-chars-is-a-field", "2001-chars-is-prose"],
)
def test_label_line_length_limit(length: int, values: dict[str, str]) -> None:
    line = "Notes: " + "x" * (length - 7)
    assert len(line) == length
    assert dict(extract_fields(line, None, DEFAULT_SPECS).values) == values


def test_an_empty_pipe_cell_is_blank() -> None:
    result = extract_fields("Serial |", None, DEFAULT_SPECS)
    assert (dict(result.values), result.blank) == ({}, {"serial_number"})


CALL = "Time: 9\nCaller: 1\nCalled: 2"

# (id, text, free text left): what may stand before "Example" in a block header.
HEADER_CASES = [
    ("bullet", f"* Call Example 1:\n{CALL}", ""),
    ("bold", f"**Call Example 1:**\n{CALL}", ""),
    ("letter-is-prose", f"X Example 1:\n{CALL}", "X Example 1:"),
    ("39-chars-is-a-header", f"Example{' ' * 30}1:\n{CALL}", ""),
    ("40-chars-is-prose", f"Example{' ' * 31}1:\n{CALL}", f"Example{' ' * 31}1:"),
    ("after-a-field-line", f"Serial: X\n{CALL}", ""),
]


@pytest.mark.parametrize(
    ("text", "free_text"), [c[1:] for c in HEADER_CASES], ids=[c[0] for c in HEADER_CASES]
)
def test_call_example_block_headers(text: str, free_text: str) -> None:
    result = extract_fields(text, None, DEFAULT_SPECS)
    assert result.call_examples == (CallExample("9", "1", "2"),)
    assert result.free_text == free_text


# (id, value, custom placeholders or None for the default set)
BLANK_CASES = [
    ("multi-word-custom", "not   known", ["Not Known"]),
    ("space-before-dot", "n/a .", None),
    ("space-before-bang", "TBD !", None),
    ("only-punctuation-custom-set", "...", ["pending"]),
]


@pytest.mark.parametrize(
    ("value", "placeholders"), [c[1:] for c in BLANK_CASES], ids=[c[0] for c in BLANK_CASES]
)
def test_placeholder_forms(value: str, placeholders: list[str] | None) -> None:
    result = extract_fields(f"Serial: {value}", None, DEFAULT_SPECS, placeholders)
    assert (dict(result.values), result.blank) == ({}, {"serial_number"})


def test_canonical_name_is_a_label() -> None:
    specs = [FieldSpec("asset_tag", ())]
    assert dict(extract_fields("Asset Tag: AT-9", None, specs).values) == {"asset_tag": "AT-9"}


def test_longest_label_wins() -> None:
    specs = [FieldSpec("ticket", ("Ticket #",)), FieldSpec("ticket_ref", ("Ticket # Ref",))]
    assert dict(extract_fields("Ticket # Ref: 42", None, specs).values) == {"ticket_ref": "42"}
