"""parse_subject: the grammar ``Customer – Location – Issue – Priority``, table-driven."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsing import parse_subject
from parsing.subject import (
    DEFAULT_TICKET_TAG,
    clean_subject,
    format_literals,
    read_priority,
    strip_reply_prefixes,
    ticket_tag,
)

NBSP, FIGURE, NARROW = "\u00a0", "\u2007", "\u202f"

# (id, subject, customer, location, issue, priority)
GRAMMAR_CASES = [
    ("en-dash", "Acme – Denver – No dial tone – P1", "Acme", "Denver", "No dial tone", 1),
    ("em-dash", "Acme — Denver — No dial tone — P2", "Acme", "Denver", "No dial tone", 2),
    ("em-dash-unspaced", "Acme—Denver—No dial tone—P2", "Acme", "Denver", "No dial tone", 2),
    ("en-dash-unspaced", "Acme–Denver–No dial tone–P3", "Acme", "Denver", "No dial tone", 3),
    ("spaced-hyphen", "Acme - Denver - No dial tone - P1", "Acme", "Denver", "No dial tone", 1),
    ("spaced-double-hyphen", "Acme -- Denver -- Echo -- P4", "Acme", "Denver", "Echo", 4),
    (
        "nbsp-hyphen",
        f"Acme{NBSP}-{NBSP}Denver{NBSP}-{NBSP}Echo{NBSP}-{NBSP}P2",
        "Acme",
        "Denver",
        "Echo",
        2,
    ),
    (
        "figure-space",
        f"Acme{FIGURE}–{FIGURE}Denver{FIGURE}–{FIGURE}Echo{FIGURE}–{FIGURE}P2",
        "Acme",
        "Denver",
        "Echo",
        2,
    ),
    (
        "narrow-nbsp",
        f"Acme{NARROW}-{NARROW}Denver{NARROW}-{NARROW}Echo{NARROW}-{NARROW}P2",
        "Acme",
        "Denver",
        "Echo",
        2,
    ),
    ("tabs", "Acme\t-\tDenver\t-\tEcho\t-\tP2", "Acme", "Denver", "Echo", 2),
    ("mixed-separators", "Acme – Denver - Echo — P3", "Acme", "Denver", "Echo", 3),
    (
        "inner-hyphens",
        "Smith-Jones LLC – 45-47 Elm Rd – Wi-Fi drops – P2",
        "Smith-Jones LLC",
        "45-47 Elm Rd",
        "Wi-Fi drops",
        2,
    ),
    (
        "issue-keeps-spaced-hyphen",
        "Acme – Denver – Line 2 - no audio – P2",
        "Acme",
        "Denver",
        "Line 2 - no audio",
        2,
    ),
    (
        "issue-keeps-en-dash",
        "Acme – Denver – Line 2 – no audio – P2",
        "Acme",
        "Denver",
        "Line 2 – no audio",
        2,
    ),
    ("no-priority", "Acme – Denver – No dial tone", "Acme", "Denver", "No dial tone", None),
    (
        "issue-not-priority",
        "Acme – Denver – No dial tone – today",
        "Acme",
        "Denver",
        "No dial tone – today",
        None,
    ),
    ("re-prefix", "Re: Acme – Denver – Echo – P1", "Acme", "Denver", "Echo", 1),
    ("RE-space-colon", "RE : Acme – Denver – Echo – P1", "Acme", "Denver", "Echo", 1),
    ("re-counter", "Re[2]: Acme – Denver – Echo – P1", "Acme", "Denver", "Echo", 1),
    (
        "fwd-re-external",
        "Fwd: RE: [EXTERNAL] Acme – Denver – Echo – P1",
        "Acme",
        "Denver",
        "Echo",
        1,
    ),
    ("aw", "AW: Acme – Denver – Echo – P1", "Acme", "Denver", "Echo", 1),
    ("wg-aw", "WG: AW: Acme – Denver – Echo – P1", "Acme", "Denver", "Echo", 1),
    ("sv-vs-antw", "SV: VS: Antw: Acme – Denver – Echo – P1", "Acme", "Denver", "Echo", 1),
    ("fw-r", "FW: R: Acme – Denver – Echo – P1", "Acme", "Denver", "Echo", 1),
    ("spam-tag", "[SPAM] Acme – Denver – Echo – P1", "Acme", "Denver", "Echo", 1),
    ("paren-ext", "(EXT) Acme – Denver – Echo – P1", "Acme", "Denver", "Echo", 1),
    ("ticket-tag-end", "Re: Acme – Denver – Echo – P1 [TKT-000123]", "Acme", "Denver", "Echo", 1),
    ("ticket-tag-middle", "Acme – Denver – Echo [TKT-000123] – P1", "Acme", "Denver", "Echo", 1),
    ("p-space-digit", "Acme – Denver – Echo – P 1", "Acme", "Denver", "Echo", 1),
    ("priority-digit", "Acme – Denver – Echo – Priority 2", "Acme", "Denver", "Echo", 2),
    ("priority-level", "Acme – Denver – Echo – Priority Level 3", "Acme", "Denver", "Echo", 3),
    ("priority-colon", "Acme – Denver – Echo – Priority: 1", "Acme", "Denver", "Echo", 1),
    ("pri", "Acme – Denver – Echo – Pri 2", "Acme", "Denver", "Echo", 2),
    ("prio", "Acme – Denver – Echo – Prio 3", "Acme", "Denver", "Echo", 3),
    ("sev", "Acme – Denver – Echo – Sev 1", "Acme", "Denver", "Echo", 1),
    ("sev-hyphen", "Acme – Denver – Echo – Sev-2", "Acme", "Denver", "Echo", 2),
    ("severity", "Acme – Denver – Echo – Severity 3", "Acme", "Denver", "Echo", 3),
    ("severity-level", "Acme – Denver – Echo – Severity Level 1", "Acme", "Denver", "Echo", 1),
    ("bare-digit", "Acme – Denver – Echo – 2", "Acme", "Denver", "Echo", 2),
    ("digit-zero", "Acme – Denver – Echo – P0", "Acme", "Denver", "Echo", 0),
    ("lower-case-p", "Acme – Denver – Echo – p4", "Acme", "Denver", "Echo", 4),
    ("word-critical", "Acme – Denver – Echo – Critical", "Acme", "Denver", "Echo", 1),
    ("word-urgent-bang", "Acme – Denver – Echo – URGENT!", "Acme", "Denver", "Echo", 1),
    ("word-emergency", "Acme – Denver – Echo – emergency", "Acme", "Denver", "Echo", 1),
    ("word-high", "Acme – Denver – Echo – High", "Acme", "Denver", "Echo", 2),
    ("word-medium", "Acme – Denver – Echo – Medium", "Acme", "Denver", "Echo", 3),
    ("word-normal", "Acme – Denver – Echo – normal", "Acme", "Denver", "Echo", 3),
    ("word-low", "Acme – Denver – Echo – Low", "Acme", "Denver", "Echo", 4),
    ("priority-high", "Acme – Denver – Echo – Priority High", "Acme", "Denver", "Echo", 2),
    ("high-priority", "Acme – Denver – Echo – High Priority", "Acme", "Denver", "Echo", 2),
    ("priority-colon-low", "Acme – Denver – Echo – Priority: Low", "Acme", "Denver", "Echo", 4),
    ("non-ascii", "Müller GmbH – Köln – Störung – P2", "Müller GmbH", "Köln", "Störung", 2),
]


@pytest.mark.parametrize(
    ("subject", "customer", "location", "issue", "priority"),
    [case[1:] for case in GRAMMAR_CASES],
    ids=[case[0] for case in GRAMMAR_CASES],
)
def test_reads_the_grammar(
    subject: str, customer: str, location: str, issue: str, priority: int | None
) -> None:
    parsed = parse_subject(subject)
    assert (parsed.customer, parsed.location, parsed.issue, parsed.priority) == (
        customer,
        location,
        issue,
        priority,
    )
    assert parsed.problem is None
    assert parsed.follows_grammar


# (id, subject, customer, location, issue, priority, words in the problem sentence)
PROBLEM_CASES = [
    ("empty", "", None, None, None, None, "empty"),
    ("only-whitespace", " \t\u00a0 ", None, None, None, None, "empty"),
    ("only-prefixes", "Re: Fwd: [EXTERNAL]", None, None, None, None, "empty"),
    ("no-separators", "Phones are down", None, None, None, None, "separators"),
    ("unspaced-hyphens-only", "Acme-Denver-Echo-P1", None, None, None, None, "separators"),
    ("one-sided-hyphen", "Acme -Denver -Echo", None, None, None, None, "separators"),
    ("two-parts-priority", "Acme – P1", "Acme", None, None, 1, "location or issue"),
    ("two-parts", "Acme – Phones down", "Acme", "Phones down", None, None, "issue"),
    ("three-parts-priority", "Acme – Denver – P1", "Acme", "Denver", None, 1, "issue"),
    ("empty-location", "Acme – – Echo – P2", "Acme", None, "Echo", 2, "location"),
]


@pytest.mark.parametrize(
    ("subject", "customer", "location", "issue", "priority", "words"),
    [case[1:] for case in PROBLEM_CASES],
    ids=[case[0] for case in PROBLEM_CASES],
)
def test_explains_what_is_wrong(
    subject: str,
    customer: str | None,
    location: str | None,
    issue: str | None,
    priority: int | None,
    words: str,
) -> None:
    parsed = parse_subject(subject)
    assert (parsed.customer, parsed.location, parsed.issue, parsed.priority) == (
        customer,
        location,
        issue,
        priority,
    )
    assert parsed.problem is not None
    assert words in parsed.problem
    assert parsed.problem.endswith(".")
    assert not parsed.follows_grammar


CLEAN_CASES = [
    ("nothing-to-remove", "Acme – Denver", "Acme – Denver"),
    ("re-re-re", "Re: RE: re: x", "x"),
    ("fwd-lower", "fwd: x", "x"),
    ("bracket-with-colon-is-content", "[Fwd: Netscape vs. Apache]", "[Fwd: Netscape vs. Apache]"),
    ("list-tag", "Re: [rt-users] HTML mails", "HTML mails"),
    ("ticket-tag", "x [TKT-000123] y", "x y"),
    ("lower-ticket-tag-is-content", "x [tkt-1]", "x [tkt-1]"),
    ("word-starting-with-re", "Replacement handset – x", "Replacement handset – x"),
]


@pytest.mark.parametrize(
    ("subject", "cleaned"), [c[1:] for c in CLEAN_CASES], ids=[c[0] for c in CLEAN_CASES]
)
def test_cleans_prefixes_and_tags(subject: str, cleaned: str) -> None:
    assert clean_subject(subject) == cleaned
    assert parse_subject(subject).cleaned == cleaned


def test_priority_text_is_the_part_it_was_read_from() -> None:
    assert parse_subject("Acme – Denver – Echo – Sev 1").priority_text == "Sev 1"
    assert parse_subject("Acme – Denver – Echo").priority_text is None


def test_aliases_add_words() -> None:
    parsed = parse_subject("Acme – Denver – Echo – Outage", {"outage": 1})
    assert (parsed.issue, parsed.priority) == ("Echo", 1)


def test_aliases_override_default_words() -> None:
    assert parse_subject("Acme – Denver – Echo – High", {"high": 1}).priority == 1


def test_aliases_match_the_part_without_punctuation() -> None:
    assert parse_subject("Acme – Denver – Echo – Outage!!", {"outage": 1}).priority == 1


def test_unknown_word_is_part_of_the_issue() -> None:
    parsed = parse_subject("Acme – Denver – Echo – Outage")
    assert (parsed.issue, parsed.priority) == ("Echo – Outage", None)


@pytest.mark.parametrize(
    ("text", "level"),
    [("P9", 9), ("Priority #2", 2), ("sev.1", 1), ("P10", None), ("Priority", None), ("", None)],
    ids=["p9", "hash", "dot", "two-digits", "word-only", "empty"],
)
def test_reads_priority_forms(text: str, level: int | None) -> None:
    assert read_priority(text) == level


# --- properties ---------------------------------------------------------------------------

_WORD = st.text(
    alphabet=st.characters(categories=["L", "Nd"], exclude_characters="–—"),
    min_size=1,
    max_size=8,
)
_HYPHENATED = st.lists(_WORD, min_size=1, max_size=3).map("-".join)
_PART = st.lists(_HYPHENATED, min_size=1, max_size=4).map(" ".join)
_SEPARATOR = st.sampled_from(
    [" – ", " — ", "–", "—", " - ", " -- ", f"{NBSP}-{NBSP}", f"{NARROW}–{NARROW}", "\t-\t"]
)
_PRIORITY_FORMS = st.sampled_from(
    [
        ("P{n}", None),
        ("P {n}", None),
        ("Priority {n}", None),
        ("Priority Level {n}", None),
        ("Priority: {n}", None),
        ("Pri {n}", None),
        ("Prio {n}", None),
        ("Sev {n}", None),
        ("Sev-{n}", None),
        ("Severity {n}", None),
        ("Severity Level {n}", None),
        ("{n}", None),
        ("P-{n}", None),
        ("(P{n})", None),
        ("[P{n}]", None),
        ("Priorität {n}", None),
        ("Priorité {n}", None),
        ("Prioridad {n}", None),
        ("Priority - High", 2),
        ("Prio: Urgent", 1),
        ("Priorité haute", 2),
        ("Prioridad alta", 2),
        ("Hohe Priorität", 2),
        ("dringend", 1),
        ("Critical", 1),
        ("urgent", 1),
        ("HIGH", 2),
        ("High Priority", 2),
        ("Priority Medium", 3),
        ("low", 4),
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_never_raises(subject: str) -> None:
    parsed = parse_subject(subject)
    assert parsed.problem is None or parsed.problem.endswith(".")


@settings(max_examples=200, deadline=None)
@given(
    customer=_PART,
    location=_PART,
    issue=_PART,
    separator=_SEPARATOR,
    form=_PRIORITY_FORMS,
    level=st.integers(min_value=0, max_value=9),
)
def test_round_trip(
    customer: str,
    location: str,
    issue: str,
    separator: str,
    form: tuple[str, int | None],
    level: int,
) -> None:
    template, word_level = form
    priority = template.format(n=level)
    subject = separator.join([customer, location, issue, priority])
    parsed = parse_subject(subject)
    assert (parsed.customer, parsed.location, parsed.issue) == (customer, location, issue)
    assert parsed.priority == (word_level if word_level is not None else level)
    assert parsed.priority_text == priority
    assert parsed.problem is None


@pytest.mark.parametrize(
    "subject",
    [
        "a" + " " * 500_000 + "b",
        "a" + NBSP * 500_000 + "-",
        "x – " * 200_000,
        "Re: " * 200_000 + "x",
        " [AB-1]" * 200_000,
    ],
    ids=["space-run", "nbsp-run", "many-parts", "many-prefixes", "many-ticket-tags"],
)
@pytest.mark.timeout(60)
def test_long_subjects_are_linear(subject: str) -> None:
    # A guard against super-linear blow-up, not a speed test: the input is large enough that a
    # quadratic path takes minutes, and the generous timeout (not a stopwatch) catches that.
    assert isinstance(parse_subject(subject).cleaned, str)


# (id, number format, subject, priority, issue)
TAG_CASES = [
    ("default", "TKT-{:06d}", "Re: Acme – Denver – Echo – P1 [TKT-000012]", 1, "Echo"),
    ("inc-seven-digits", "INC{:07d}", "Re: Acme – Denver – Echo – P1 [INC0000012]", 1, "Echo"),
    ("one-letter-prefix", "T-{:06d}", "AW: Acme – Denver – Echo – P2 [T-000012]", 2, "Echo"),
    ("lower-case-prefix", "case-{:05d}", "Acme – Denver – Echo – P3 [case-00012]", 3, "Echo"),
    ("suffix", "{:04d}/NOC", "Acme – Denver – Echo [0012/NOC] – P1", 1, "Echo"),
    ("spaces-inside", "INC{:07d}", "Acme – Denver – Echo – P1 [ INC0000012 ]", 1, "Echo"),
    ("escaped-braces", "T{{X}}-{:04d}", "Re: Acme – Denver – Echo – P2 [T{X}-0012]", 2, "Echo"),
]


@pytest.mark.parametrize(
    ("number_format", "subject", "priority", "issue"),
    [c[1:] for c in TAG_CASES],
    ids=[c[0] for c in TAG_CASES],
)
def test_the_configured_ticket_tag_is_removed_before_reading(
    number_format: str, subject: str, priority: int, issue: str
) -> None:
    parsed = parse_subject(subject, ticket_tag=ticket_tag(number_format))
    assert (parsed.customer, parsed.location, parsed.issue) == ("Acme", "Denver", issue)
    assert parsed.priority == priority
    assert parsed.problem is None


@pytest.mark.parametrize(
    ("number_format", "subject", "kept"),
    [
        ("INC{:07d}", "x [TKT-000012]", "x [TKT-000012]"),
        ("TKT-{:06d}", "x [INC0000012]", "x [INC0000012]"),
        ("case-{:05d}", "x [CASE-00012]", "x [CASE-00012]"),
    ],
    ids=["other-format-is-content", "default-ignores-inc", "other-letter-case-is-content"],
)
def test_only_our_own_tag_is_removed(number_format: str, subject: str, kept: str) -> None:
    assert clean_subject(subject, ticket_tag(number_format)) == kept


def test_the_default_tag_is_the_default_number_format() -> None:
    assert DEFAULT_TICKET_TAG == ticket_tag("TKT-{:06d}")
    assert parse_subject("Acme – Denver – Echo – P1 [TKT-000012]").priority == 1


@pytest.mark.parametrize(
    ("number_format", "subject", "number"),
    [
        ("TKT-{:06d}", "Re: [TKT-000123] add me", "TKT-000123"),
        ("TKT-{:06d}", "Re: [tkt-000123] typed by hand", "TKT-000123"),
        ("case-{:05d}", "Re: x [CASE-00012]", "case-00012"),
        ("INC{:07d}", "Re: x [ INC0000012 ]", "INC0000012"),
        ("INC{:07d}", "Re: x [TKT-000012]", None),
        ("TKT-{:06d}", "Re: no tag", None),
        ("T{{X}}-{:04d}", "Re: x [T{X}-0005]", "T{X}-0005"),
    ],
    ids=[
        "default",
        "any-letter-case",
        "spelt-as-we-write-it",
        "spaces",
        "other-format",
        "none",
        "escaped-braces",
    ],
)
def test_the_tag_names_the_ticket_in_our_spelling(
    number_format: str, subject: str, number: str | None
) -> None:
    assert ticket_tag(number_format).number_in(subject) == number


@pytest.mark.parametrize(
    ("number_format", "literals"),
    [
        ("TKT-{:06d}", ("TKT-", "")),
        ("{:04d}/NOC", ("", "/NOC")),
        ("T{{X}}-{:04d}", ("T{X}-", "")),
        ("{{{:d}}}", ("{", "}")),
    ],
    ids=["prefix", "suffix", "escaped-brace-prefix", "escaped-braces-around"],
)
def test_format_literals_read_the_format_as_str_format_does(
    number_format: str, literals: tuple[str, str]
) -> None:
    assert format_literals(number_format) == literals
    prefix, suffix = literals
    assert number_format.format(7).startswith(prefix)
    assert number_format.format(7).endswith(suffix)


@pytest.mark.parametrize(
    "number_format", ["TKT", "{:d}-{:d}", "{0}{0}"], ids=["no-field", "two-fields", "twice"]
)
def test_a_format_without_exactly_one_number_is_refused(number_format: str) -> None:
    with pytest.raises(ValueError, match="exactly one replacement field"):
        format_literals(number_format)


@pytest.mark.timeout(60)
def test_many_of_our_tags_are_linear() -> None:
    # Large enough that a quadratic path takes minutes; the timeout, not a stopwatch, guards.
    assert parse_subject(" [TKT-000001]" * 200_000 + "x").cleaned == "x"


PREFIX_CASES = [
    ("counter", "RE[2]: x", "x"),
    ("parenthesised-counter", "Re(3): x", "x"),
    ("repeated", "Re: Re: x", "x"),
    ("german", "AW: x", "x"),
    ("forward", "Fwd: x", "x"),
    ("mixed", "Fwd: AW: RE : x", "x"),
    ("tag-after-prefix-stays", "RE: [TKT-000001] x", "[TKT-000001] x"),
    ("word-starting-with-re", "Replacement handset", "Replacement handset"),
    ("none", "x", "x"),
]


@pytest.mark.parametrize(
    ("subject", "stripped"), [c[1:] for c in PREFIX_CASES], ids=[c[0] for c in PREFIX_CASES]
)
def test_strip_reply_prefixes(subject: str, stripped: str) -> None:
    assert strip_reply_prefixes(subject) == stripped


_GLUED_FORMS = st.sampled_from(["P{n}", "(P{n})", "[P{n}]", "P-{n}", "(Priority {n})"])


@settings(max_examples=200, deadline=None)
@given(
    customer=_PART,
    location=_PART,
    issue=_PART,
    form=_GLUED_FORMS,
    level=st.integers(min_value=1, max_value=9),
    tag=st.sampled_from(["", " [TKT-000042]", " [CASE#7781]"]),
)
def test_round_trip_priority_glued_to_the_issue(
    customer: str, location: str, issue: str, form: str, level: int, tag: str
) -> None:
    priority = form.format(n=level)
    parsed = parse_subject(f"{customer} – {location} – {issue} {priority}{tag}")
    assert (parsed.customer, parsed.location, parsed.issue) == (customer, location, issue)
    assert (parsed.priority, parsed.priority_text, parsed.problem) == (level, priority, None)
