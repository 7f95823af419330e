"""Sender authentication: one trust value per message from ``Authentication-Results``.

A header only *claims* who wrote a message; what the MTA in front verified (SPF, DKIM,
DMARC) is what makes the claim worth something. This module owns reading that verdict:

* Only ``Authentication-Results`` instances (RFC 8601) whose authserv-id is one of ours
  (``intake.trusted_authserv_ids``) are believed, and only the run of them at the top of
  the header section: each MTA prepends its header (RFC 5322 §3.6), so ours are the
  topmost, and a header with our id *below* a foreign one was written by someone else
  (RFC 8601 §5 asks the MTA to remove those; we do not rely on it having done so).
  Within that run the topmost result per method wins: it is the one added last.
* A DKIM ``pass`` or SPF ``pass`` counts only when aligned with the ``From`` domain
  (RFC 7489 §3.1, relaxed alignment: both have the same organizational domain, §3.2,
  found with the Public Suffix List that ``publicsuffixlist`` ships; no network).
* DKIM signatures we verified ourselves (``intake.verify_dkim``) arrive as the signing
  domains that verified; the DNS look-up that needs lives in the pipeline, not here.

Pure: the parsed headers in, a ``SenderTrust`` out. Unparseable headers are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Final

import authres
from publicsuffixlist import PublicSuffixList

from parsing.addresses import address_domain, canonical_domain
from parsing.types import ParsedMessage

AUTH_RESULTS: Final = "authentication-results"
# RFC 8601 values are short; a longer header is junk and is not handed to the parser.
_MAX_HEADER: Final = 8192


class SenderTrust(StrEnum):
    """How far the ``From`` address is authenticated, strongest first; ``fail`` is DMARC's."""

    DMARC_PASS = "dmarc pass"  # noqa: S105 (a DMARC result, not a password)
    DKIM_ALIGNED = "dkim aligned"
    SPF_ALIGNED = "spf aligned"
    NONE = "none"
    FAIL = "fail"  # the From domain's DMARC policy says this message is not from it


AUTHENTICATED: Final = frozenset(
    {SenderTrust.DMARC_PASS, SenderTrust.DKIM_ALIGNED, SenderTrust.SPF_ALIGNED}
)


@dataclass(frozen=True, slots=True)
class _Result:
    method: str
    result: str
    properties: dict[str, str]  # "header.d" -> "acme.example"


def sender_trust(
    message: ParsedMessage,
    trusted_ids: Iterable[str],
    dkim_verified: Iterable[str] = (),
) -> SenderTrust:
    """The trust value of ``message``'s ``From`` domain.

    ``trusted_ids``: the authserv-ids of our own MTAs. ``dkim_verified``: signing domains
    (``d=``) whose signatures we verified ourselves.
    """
    domain = address_domain(message.from_address)
    results = trusted_results(message, trusted_ids)
    if results.get("dmarc", _NONE).result == "fail":
        return SenderTrust.FAIL
    if domain is None:
        return SenderTrust.NONE
    dmarc = results.get("dmarc")
    if dmarc and dmarc.result == "pass" and _from_domain(dmarc) in (None, domain):
        return SenderTrust.DMARC_PASS
    dkim = results.get("dkim")
    signers = [*dkim_verified, *([_prop(dkim, "header.d") or ""] if _passed(dkim) else [])]
    if any(_aligned(signer, domain) for signer in signers):
        return SenderTrust.DKIM_ALIGNED
    spf = results.get("spf")
    if _passed(spf) and _aligned(_spf_domain(spf), domain):
        return SenderTrust.SPF_ALIGNED
    return SenderTrust.NONE


def trusted_results(message: ParsedMessage, trusted_ids: Iterable[str]) -> dict[str, _Result]:
    """The topmost result per method from the run of trusted headers at the top."""
    trusted = {canonical_domain(i) for i in trusted_ids}
    found: dict[str, _Result] = {}
    for value in message.header_all(AUTH_RESULTS):
        parsed = _parse(value)
        if parsed is None or canonical_domain(parsed[0]) not in trusted:
            break  # a foreign (or unreadable) header: nothing below it is ours
        for result in parsed[1]:
            found.setdefault(result.method, result)
    return found


def _parse(value: str) -> tuple[str, list[_Result]] | None:
    if len(value) > _MAX_HEADER:
        return None
    try:
        header = authres.AuthenticationResultsHeader.parse_value(value)
    except Exception:  # authres raises its own SyntaxError and others on junk
        return None
    results = [
        _Result(
            str(r.method).lower(),
            str(r.result).lower(),
            {f"{p.type}.{p.name}".lower(): str(p.value) for p in r.properties or ()},
        )
        for r in header.results
    ]
    return str(header.authserv_id or ""), results


_NONE: Final = _Result("", "none", {})


def _prop(result: _Result | None, name: str) -> str | None:
    return result.properties.get(name) if result else None


def _passed(result: _Result | None) -> bool:
    return result is not None and result.result == "pass"


def _from_domain(dmarc: _Result) -> str | None:
    value = _prop(dmarc, "header.from")
    return canonical_domain(value) if value else None


def _spf_domain(spf: _Result | None) -> str:
    # smtp.mailfrom may be a whole address or the domain alone (RFC 8601 §2.7.2).
    value = _prop(spf, "smtp.mailfrom") or ""
    return value.rpartition("@")[2]


def _aligned(signer: str, domain: str) -> bool:
    """Relaxed alignment (RFC 7489 §3.1.1): the signer's organizational domain is the From
    domain's. A public suffix (``co.uk``, ``github.io``) is nobody's organization, so
    ``evil.co.uk`` never aligns with ``victim.co.uk``, nor ``a.github.io`` with ``b.github.io``.
    """
    signer = canonical_domain(signer)
    organization = organizational_domain(signer)
    return organization is not None and organization == organizational_domain(domain)


def organizational_domain(domain: str) -> str | None:
    """RFC 7489 §3.2: the public suffix of ``domain`` plus one label; None for a public
    suffix itself (or no domain). The list's private section counts too (``github.io``:
    its users are unrelated). An unknown top-level label is a suffix of its own (``*``)."""
    domain = canonical_domain(domain)
    if not domain or "." not in domain:
        return None
    organization: str | None = _public_suffixes().privatesuffix(domain)
    return organization


@cache
def _public_suffixes() -> PublicSuffixList:
    # Parsing the bundled list takes tens of milliseconds: once per process, then read-only.
    return PublicSuffixList()
