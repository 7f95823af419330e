"""parsing.auth: one sender-trust value from the trusted Authentication-Results (RFC 8601)."""

from __future__ import annotations

import pytest

from parsing import SenderTrust, parse_message, sender_trust
from tests.conftest import make_mail

OURS = ("mx.example.com",)
AR = "Authentication-Results"


def trust_of(results: list[str], sender: str = "Jane <jane@acme.example>") -> SenderTrust:
    raw = make_mail(sender=sender)
    # Prepend, as each MTA does: results[0] ends up the topmost (the last one added).
    header = b"".join(f"{AR}: {value}\n".encode() for value in results)
    return sender_trust(parse_message(header + raw), OURS)


CASES = [
    ([], SenderTrust.NONE),
    (["mx.example.com; dmarc=pass header.from=acme.example"], SenderTrust.DMARC_PASS),
    (["MX.Example.com; dmarc=pass header.from=acme.example"], SenderTrust.DMARC_PASS),
    (["mx.example.com; dmarc=pass header.from=other.example"], SenderTrust.NONE),
    (["mx.example.com; dmarc=fail header.from=acme.example"], SenderTrust.FAIL),
    (["mx.example.com; dkim=pass header.d=acme.example"], SenderTrust.DKIM_ALIGNED),
    (["mx.example.com; dkim=pass header.d=mail.acme.example"], SenderTrust.NONE),
    (["mx.example.com; dkim=pass header.d=example"], SenderTrust.NONE),
    (["mx.example.com; dkim=pass header.d=evil.example"], SenderTrust.NONE),
    (["mx.example.com; dkim=fail header.d=acme.example"], SenderTrust.NONE),
    (["mx.example.com; spf=pass smtp.mailfrom=bounce@acme.example"], SenderTrust.SPF_ALIGNED),
    (["mx.example.com; spf=pass smtp.mailfrom=evil.example"], SenderTrust.NONE),
    # Claims under someone else's authserv-id are never believed.
    (["evil.example; dmarc=pass header.from=acme.example"], SenderTrust.NONE),
    # A spoofed header above ours: a foreign id at the top stops the run of trusted ones.
    (
        [
            "evil.example; dmarc=pass header.from=acme.example",
            "mx.example.com; dmarc=pass header.from=acme.example",
        ],
        SenderTrust.NONE,
    ),
    # Our id below a foreign header was written by the sender, not by our MTA.
    (
        [
            "relay.example.net; none",
            "mx.example.com; dmarc=pass header.from=acme.example",
        ],
        SenderTrust.NONE,
    ),
    # Ours at the top, a forgery with our id further down: the topmost result wins.
    (
        [
            "mx.example.com; dmarc=fail header.from=acme.example",
            "mx.example.com; dmarc=pass header.from=acme.example",
        ],
        SenderTrust.FAIL,
    ),
    (["mx.example.com; ;;= garbage"], SenderTrust.NONE),
    ([f"mx.example.com; dkim=pass header.d={'a' * 9000}.example"], SenderTrust.NONE),
]
IDS = [
    "no-results",
    "dmarc-pass",
    "authserv-id-case-insensitive",
    "dmarc-pass-for-another-domain",
    "dmarc-fail",
    "dkim-aligned",
    "dkim-subdomain-signer-not-aligned",
    "dkim-top-level-label-never-aligned",
    "dkim-unaligned",
    "dkim-fail",
    "spf-aligned",
    "spf-unaligned",
    "untrusted-authserv-id",
    "spoofed-above-trusted",
    "trusted-id-below-foreign-header",
    "topmost-trusted-result-wins",
    "unparseable",
    "oversized",
]


@pytest.mark.parametrize(("results", "expected"), CASES, ids=IDS)
def test_sender_trust(results: list[str], expected: SenderTrust) -> None:
    assert trust_of(results) is expected


def test_a_parent_signing_domain_is_aligned() -> None:
    results = ["mx.example.com; dkim=pass header.d=acme.example"]
    assert trust_of(results, "Jane <jane@eu.acme.example>") is SenderTrust.DKIM_ALIGNED


def test_no_trusted_ids_believes_nothing() -> None:
    raw = make_mail(headers={AR: "mx.example.com; dmarc=pass header.from=acme.example"})
    assert sender_trust(parse_message(raw), ()) is SenderTrust.NONE


def test_domains_we_verified_ourselves_count_when_aligned() -> None:
    message = parse_message(make_mail())
    assert sender_trust(message, (), ["acme.example"]) is SenderTrust.DKIM_ALIGNED
    assert sender_trust(message, (), ["evil.example"]) is SenderTrust.NONE
