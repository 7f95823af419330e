"""Subjects as people write them (issue 10 item 7, and priorities in other languages).

Each case states what a careful NOC operator reads from the subject: customer, location,
issue, priority, and whether the sender is told something is wrong with it.
"""

from __future__ import annotations

import pytest

from parsing import parse_subject

# (id, subject, customer, location, issue, priority, a problem is reported)
FORM_CASES = [
    (
        "parenthesised",
        "Acme – Denver – Phones down (P1)",
        "Acme",
        "Denver",
        "Phones down",
        1,
        False,
    ),
    ("bracketed", "Acme – Denver – Phones down [P2]", "Acme", "Denver", "Phones down", 2, False),
    ("own-part-in-brackets", "Acme – Denver – Echo – [P2]", "Acme", "Denver", "Echo", 2, False),
    ("p-hyphen-1", "Acme – Denver – Phones down – P-1", "Acme", "Denver", "Phones down", 1, False),
    (
        "priority-hyphen-high",
        "Acme – Denver – Echo – Priority - High",
        "Acme",
        "Denver",
        "Echo",
        2,
        False,
    ),
    (
        "priority-en-dash-1",
        "Acme – Denver – Echo – Priority – 1",
        "Acme",
        "Denver",
        "Echo",
        1,
        False,
    ),
    (
        "prio-colon-urgent",
        "Acme – Denver – Echo – Prio: Urgent",
        "Acme",
        "Denver",
        "Echo",
        1,
        False,
    ),
    ("glued-p1", "Acme – Denver – Phones down P1", "Acme", "Denver", "Phones down", 1, False),
    (
        "glued-after-comma",
        "Acme – Denver – Phones down, P1",
        "Acme",
        "Denver",
        "Phones down",
        1,
        False,
    ),
    ("glued-prio-word", "Acme – Denver – Echo Prio: High", "Acme", "Denver", "Echo", 2, False),
    (
        "trailing-our-tag",
        "RE: Acme – Denver – Echo – P1 [TKT-000012]",
        "Acme",
        "Denver",
        "Echo",
        1,
        False,
    ),
    (
        "trailing-other-tag",
        "Acme – Denver – Echo – P3 [CASE-4711]",
        "Acme",
        "Denver",
        "Echo",
        3,
        False,
    ),
    ("glued-and-tag", "Acme – Denver – Echo (P2) [TKT-000012]", "Acme", "Denver", "Echo", 2, False),
    (
        "de-prioritaet-1",
        "Müller GmbH – Köln – Störung – Priorität 1",
        "Müller GmbH",
        "Köln",
        "Störung",
        1,
        False,
    ),
    (
        "de-hohe-prioritaet",
        "Müller GmbH – Köln – Störung – Hohe Priorität",
        "Müller GmbH",
        "Köln",
        "Störung",
        2,
        False,
    ),
    (
        "de-dringend",
        "Müller GmbH – Köln – Störung – dringend",
        "Müller GmbH",
        "Köln",
        "Störung",
        1,
        False,
    ),
    (
        "fr-priorite-haute",
        "Dupont SA – Lyon – Pas de tonalité – Priorité haute",
        "Dupont SA",
        "Lyon",
        "Pas de tonalité",
        2,
        False,
    ),
    (
        "fr-priorite-basse",
        "Dupont SA – Lyon – Écho – priorité basse",
        "Dupont SA",
        "Lyon",
        "Écho",
        4,
        False,
    ),
    (
        "es-prioridad-alta",
        "García SL – Madrid – Sin tono – Prioridad alta",
        "García SL",
        "Madrid",
        "Sin tono",
        2,
        False,
    ),
    (
        "es-prioridad-1",
        "García SL – Madrid – Sin tono – Prioridad 1",
        "García SL",
        "Madrid",
        "Sin tono",
        1,
        False,
    ),
    (
        "es-urgente",
        "García SL – Madrid – Sin tono – Urgente",
        "García SL",
        "Madrid",
        "Sin tono",
        1,
        False,
    ),
    # "Alta" alone may be a place: only next to "prioridad" is it a priority.
    (
        "es-bare-alta-is-not-a-priority",
        "García SL – Madrid – Sin tono – Alta",
        "García SL",
        "Madrid",
        "Sin tono – Alta",
        None,
        False,
    ),
    # The known bug: a trailing separator left "Echo –" as the issue and said nothing.
    ("trailing-separator", "Acme – Denver – Echo –", "Acme", "Denver", "Echo", None, True),
    # One separator missing: best effort (the issue is kept), and the sender is told.
    (
        "one-separator-missing",
        "Acme – Denver Phones down – P1",
        "Acme",
        None,
        "Denver Phones down",
        1,
        True,
    ),
    # A bare number or word at the end of an issue is the issue's own.
    (
        "line-2-is-the-issue",
        "Acme – Denver – Echo on line 2",
        "Acme",
        "Denver",
        "Echo on line 2",
        None,
        False,
    ),
    (
        "volume-too-high-is-the-issue",
        "Acme – Denver – Volume too high",
        "Acme",
        "Denver",
        "Volume too high",
        None,
        False,
    ),
    (
        "bracketed-number-is-the-issue",
        "Acme – Denver – Echo on trunk (2)",
        "Acme",
        "Denver",
        "Echo on trunk (2)",
        None,
        False,
    ),
]


@pytest.mark.parametrize(
    ("subject", "customer", "location", "issue", "priority", "problem"),
    [case[1:] for case in FORM_CASES],
    ids=[case[0] for case in FORM_CASES],
)
def test_subject_forms(
    subject: str,
    customer: str,
    location: str | None,
    issue: str,
    priority: int | None,
    problem: bool,
) -> None:
    parsed = parse_subject(subject)
    assert (parsed.customer, parsed.location, parsed.issue, parsed.priority) == (
        customer,
        location,
        issue,
        priority,
    )
    assert (parsed.problem is not None) is problem, parsed.problem


def test_one_separator_missing_says_what_was_read() -> None:
    problem = parse_subject("Acme – Denver Phones down – P1").problem or ""
    assert "one ' – ' separator too few" in problem and "'Denver Phones down'" in problem


def test_a_trailing_separator_is_named_in_the_problem() -> None:
    assert "ends in a separator" in (parse_subject("Acme – Denver – Echo –").problem or "")


def test_policy_aliases_still_win_over_glued_forms() -> None:
    parsed = parse_subject("Acme – Denver – Phones down (outage)", {"outage": 1})
    assert (parsed.issue, parsed.priority, parsed.priority_text) == ("Phones down", 1, "(outage)")
