"""parsing.auth: one sender-trust value from the trusted Authentication-Results (RFC 8601)."""

from __future__ import annotations

import pytest

from parsing import SenderTrust, parse_message, sender_trust
from parsing.auth import organizational_domain
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
    (["mx.example.com; dkim=pass header.d=mail.acme.example"], SenderTrust.DKIM_ALIGNED),
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
    "dkim-subdomain-signer-aligned",
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


# RFC 7489 §3.1.1 relaxed alignment: the same organizational domain (§3.2), found with the
# Public Suffix List, its private section included.
ALIGNMENT = [
    ("mail.example.co.uk", "example.co.uk", SenderTrust.DKIM_ALIGNED),
    ("example.co.uk", "support.example.co.uk", SenderTrust.DKIM_ALIGNED),
    ("mail.acme.example", "eu.acme.example", SenderTrust.DKIM_ALIGNED),
    ("evil.co.uk", "victim.co.uk", SenderTrust.NONE),
    ("co.uk", "victim.co.uk", SenderTrust.NONE),
    ("a.github.io", "b.github.io", SenderTrust.NONE),
    ("github.io", "b.github.io", SenderTrust.NONE),
    ("x.a.github.io", "a.github.io", SenderTrust.DKIM_ALIGNED),
    ("city.kawasaki.jp", "shop.city.kawasaki.jp", SenderTrust.DKIM_ALIGNED),
    ("evil.kawasaki.jp", "victim.kawasaki.jp", SenderTrust.NONE),
    ("example.com", "example.co.uk", SenderTrust.NONE),
]
ALIGNMENT_IDS = [
    "subdomain-under-co-uk",
    "parent-of-from-under-co-uk",
    "sibling-subdomains",
    "neighbours-under-co-uk",
    "public-suffix-signer",
    "neighbours-under-private-suffix",
    "private-suffix-signer",
    "subdomain-under-private-suffix",
    "exception-rule",
    "wildcard-rule",
    "other-suffix",
]


@pytest.mark.parametrize(("signer", "from_domain", "expected"), ALIGNMENT, ids=ALIGNMENT_IDS)
def test_dkim_alignment_uses_organizational_domains(
    signer: str, from_domain: str, expected: SenderTrust
) -> None:
    results = [f"mx.example.com; dkim=pass header.d={signer}"]
    assert trust_of(results, f"Jane <jane@{from_domain}>") is expected
    # The same rule for SPF's MAIL FROM domain and for signatures we verified ourselves.
    spf = [f"mx.example.com; spf=pass smtp.mailfrom=bounce@{signer}"]
    spf_expected = SenderTrust.SPF_ALIGNED if expected is SenderTrust.DKIM_ALIGNED else expected
    assert trust_of(spf, f"Jane <jane@{from_domain}>") is spf_expected
    own = sender_trust(parse_message(make_mail(sender=f"jane@{from_domain}")), (), [signer])
    assert own is expected


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("mail.example.co.uk", "example.co.uk"),
        ("Example.CO.UK.", "example.co.uk"),
        ("co.uk", None),
        ("a.b.github.io", "b.github.io"),
        ("uk", None),
        ("", None),
        ("host.acme.example", "acme.example"),
    ],
    ids=["subdomain", "case-and-root-dot", "suffix", "private", "tld", "empty", "unknown-tld"],
)
def test_organizational_domain(domain: str, expected: str | None) -> None:
    assert organizational_domain(domain) == expected
