"""content_hash and idempotency_key: re-delivery hashes the same, new content does not."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from parsing import content_hash, idempotency_key
from parsing.idempotency import _lf_only

MESSAGE = (
    b"From: jane@acme.example\nTo: support@example.com\nSubject: Acme - Denver - x - P1\n"
    b"Message-ID: <1@acme.example>\nDKIM-Signature: v=1; a=rsa-sha256;\n b=abc\n\nHello\n"
)


def test_crlf_and_lf_hash_the_same() -> None:
    assert content_hash(MESSAGE) == content_hash(MESSAGE.replace(b"\n", b"\r\n"))


def test_trace_headers_do_not_change_the_hash() -> None:
    relayed = (
        b"Received: from mx2.example (mx2.example [192.0.2.2])\n\tby mx.example; Sun, 22 Nov 2026\n"
        b"Return-Path: <jane@acme.example>\nDelivered-To: support@example.com\n"
        b"X-Original-To: support@example.com\nAuthentication-Results: mx.example; spf=pass\n"
        b"ARC-Seal: i=1; cv=none\nX-Spam-Status: No\nX-Virus-Scanned: clean\n"
        b"X-Envelope-From: <jane@acme.example>\n" + MESSAGE
    )
    assert content_hash(relayed) == content_hash(MESSAGE)


def test_received_anywhere_in_the_header_is_dropped() -> None:
    head, body = MESSAGE.split(b"\n\n", 1)
    moved = head + b"\nReceived: by late.example;\n  Sun, 22 Nov 2026\n\n" + body
    assert content_hash(moved) == content_hash(MESSAGE)


def test_trailing_whitespace_at_the_end_is_ignored() -> None:
    assert content_hash(MESSAGE + b"\n\n  \n") == content_hash(MESSAGE)


def test_dkim_signature_is_kept() -> None:
    assert content_hash(MESSAGE.replace(b"b=abc", b"b=xyz")) != content_hash(MESSAGE)


def test_changed_body_changes_the_hash() -> None:
    assert content_hash(MESSAGE.replace(b"Hello", b"Hullo")) != content_hash(MESSAGE)


def test_body_received_line_is_content() -> None:
    body_line = MESSAGE + b"Received: this line is in the body\n"
    assert content_hash(body_line) != content_hash(MESSAGE)


def test_no_blank_line_is_all_header() -> None:
    assert content_hash(b"Received: x\nSubject: a") == content_hash(b"Subject: a")


def test_same_id_and_content_same_key() -> None:
    relayed = b"Received: by mx.example\n" + MESSAGE.replace(b"\n", b"\r\n")
    assert idempotency_key(MESSAGE, "1@acme.example") == idempotency_key(relayed, "1@acme.example")


def test_reused_message_id_with_other_content_is_another_key() -> None:
    other = MESSAGE.replace(b"Hello", b"Something else")
    assert idempotency_key(MESSAGE, "1@acme.example") != idempotency_key(other, "1@acme.example")


def test_different_message_id_is_another_key() -> None:
    assert idempotency_key(MESSAGE, "1@acme.example") != idempotency_key(MESSAGE, "2@acme.example")


def test_hex_sha256() -> None:
    for value in (content_hash(MESSAGE), idempotency_key(MESSAGE, "1@x")):
        assert len(value) == 64 and int(value, 16) >= 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.text(max_size=50))
def test_never_raises(raw: bytes, message_id: str) -> None:
    idempotency_key(raw, message_id)


def test_lone_surrogate_in_message_id() -> None:
    assert len(idempotency_key(MESSAGE, "\ud800@x")) == 64


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b"a", b" ", b"\r\r\n"]), max_size=30))
def test_line_endings_become_lf_exactly_as_the_line_regex_would(parts: list[bytes]) -> None:
    raw = b"".join(parts)
    assert _lf_only(raw) == re.sub(rb"\r\n|\r|\n", b"\n", raw)  # what content_hash used
