"""Label matching as people write labels, and its precision, table-driven."""

from __future__ import annotations

import pytest

from parsing import FieldPart, FieldSpec, extract_fields

SPECS = (
    FieldSpec("contact_phone", ("Phone", "Telephone", "Phone Number", "Telefon", "Teléfono")),
    FieldSpec(
        "serial_number",
        ("Serial", "Serial Number", "S/N", "Serials", "Serial Number of Zultys System"),
        (FieldPart("board", ("board",)), FieldPart("appliance", ("appliance",))),
    ),
    FieldSpec("software_version", ("Software Version", "Version")),
    FieldSpec("description", ("Description", "Detailed Description of the Problem")),
)

# (id, text, values, parts given)
CASES = [
    ("qualifier-in-parens", "Phone (direct): 555 0100", {"contact_phone": "555 0100"}, {}),
    (
        "contract-wording-with-tail",
        "Software Version of Zultys System and/or Client Applications: 17",
        {"software_version": "17"},
        {},
    ),
    (
        "contract-wording",
        "Detailed Description of the Problem: no tone",
        {"description": "no tone"},
        {},
    ),
    ("roman-sub-item", "ii. Phone: 1", {"contact_phone": "1"}, {}),
    ("letter-sub-item", "a) Phone: 1", {"contact_phone": "1"}, {}),
    ("numbered-then-letter", "5. a) Phone: 1", {"contact_phone": "1"}, {}),
    ("gmail-bold", "*Phone:* 1", {"contact_phone": "1"}, {}),
    ("markdown-bold", "**Phone:** 1", {"contact_phone": "1"}, {}),
    ("filler-word", "Your phone number: 1", {"contact_phone": "1"}, {}),
    ("accent-folded", "Telefono: 1", {"contact_phone": "1"}, {}),
    ("tab-separated", "Phone\t1", {"contact_phone": "1"}, {}),
    ("prose-after-label-word", "Phone system down: since 9", {}, {}),
    ("prose-mention", "I checked the serial number: it is on the back", {}, {}),
    ("label-not-at-start", "Please call my phone: 1", {}, {}),
    ("heading-alone", "Description\nPhones are down.", {}, {}),
    (
        "two-labelled-parts",
        "Board Serial: B1\nAppliance S/N: A2",
        {"serial_number": "board: B1; appliance: A2"},
        {"board": "B1", "appliance": "A2"},
    ),
    (
        "parts-in-parens",
        "Serial Number (board): B1\nSerial Number (appliance): A2",
        {"serial_number": "board: B1; appliance: A2"},
        {"board": "B1", "appliance": "A2"},
    ),
    (
        "one-line-named",
        "Serial Number: board B1, appliance A2",
        {"serial_number": "board: B1; appliance: A2"},
        {"board": "B1", "appliance": "A2"},
    ),
    (
        "one-line-positional",
        "Serials: B1 / A2",
        {"serial_number": "board: B1; appliance: A2"},
        {"board": "B1", "appliance": "A2"},
    ),
    ("only-board", "Board Serial: B1", {}, {"board": "B1"}),
    (
        "unlabelled-fills-the-open-part",
        "Appliance S/N: A2\nSerial: B1",
        {"serial_number": "board: B1; appliance: A2"},
        {"board": "B1", "appliance": "A2"},
    ),
    (
        "text-table-label-then-value",
        "Phone\n\n1\n\nSoftware Version\n\n17",
        {"contact_phone": "1", "software_version": "17"},
        {},
    ),
]


@pytest.mark.parametrize(
    ("text", "values", "parts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_labels_as_people_write_them(
    text: str, values: dict[str, str], parts: dict[str, str]
) -> None:
    result = extract_fields(text, None, SPECS)
    assert dict(result.values) == values
    assert dict(result.parts.get("serial_number", {})) == parts


def test_one_serial_in_the_text_and_its_html_table_is_one_serial() -> None:
    html = "<table><tr><td>Serial Number</td><td>B1</td></tr></table>"
    result = extract_fields("Serial Number | B1", html, SPECS)
    assert (dict(result.values), dict(result.unassigned)) == ({}, {"serial_number": "B1"})


def test_a_single_unlabelled_serial_is_unassigned() -> None:
    result = extract_fields("Serial Number: B1", None, SPECS)
    assert (dict(result.values), dict(result.unassigned)) == ({}, {"serial_number": "B1"})


def test_provenance_names_line_synonym_and_rule() -> None:
    result = extract_fields("Hello\n7. Phone (direct): 555", None, SPECS)
    [source] = result.sources
    assert (source.field, source.line, source.synonym, source.rule, source.text) == (
        "contact_phone", 2, "Phone", "labelled line", "7. Phone (direct): 555",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Phone: 1", "labelled line"),
        ("Phone\t1", "text table row"),
        ("| Phone | 1 |", "text table row"),
        ("Phone\n\n1\n\nVersion\n\n2", "label line, value line (table)"),
        ("Description:\nno tone", "value on the lines below the label"),
    ],
    ids=["colon", "tab", "pipe", "label-then-value", "below"],
)
def test_provenance_names_the_rule(text: str, rule: str) -> None:
    assert extract_fields(text, None, SPECS).sources[0].rule == rule


def test_a_prose_mention_is_recorded_for_explain() -> None:
    result = extract_fields("the serial number is on the back", None, SPECS)
    assert [(m.field, m.line) for m in result.mentions] == [("serial_number", 1)]


def test_html_rows_in_quoted_history_are_ignored() -> None:
    row = "<table><tr><td>Phone</td><td>{}</td></tr></table>"
    for marker in (
        '<div class="gmail_quote">',
        "<blockquote type=cite>",
        '<div id="divRplyFwdMsg">',
        '<div class="moz-cite-prefix">',
    ):
        html = f"<p>new</p>{marker}{row.format('OLD')}</div>"
        assert dict(extract_fields("new", html, SPECS).values) == {}, marker
    assert extract_fields("", row.format("NEW"), SPECS).values == {"contact_phone": "NEW"}


def test_fields_are_read_from_the_first_lines_only() -> None:
    # Bounded work on hostile input: labels past line 2,000 are a pasted log, free text.
    text = "x\n" * 2_000 + "Phone: 1"
    result = extract_fields(text, None, SPECS)
    assert dict(result.values) == {} and result.free_text.endswith("Phone: 1")
    assert extract_fields("x\n" * 1_999 + "Phone: 1", None, SPECS).values == {"contact_phone": "1"}


PROSE_SPECS = (
    FieldSpec("company_name", ("Company", "Customer")),
    FieldSpec("contact_name", ("Contact",)),
    FieldSpec("contact_email", ("Email", "Mail")),
    FieldSpec("software_version", ("Version",)),
    FieldSpec("description", ("Issue", "Details")),
)


# Lines from the corpus's bounces, spam and newsletters that the first cut misread.
@pytest.mark.parametrize(
    "line",
    [
        "Mime-Version: 1.0",
        "System Contact: postmaster@example.net",
        "About the Company:\nWe sell things.",
        "MAIL From:<list-admin@example.org> SIZE=1861",
        "Issue#: e13011",
        "PROVANTAGE Customer: jeff@example.com",
        "Full Details:\nhttp://example.cn/detail",
    ],
    ids=["mime-version", "system-contact", "about-the", "smtp-dialogue", "issue-hash",
         "brand-customer", "full-details"],
)  # fmt: skip
def test_words_before_a_one_word_label_must_qualify_it(line: str) -> None:
    assert dict(extract_fields(line, None, PROSE_SPECS).values) == {}


@pytest.mark.parametrize(
    "line",
    ["Office Version: 2", "Primary Contact: Jane", "Zultys version: 2", "Tel.: 2"],
    ids=["office", "primary", "zultys", "tel-dot"],
)
def test_a_qualifier_before_a_one_word_label_is_tolerated(line: str) -> None:
    specs = (*PROSE_SPECS, FieldSpec("contact_phone", ("Tel",)))
    assert len(extract_fields(line, None, specs).values) == 1
