"""parse_subject: the cases mutation testing (make mutation) found unpinned, table-driven.

The customer-facing problem sentences word for word, priority punctuation ("P1.", "(P1)"),
the 40-character limit on a priority part, and the sender's own spacing inside the issue.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsing import parse_subject
from parsing.subject import GRAMMAR, read_priority

EXPECTED = f"; expected '{GRAMMAR}'."

# (id, subject, the problem sentence the sender is shown)
PROBLEM_TEXT_CASES = [
    ("empty", "", "The subject is empty."),
    ("only-a-prefix", "Re:", "The subject is empty."),
    ("no-separator", "Phones down", "The subject has no ' – ' separators" + EXPECTED),
    ("all-three-missing", "– –", "The subject names no customer, location or issue" + EXPECTED),
    ("customer-missing", "– Denver – Echo", "The subject names no customer" + EXPECTED),
    ("location-missing", "Acme – – Echo – P2", "The subject names no location" + EXPECTED),
    ("issue-missing", "Acme – Denver – P1", "The subject names no issue" + EXPECTED),
    ("two-missing", "Acme – P1", "The subject names no location or issue" + EXPECTED),
    (
        "customer-and-issue",
        " – Denver –  – P3",
        "The subject names no customer or issue" + EXPECTED,
    ),
]


@pytest.mark.parametrize(
    ("subject", "problem"),
    [case[1:] for case in PROBLEM_TEXT_CASES],
    ids=[case[0] for case in PROBLEM_TEXT_CASES],
)
def test_problem_sentence_is_exact(subject: str, problem: str) -> None:
    assert parse_subject(subject).problem == problem


# (id, priority part, level): punctuation around a priority does not hide it.
PUNCTUATION_CASES = [
    ("trailing-dot", "P1.", 1),
    ("parentheses", "(P1)", 1),
    ("brackets", "[P2]", 2),
    ("bang", "P3!", 3),
    ("dotted-prefix", "Prio. 2", 2),
    ("hash", "P#3", 3),
    ("word-in-parentheses", "(High)", 2),
    ("qualified-word-in-parentheses", "Priority: (High)", 2),
    ("comma-before-qualifier", "High, priority", 2),
    ("spanish-question-marks", "¿Urgent?", 1),
    ("ellipsis", "Urgent…", 1),
]


@pytest.mark.parametrize(
    ("text", "level"),
    [case[1:] for case in PUNCTUATION_CASES],
    ids=[case[0] for case in PUNCTUATION_CASES],
)
def test_priority_punctuation(text: str, level: int) -> None:
    assert read_priority(text) == level
    parsed = parse_subject(f"Acme – Denver – Echo – {text}")
    assert (parsed.issue, parsed.priority, parsed.priority_text) == ("Echo", level, text)


@pytest.mark.parametrize(
    ("text", "level"),
    [("Priority: Critical" + "!" * 22, 1), ("Priority: Critical" + "!" * 23, None)],
    ids=["40-chars-is-a-priority", "41-chars-is-an-issue"],
)
def test_priority_part_length_limit(text: str, level: int | None) -> None:
    assert read_priority(text) == level


# (id, issue as typed): the issue keeps the separators and spacing between its parts.
ISSUE_SPACING_CASES = [
    ("double-spaces", "Line 2  –  no audio"),
    ("empty-part", "Line 2 – – no audio"),
    ("tab-and-space", "Line 2\t– no audio"),
    ("unspaced-em-dash", "Line 2—no audio"),
]


@pytest.mark.parametrize(
    "issue", [c[1] for c in ISSUE_SPACING_CASES], ids=[c[0] for c in ISSUE_SPACING_CASES]
)
def test_issue_keeps_the_senders_spacing(issue: str) -> None:
    parsed = parse_subject(f"Acme – Denver – {issue} – P2")
    assert (parsed.customer, parsed.location, parsed.issue, parsed.priority) == (
        "Acme",
        "Denver",
        issue,
        2,
    )


@pytest.mark.parametrize(
    "subject", ["Acme –", "Acme – Denver – Echo –"], ids=["two-parts", "four-parts"]
)
def test_trailing_separator_is_read_not_raised(subject: str) -> None:
    parsed = parse_subject(subject)
    assert parsed.customer == "Acme"
    assert parsed.priority is None


_WORD = st.text(alphabet="abcXYZ019äß", min_size=1, max_size=6)
_ISSUE_SEPARATOR = st.sampled_from([" – ", "–", " — ", " - ", "  –  ", " -- ", "\t–\t", " – – "])


@settings(max_examples=200, deadline=None)
@given(
    first=_WORD,
    rest=st.lists(st.tuples(_ISSUE_SEPARATOR, _WORD), max_size=3),
)
def test_issue_is_the_exact_text_between_location_and_priority(
    first: str, rest: list[tuple[str, str]]
) -> None:
    issue = first + "".join(separator + word for separator, word in rest)
    parsed = parse_subject(f"Acme – Denver – {issue} – P4")
    assert (parsed.issue, parsed.priority) == (issue, 4)
