"""Addresses: the spelling we keep, the spelling we compare, and the domain, table-driven."""

from __future__ import annotations

import pytest

from parsing import (
    address_domain,
    address_key,
    canonical_address,
    canonical_domain,
    normalise_address,
)

# (id, input, canonical_address, address_domain)
CANONICAL_CASES = [
    ("bare", "jane@acme.example", "jane@acme.example", "acme.example"),
    ("upper-case", "JANE@Acme.Example", "jane@acme.example", "acme.example"),
    ("display-name", "Jane Doe <Jane@Acme.Example>", "jane@acme.example", "acme.example"),
    ("angle-brackets", "<jane@acme.example>", "jane@acme.example", "acme.example"),
    ("spaces", "  jane@acme.example  ", "jane@acme.example", "acme.example"),
    ("root-dot", "jane@acme.example.", "jane@acme.example", "acme.example"),
    ("comment-name", "jane@acme.example (Jane Doe)", "jane@acme.example", "acme.example"),
    ("plus-tag", "Jane+NOC@acme.example", "jane+noc@acme.example", "acme.example"),
    ("no-domain", "MAILER-DAEMON", None, None),
    ("no-local-part", "@acme.example", None, None),
    ("nothing-after-at", "jane@", None, None),
    ("empty", "", None, None),
    ("none", None, None, None),
]


@pytest.mark.parametrize(
    ("address", "canonical", "domain"),
    [c[1:] for c in CANONICAL_CASES],
    ids=[c[0] for c in CANONICAL_CASES],
)
def test_canonical_address_and_its_domain(
    address: str | None, canonical: str | None, domain: str | None
) -> None:
    assert canonical_address(address) == canonical
    assert address_domain(address) == domain


# (id, input, normalise_address): the local part keeps its case (RFC 5321 §2.4)
NORMALISE_CASES = [
    ("domain-lowered", "Jane.Doe@Acme.EXAMPLE", "Jane.Doe@acme.example"),
    ("angle-brackets", " <Jane@ACME.example> ", "Jane@acme.example"),
    ("control-characters", "jane@acme\r\n.example", None),
    ("space-inside", "jane doe@acme.example", None),
    ("no-domain", "MAILER-DAEMON", None),
]


@pytest.mark.parametrize(
    ("address", "kept"), [c[1:] for c in NORMALISE_CASES], ids=[c[0] for c in NORMALISE_CASES]
)
def test_normalise_address_keeps_the_local_part(address: str, kept: str | None) -> None:
    assert normalise_address(address) == kept


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Jane <Jane@Acme.Example>", "jane@acme.example"),
        (" <Postmaster> ", "postmaster"),
        ("", ""),
    ],
    ids=["address", "not-an-address", "empty"],
)
def test_address_key_is_total(text: str, key: str) -> None:
    assert address_key(text) == key


@pytest.mark.parametrize(
    ("domain", "canonical"),
    [("Acme.Example", "acme.example"), (" acme.example. ", "acme.example")],
    ids=["case", "spaces-and-root-dot"],
)
def test_canonical_domain(domain: str, canonical: str) -> None:
    assert canonical_domain(domain) == canonical
