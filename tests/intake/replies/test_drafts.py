"""A confirmation drafted before its ticket has a number is, once numbered, byte for byte
the confirmation rendered with that number (intake.replies.render.Draft, issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.pipeline.assess import Assessment, assess
from intake.pipeline.identity import Identity
from intake.policy.policy import PolicyBook, load_policy
from intake.replies.render import (
    Draft,
    Drafting,
    Sender,
    draft_confirmation,
    make_template_environment,
    render_confirmation,
    template_directory,
)
from intake.replies.wire import alternative_body
from parsing import parse_message

MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
IDENTITY = Identity(("support@example.com",), "support@example.com", (), ("provider.example",))
SENDER = Sender("support@example.com", "Support – NOC", ("noc@provider.example",), "x-loop")
ENV = make_template_environment()
BOOK = PolicyBook(load_policy("managed-pbx"))
COMPLETE_BODY = (
    "Company Name: Acme Corp\nSite Address: 123 Main St, Denver CO\n"
    "Contact Name: Jane Doe\nContact Phone Number: 303-555-0142\n"
)


def assessed(name: str, subject: str, body: str) -> Assessment:
    message = EmailMessage()
    message["From"] = Address(name, addr_spec="jane@acme.example")
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = "<a1@acme.example>"
    message.set_content(body)
    raw = message.as_bytes(policy=default)
    return assess(parse_message(raw), "jane@acme.example", BOOK, IDENTITY, MONDAY)


def drafting(length: int = len("TKT-000001")) -> Drafting:
    return Drafting(SENDER, template_directory(ENV), length)


def both(assessment: Assessment, draft: Draft, number: str) -> tuple[bytes, bytes]:
    """The confirmation made from ``draft`` and made afresh, each boundary made the same."""
    kwargs = {"number": number, "message_id": "c1@example.com", "sender": SENDER, "now": MONDAY}
    drafted = render_confirmation(ENV, assessment, draft=draft, **kwargs)  # type: ignore[arg-type]
    fresh = render_confirmation(ENV, assessment, **kwargs)  # type: ignore[arg-type]
    return same_boundary(drafted.raw), same_boundary(fresh.raw)


def boundary_of(raw: bytes) -> bytes:
    return raw.split(b'boundary="', 1)[1].split(b'"', 1)[0]


def same_boundary(raw: bytes) -> bytes:
    return raw.replace(boundary_of(raw), b"=_0123456789abcdef01234567")


# (id, From name, Subject, body): the shapes real reports have (issue 11's bench message,
# non-ASCII names and subjects, lines too long for 7bit that go quoted-printable, base64).
CASES = [
    (
        "complete-ascii",
        "Jane Doe",
        "Acme Corp – 123 Main St, Denver – No dial tone – P1",
        COMPLETE_BODY,
    ),
    ("missing-details", "Jane Doe", "Acme – Denver – Echo – P2", "It echoes.\n"),
    ("non-ascii", "Jürgen Müller", "Acme – Zürich – Störung der Telefonanlage – P1", COMPLETE_BODY),
    ("long-subject", "Jane", "Acme – Denver – " + "very " * 40 + "long – P3", COMPLETE_BODY),
    ("cjk", "山田太郎", "Acme – 東京 – 電話が繋がらない – P1", "電話が繋がらない。\n" * 3),
]


@pytest.mark.parametrize(
    ("name", "subject", "body"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_numbered_draft_is_the_confirmation_rendered_with_the_number(
    name: str, subject: str, body: str
) -> None:
    assessment = assessed(name, subject, body)
    draft = draft_confirmation(assessment, drafting())
    drafted, fresh = both(assessment, draft, "TKT-000042")
    assert drafted == fresh
    assert b"TKT-000042" in drafted and draft.placeholder.encode() not in drafted


def test_the_bench_message_is_numbered_by_the_swap() -> None:
    """The swap, not the fallback, numbers a complete report's confirmation: else the
    lock would hold the templates again (the point of drafting)."""
    assessment = assessed("Jane Doe", CASES[0][2], COMPLETE_BODY)
    draft = draft_confirmation(assessment, drafting())
    assert draft.occurrences >= 4  # the number's places in the two templates
    assert draft.numbered("TKT-000042") is not None


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("TKT-0000042", "longer than the placeholder"),
        ("TKT-00042", "shorter than the placeholder"),
        ("T&K-000042", "HTML escapes it"),
        ("TKT=000042", "quoted-printable escapes it"),
    ],
    ids=["longer", "shorter", "html-special", "qp-special"],
)
def test_a_number_the_swap_cannot_promise_renders_afresh(number: str, why: str) -> None:
    assessment = assessed("Jane Doe", CASES[0][2], COMPLETE_BODY)
    draft = draft_confirmation(assessment, drafting())
    assert draft.numbered(number) is None, why
    drafted, fresh = both(assessment, draft, number)
    assert drafted == fresh  # rendered afresh
    assert number in parse_message(drafted).subject


def test_a_base64_body_renders_afresh() -> None:
    """A part that is mostly non-ASCII goes base64 (RFC 2045 §6.8), where the placeholder
    cannot be found: the count says so, and the caller renders again."""
    placeholder = drafting().placeholder()
    plain = f"Ticket {placeholder}\n" + "電話" * 300 + "\n"
    body = alternative_body(plain, f"<p>{placeholder}</p>\n")
    assert b"Content-Transfer-Encoding: base64" in body.data
    assert Draft(placeholder, body, 2).numbered("TKT-000042") is None


def test_a_soft_line_break_inside_the_placeholder_stays_inside_the_number() -> None:
    """Quoted-printable breaks a long line where it reaches 76 characters, inside the
    placeholder if it stands there: the number is broken at the same place."""
    placeholder = drafting().placeholder()
    line = "x" * 70 + placeholder + " é"  # the é makes the part quoted-printable
    body = alternative_body(line + "\n", "<p>x</p>\n")
    assert placeholder.encode() not in body.data  # split by a soft break
    numbered = Draft(placeholder, body, 1).numbered("TKT-000042")
    assert numbered is not None
    fresh = alternative_body(line.replace(placeholder, "TKT-000042") + "\n", "<p>x</p>\n")
    assert numbered.data == fresh.data.replace(fresh.boundary.encode(), numbered.boundary.encode())


text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
    subject=text,
    body=text,
    ticket=st.integers(min_value=1, max_value=999_999),
)
def test_any_drafted_confirmation_numbers_to_the_fresh_one(
    name: str, subject: str, body: str, ticket: int
) -> None:
    assessment = assessed(name.strip() or "Jane", subject, body + "\n" + COMPLETE_BODY)
    if assessment.reply_address is None:
        return
    draft = draft_confirmation(assessment, drafting())
    drafted, fresh = both(assessment, draft, f"TKT-{ticket:06d}")
    assert drafted == fresh
