"""extract_fields: labelled lines, tables, placeholders and call examples, table-driven."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import parsing.fields as fields_module
from parsing import DEFAULT_PLACEHOLDERS, CallExample, FieldSpec, extract_fields
from parsing.text import html_to_text
from tests.parsing.conftest import DEFAULT_SPECS

# (id, body line(s), expected values)
LINE_CASES = [
    ("colon", "Serial: ABC123", {"serial_number": "ABC123"}),
    ("colon-no-space", "Serial:ABC123", {"serial_number": "ABC123"}),
    ("space-before-colon", "Serial : ABC123", {"serial_number": "ABC123"}),
    ("hyphen", "Serial - ABC123", {"serial_number": "ABC123"}),
    ("en-dash", "Serial – ABC123", {"serial_number": "ABC123"}),
    ("em-dash", "Serial — ABC123", {"serial_number": "ABC123"}),
    ("numbered-dot", "1. Serial Number: ABC123", {"serial_number": "ABC123"}),
    ("numbered-paren", "2) Serial Number: ABC123", {"serial_number": "ABC123"}),
    ("bullet-hyphen", "- Serial Number: ABC123", {"serial_number": "ABC123"}),
    ("bullet-star", "* Serial Number: ABC123", {"serial_number": "ABC123"}),
    ("bullet-dot", "• Serial Number: ABC123", {"serial_number": "ABC123"}),
    ("markdown-bold", "**Serial Number:** ABC123", {"serial_number": "ABC123"}),
    ("markdown-bold-label", "**Serial Number**: ABC123", {"serial_number": "ABC123"}),
    ("table-row", "Serial Number | ABC123", {"serial_number": "ABC123"}),
    ("table-row-piped", "| Serial Number | ABC123 |", {"serial_number": "ABC123"}),
    ("indented", "    Serial Number: ABC123", {"serial_number": "ABC123"}),
    ("case-insensitive", "SERIAL NUMBER: ABC123", {"serial_number": "ABC123"}),
    ("extra-inner-space", "Serial   Number: ABC123", {"serial_number": "ABC123"}),
    ("canonical-name", "serial number: ABC123", {"serial_number": "ABC123"}),
    ("serial-hash", "Serial #: ABC123", {"serial_number": "ABC123"}),
    ("s-slash-n", "S/N: ABC123", {"serial_number": "ABC123"}),
    ("serial-no", "Serial No: ABC123", {"serial_number": "ABC123"}),
    ("question-same-line", "Can the issue be reproduced? Yes", {"reproducible": "Yes"}),
    ("question-colon", "Can the Issue be Reproduced: No", {"reproducible": "No"}),
    ("question-mark-tolerated", "Reproducible? yes", {"reproducible": "yes"}),
    ("company-synonyms", "Customer: Acme", {"company_name": "Acme"}),
    ("company-name", "Company Name: Acme", {"company_name": "Acme"}),
    ("contact-name", "Name: Jane Doe", {"contact_name": "Jane Doe"}),
    ("email-hyphen", "E-mail: jane@acme.example", {"contact_email": "jane@acme.example"}),
    (
        "email-long",
        "Contact Email Address: jane@acme.example",
        {"contact_email": "jane@acme.example"},
    ),
    ("phone-tel", "Tel: +1 303 555 0100", {"contact_phone": "+1 303 555 0100"}),
    ("callback-number", "Callback Number: 555 0100", {"contact_phone": "555 0100"}),
    ("contact-phone-number", "Contact Phone Number: 555 0100", {"contact_phone": "555 0100"}),
    ("fw-version", "Firmware Version: 17.0.4", {"software_version": "17.0.4"}),
    ("sw-version", "SW Version: 17.0.4", {"software_version": "17.0.4"}),
    ("problem", "Problem: no dial tone", {"description": "no dial tone"}),
    ("internal-ticket", "Your Ticket: INC-77", {"internal_ticket_number": "INC-77"}),
    ("notes", "Notes: after hours only", {"notes": "after hours only"}),
    ("call-logs", "Call Logs: attached", {"call_logs": "attached"}),
    ("value-with-colon", "Notes: call at 10:30", {"notes": "call at 10:30"}),
    ("unknown-label", "Note: foo", {}),
    ("bare-label-is-a-heading", "Description\nPhones are down.", {}),
    ("label-inside-prose", "The serial is ABC123", {}),
    ("longer-word-is-not-label", "Serials: ABC", {}),
    ("first-wins", "Serial: FIRST\nSerial: SECOND", {"serial_number": "FIRST"}),
    ("placeholder-then-value", "Serial: N/A\nSerial: REAL", {"serial_number": "REAL"}),
    (
        "several-fields",
        "Company: Acme\nVersion: 2\nTel: 5",
        {"company_name": "Acme", "software_version": "2", "contact_phone": "5"},
    ),
    (
        "value-on-the-lines-below",
        "Description:\nAll phones lost dial tone,\nnobody can call out.\n\nThanks",
        {"description": "All phones lost dial tone, nobody can call out."},
    ),
    ("answer-below-question", "Can the issue be reproduced?\nYes", {"reproducible": "Yes"}),
    ("continuation-stops-at-next-label", "Serial:\nVersion: 2", {"software_version": "2"}),
    ("placeholder-below", "Serial:\nN/A\nSerial: REAL", {"serial_number": "REAL"}),
]


@pytest.mark.parametrize(
    ("text", "values"), [c[1:] for c in LINE_CASES], ids=[c[0] for c in LINE_CASES]
)
def test_reads_labelled_lines(text: str, values: dict[str, str]) -> None:
    assert dict(extract_fields(text, None, DEFAULT_SPECS).values) == values


PLACEHOLDERS = [
    "n/a",
    "N/A",
    "na",
    "None",
    "unknown",
    "TBD",
    "tbd.",
    "?",
    "-",
    "--",
    "—",
    "nil",
    "NULL",
    "",
    "  ",
    "n/a.",
]


# Plain ASCII ids ("'U+2014'" for the em dash): pytest escapes a non-ASCII or backslashed id
# again on every in-process collection, so mutmut could not re-select it by node id.
@pytest.mark.parametrize(
    "placeholder", PLACEHOLDERS, ids=[ascii(p).replace("\\u", "U+") for p in PLACEHOLDERS]
)
def test_placeholder_marks_field_blank(placeholder: str) -> None:
    result = extract_fields(f"Serial Number: {placeholder}", None, DEFAULT_SPECS)
    assert dict(result.values) == {}
    assert result.blank == {"serial_number"}


def test_default_placeholders_are_exported() -> None:
    assert {"n/a", "tbd", "?", "-", ""} <= DEFAULT_PLACEHOLDERS


def test_custom_placeholders_replace_the_default_set() -> None:
    result = extract_fields("Serial: pending\nVersion: n/a", None, DEFAULT_SPECS, ["Pending"])
    assert dict(result.values) == {"software_version": "n/a"}
    assert result.blank == {"serial_number"}


def test_blank_excludes_fields_that_also_have_a_value() -> None:
    result = extract_fields("Serial: TBD\nSerial: X1", None, DEFAULT_SPECS)
    assert result.blank == frozenset()


def test_first_spec_to_claim_a_label_keeps_it() -> None:
    specs = [FieldSpec("a", ("Ref",)), FieldSpec("b", ("Ref",))]
    assert dict(extract_fields("Ref: 1", None, specs).values) == {"a": "1"}


HTML_TABLE = """<html><body><p>Hello</p>
<table>
  <tr><th>Serial Number:</th><td>HT-1</td></tr>
  <tr><td>Firmware&nbsp;Version</td><td> 9.1 </td></tr>
  <tr><td>Notes</td><td>N/A</td></tr>
  <tr><td>Unrelated</td><td>x</td></tr>
  <tr><td>Description</td></tr>
</table>
<script>var Serial = "evil";</script>
</body></html>"""


def test_reads_html_table_rows() -> None:
    result = extract_fields("Hello", HTML_TABLE, DEFAULT_SPECS)
    assert dict(result.values) == {"serial_number": "HT-1", "software_version": "9.1"}
    assert result.blank == {"notes"}


def test_text_value_wins_over_html() -> None:
    result = extract_fields("Serial Number: TXT-1", HTML_TABLE, DEFAULT_SPECS)
    assert result.values["serial_number"] == "TXT-1"


def test_reads_nested_html_tables() -> None:
    html = "<table><tr><td><table><tr><td>Serial</td><td>N-1</td></tr></table></td></tr></table>"
    assert dict(extract_fields("", html, DEFAULT_SPECS).values) == {"serial_number": "N-1"}


def test_reads_html2text_table_output() -> None:
    text = html_to_text(HTML_TABLE)
    result = extract_fields(text, None, DEFAULT_SPECS)
    assert result.values["serial_number"] == "HT-1"
    assert result.values["software_version"] == "9.1"
    assert "evil" not in text


CALL_BLOCKS = """Hello, calls fail.

Call Example 1:
Date/Time: 2026-11-22 08:15
Calling Number: x2201
Called Number: +1 303 555 0199

Call example 2:
Date and Time: 2026-11-22 08:20
Caller ID: x2202
Dialed Number: 911

Example 3
When: yesterday
Calling Extension: n/a
To Number: 555
"""


def test_reads_call_example_blocks() -> None:
    result = extract_fields(CALL_BLOCKS, None, DEFAULT_SPECS)
    assert result.call_examples == (
        CallExample("2026-11-22 08:15", "x2201", "+1 303 555 0199"),
        CallExample("2026-11-22 08:20", "x2202", "911"),
        CallExample("yesterday", None, "555"),
    )
    assert [e.complete for e in result.call_examples] == [True, True, False]
    assert result.free_text == "Hello, calls fail."


def test_reads_top_level_call_lines_as_one_example() -> None:
    text = "Date/Time: today 9am\nCalling: x100\nCalled User: Bob"
    result = extract_fields(text, None, DEFAULT_SPECS)
    assert result.call_examples == (CallExample("today 9am", "x100", "Bob"),)
    assert result.free_text == ""


def test_repeated_call_label_starts_a_new_example() -> None:
    text = "Time: 9:00\nCaller: 1\nCalled: 2\nTime: 9:05\nCaller: 3\nCalled: 4"
    result = extract_fields(text, None, DEFAULT_SPECS)
    assert [e.when for e in result.call_examples] == ["9:00", "9:05"]


def test_lone_example_word_is_prose() -> None:
    result = extract_fields("Example:\nthe phone reboots", None, DEFAULT_SPECS)
    assert result.call_examples == ()
    assert result.free_text == "Example:\nthe phone reboots"


def test_free_text_drops_field_lines_only() -> None:
    text = "Hi team,\nSerial: X1\nPhones reboot every hour.\nVersion: TBD\nThanks"
    result = extract_fields(text, None, DEFAULT_SPECS)
    assert result.free_text == "Hi team,\nPhones reboot every hour.\nThanks"


def test_full_report() -> None:
    body = (
        "Company Name: Acme Corp\nContact Name: Jane Doe\nEmail: jane@acme.example\n"
        "Phone: +1 303 555 0100\nSerial Number: MX-0042\nSW Version: 17.0.4\n"
        "Description: no dial tone\nCan the issue be reproduced? Yes\n"
        "Internal Ticket Number: n/a\n"
    )
    result = extract_fields(body, None, DEFAULT_SPECS)
    assert set(result.values) == {
        "company_name",
        "contact_name",
        "contact_email",
        "contact_phone",
        "serial_number",
        "software_version",
        "description",
        "reproducible",
    }
    assert result.blank == {"internal_ticket_number"}


def test_crlf_text() -> None:
    result = extract_fields("Serial: A\r\nVersion: 2\r\n", None, DEFAULT_SPECS)
    assert dict(result.values) == {"serial_number": "A", "software_version": "2"}


@settings(max_examples=200, deadline=None)
@given(st.text(), st.one_of(st.none(), st.text()))
def test_never_raises(text: str, html: str | None) -> None:
    extract_fields(text, html, DEFAULT_SPECS)


_LINE_PIECES = [
    "Serial", "Serial Number", "Phone", "Contact Name", "Ticket #", "Ref", "Company",
    ":", "：", " : ", "|", " | ", " - ", " – ", "—", "?", "#", "\t", "  ", " ", "*", "**",
    "_", "ABC123", "+1 303 555 0100", "Acme Corp", "no dial tone", "x" * 60, "-", "=",
]  # fmt: skip


_SEPARATED = ["Serial # ABC123", "Phone? +1 303 555 0100", "Serial\tABC123",
              "Serial  ABC123", "Phone – +1 303", "Serial | ABC123", "Serial：ABC123"]  # fmt: skip


@pytest.mark.parametrize("line", _SEPARATED, ids=["hash", "question", "tab", "two-spaces",
                                                  "dash", "pipe", "fullwidth-colon"])  # fmt: skip
def test_each_kind_of_separator_survives_the_prefilter(line: str) -> None:
    index = fields_module.label_index((*DEFAULT_SPECS, *fields_module._CALL_SPECS))
    parsed = fields_module._parse_line(line, index)
    assert parsed is not None and not parsed.bare


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_LINE_PIECES), max_size=14).map("".join))
def test_a_line_is_read_the_same_whether_or_not_its_separators_are_prefiltered(
    line: str,
) -> None:
    """``_SEPARATOR_HINTS`` only skips scans that find nothing: every line reads as it
    does when each line is scanned for every separator."""
    index = fields_module.label_index((*DEFAULT_SPECS, *fields_module._CALL_SPECS))
    everything = (re.compile(""), re.compile(""))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fields_module, "_SEPARATOR_HINTS", everything)
        scanned = fields_module._parse_line(line, index)
    assert fields_module._parse_line(line, index) == scanned
