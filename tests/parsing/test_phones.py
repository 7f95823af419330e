"""parsing.phones: the contact's number when no ``Phone:`` line gives it (issue 10 item 4).

One case per client shape (signature blocks as Outlook, Gmail, Thunderbird, iPhone and
Android write them, a sentence of the new text), and the numbers a careful operator
would never call back: quoted history, a call example's calling/called number, a number
from a sentence about a call made, a fax line.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsing import extract_fields, parse_message, report_text
from parsing.phones import contact_phone, find_contact_phone
from parsing.types import PhoneFound
from tests.conftest import make_mail

REPORT = "The phones in the Denver office are down since 08:10, nobody can call out.\n"


def phone_of(body: str, region: str = "US", subject: str | None = None) -> PhoneFound | None:
    raw = make_mail(body=body) if subject is None else make_mail(subject=subject, body=body)
    message = parse_message(raw)
    free_text = extract_fields(report_text(message), message.body_html, ()).free_text
    return contact_phone(message, free_text, region)


# (id, body, expected number, where it was found)
FOUND_CASES = [
    (
        "sentence-cell",
        f"{REPORT}Please call me on my cell at 303-555-0142.\n\nThanks,\nJane\n",
        "+1 303-555-0142",
        "sentence",
    ),
    (
        "sentence-wins-over-signature",
        f"{REPORT}You can reach me at (720) 555-0111 all day.\n\nBest,\nJane Doe\n"
        "Direct: +1 303 555 0100\n",
        "+1 720-555-0111",
        "sentence",
    ),
    (
        "outlook-signature-direct",
        f"{REPORT}\nThanks,\nJane Doe\nNetwork Manager | Acme Corp\nDirect: +1 (303) 555-0100\n"
        "Mobile 720.555.0111\n",
        "+1 303-555-0100",
        "signature",
    ),
    (
        "gmail-dash-dash-signature",
        f"{REPORT}\n--\nJane Doe\nAcme Corp\nT +1 212 555 0199 | F +1 212 555 0198\n",
        "+1 212-555-0199",
        "signature",
    ),
    (
        "thunderbird-signature-bare-number",
        f"{REPORT}\n-- \nJane Doe, Acme Corp\n+1 303 555 0100\n",
        "+1 303-555-0100",
        "signature",
    ),
    (
        "iphone-mobile-label",
        f"{REPORT}\nJane\nM: 720-555-0111\n\nSent from my iPhone\n",
        "+1 720-555-0111",
        "signature",
    ),
    (
        "android-cell",
        f"{REPORT}\nJane Doe\nCell 720 555 0111\n\nSent from my Android device\n",
        "+1 720-555-0111",
        "signature",
    ),
    (
        "german-sentence",
        f"{REPORT}Rufen Sie mich bitte an: meine Handynummer ist +49 151 23456789.\n",
        "+49 1512 3456789",
        "sentence",
    ),
    (
        "fax-skipped-for-the-phone",
        f"{REPORT}\nJane Doe\nFax: 303-555-0177\nPhone: see below\nTel. 303-555-0100\n",
        "+1 303-555-0100",
        "signature",
    ),
]


@pytest.mark.parametrize(
    ("body", "number", "found_in"),
    [c[1:] for c in FOUND_CASES],
    ids=[c[0] for c in FOUND_CASES],
)
def test_finds_the_contacts_number(body: str, number: str, found_in: str) -> None:
    found = phone_of(body)
    assert found is not None
    assert (found.number, found.found_in) == (number, found_in)


NOT_FOUND_CASES = [
    (
        "quoted-history",
        f"{REPORT}\nOn Mon, Nov 23, 2026 at 8:20 AM Bob <bob@acme.example> wrote:\n"
        "> call me at 212-555-0199\n> Direct: +1 212 555 0100\n",
    ),
    (
        "call-example-block",
        f"{REPORT}Call Example 1:\nDate/Time: 2026-11-22 08:15 MST\n"
        "Calling Number: +1 303 555 0100\nCalled Number: +1 720 555 0199\n",
    ),
    ("call-made-sentence", f"{REPORT}I called 720-555-0199 from my desk and heard silence.\n"),
    ("calls-to-sentence", f"{REPORT}Calls to +1 720 555 0199 fail with a fast busy.\n"),
    ("fax-only", f"{REPORT}\nJane Doe\nFax: 303-555-0177\n"),
    ("serial-that-looks-like-a-number", f"{REPORT}Serial: 1234567890\n"),
    ("number-in-prose-without-callback", f"{REPORT}Our main line 303-555-0100 is dead.\n"),
]


@pytest.mark.parametrize(
    "body", [c[1] for c in NOT_FOUND_CASES], ids=[c[0] for c in NOT_FOUND_CASES]
)
def test_never_a_number_nobody_gave_to_be_called_on(body: str) -> None:
    assert phone_of(body) is None


def test_the_default_region_reads_national_numbers() -> None:
    body = f"{REPORT}\n--\nJan Müller\nTel.: 030 1234567\n"
    found = phone_of(body, region="DE")
    assert found is not None and found.e164 == "+49301234567"
    assert phone_of(body, region="US") is None  # not a valid US number


def test_a_forward_reads_the_forwarded_senders_signature() -> None:
    body = (
        "FYI\n\nBob\nDirect: +1 212 555 0100\n\n---------- Forwarded message ---------\n"
        "From: Jane <jane@acme.example>\nDate: Mon\nSubject: x\nTo: bob@acme.example\n\n"
        f"{REPORT}\nThanks,\nJane\nMobile: 720-555-0111\n"
    )
    found = phone_of(body, subject="Fwd: x")
    assert found is not None and found.number == "+1 720-555-0111"


def test_hostile_text_finds_nothing_and_never_raises() -> None:
    assert find_contact_phone("call me at " + "9" * 5000, "") is None
    assert find_contact_phone("", "\x00" * 100, "ZZ") is None


# --- property: quoted history or a signature never changes the number from the new text --

_FILLER = st.text(alphabet="abcdefghij klmnop,.", min_size=1, max_size=40).filter(str.strip)
_NUMBERS = st.sampled_from(
    ["212-555-0199", "+1 (415) 555-0123", "720.555.0111", "+44 20 7946 0958"]
)


@settings(max_examples=60, deadline=None)
@given(
    signature_number=_NUMBERS,
    quoted_number=_NUMBERS,
    filler=st.lists(_FILLER, max_size=3),
    with_signature=st.booleans(),
    with_quote=st.booleans(),
)
def test_history_or_signature_never_change_the_phone_from_the_new_text(
    signature_number: str,
    quoted_number: str,
    filler: list[str],
    with_signature: bool,
    with_quote: bool,
) -> None:
    new_text = f"{REPORT}" + "".join(f"{line}\n" for line in filler)
    new_text += "Please call me back at 303-555-0142.\n"
    body = new_text
    if with_signature:
        body += f"\nThanks,\nJane Doe\nDirect: {signature_number}\n"
    if with_quote:
        body += (
            "\nOn Mon, Nov 23, 2026 at 8:20 AM Bob <bob@acme.example> wrote:\n"
            f"> call me at {quoted_number}\n"
        )
    found = phone_of(body)
    assert found is not None
    assert (found.e164, found.found_in) == ("+13035550142", "sentence")
