"""The reply's subject: capped, and always foldable (issue 13 item 5)."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest

from intake.replies.render import MAX_ECHOED_SUBJECT, reply_subject

SUBJECTS = [
    ("encoded-word-8bit", "Re: héllo =?utf-8?b?/w==?= x"),
    ("encoded-word-ff", "=?utf-8?q?=FF?= é"),
    ("one-megabyte", "word " * 200_000),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("original", [s[1] for s in SUBJECTS], ids=[s[0] for s in SUBJECTS])
def test_any_subject_folds_into_a_capped_reply_subject(original: str) -> None:
    subject = reply_subject(original, "TKT-000001")
    message = EmailMessage()
    message["Subject"] = subject
    message.set_content("x")
    raw = message.as_bytes(policy=SMTP)  # raised UnicodeEncodeError / took ~24 s before
    assert b"TKT-000001" in raw
    assert len(subject) <= MAX_ECHOED_SUBJECT + len("Re:  [TKT-000001]")
