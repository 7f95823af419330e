"""The subject of our replies: one ``Re:``, our ticket tag once, at the end."""

from __future__ import annotations

import pytest

from intake.replies.render import reply_subject

# (id, the customer's subject, our reply's subject)
SUBJECT_CASES = [
    ("plain", "Acme – Denver – Echo – P1", "Re: Acme – Denver – Echo – P1 [TKT-000001]"),
    ("counter", "RE[2]: x", "Re: x [TKT-000001]"),
    ("parenthesised-counter", "Re(2): x", "Re: x [TKT-000001]"),
    ("repeated", "Re: Re: x", "Re: x [TKT-000001]"),
    ("german", "AW: x", "Re: x [TKT-000001]"),
    ("forward", "Fwd: x", "Re: x [TKT-000001]"),
    ("our-tag-first", "RE: [TKT-000001] x", "Re: x [TKT-000001]"),
    ("our-tag-last", "Re: x [TKT-000001]", "Re: x [TKT-000001]"),
    ("prefix-after-our-tag", "RE: [TKT-000001] Re: x", "Re: x [TKT-000001]"),
    ("other-tag-kept", "Re: [EXTERNAL] x", "Re: [EXTERNAL] x [TKT-000001]"),
    ("word-starting-with-re", "Replacement handset", "Re: Replacement handset [TKT-000001]"),
    ("only-prefixes", "Re: Fwd:", "Your support request [TKT-000001]"),
    ("header-injection", "x\r\nBcc: a@b", "Re: x Bcc: a@b [TKT-000001]"),
]


@pytest.mark.parametrize(
    ("original", "expected"), [c[1:] for c in SUBJECT_CASES], ids=[c[0] for c in SUBJECT_CASES]
)
def test_reply_subject_has_one_re_and_one_tag(original: str, expected: str) -> None:
    subject = reply_subject(original, "TKT-000001")
    assert subject == expected
    assert subject.count("[TKT-000001]") == 1
    assert subject.lower().count("re:") <= 1


@pytest.mark.parametrize(
    "number", ["INC0000012", "case-00012"], ids=["inc-format", "lower-case-format"]
)
def test_reply_subject_uses_the_number_it_is_given(number: str) -> None:
    assert reply_subject(f"RE: [{number}] x", number) == f"Re: x [{number}]"
