"""Our own DKIM verification (``intake.verify_dkim``): the signing domains that verify.

The MTA in front normally verifies DKIM and says so in ``Authentication-Results``
(``parsing.auth``); this is for a deployment whose MTA does not. dkimpy checks each
``DKIM-Signature`` (RFC 6376 §6) and fetches the key's TXT record through ``dnsfunc``,
which tests replace with a stub resolver. It runs in COMMIT 2's worker, never on the
accept path, and a bounded number of signatures is tried so a message cannot make us
look up keys without end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import dkim

# dkimpy's dnsfunc: (name: bytes, timeout: int) -> the TXT record's bytes, or None.
DnsFunc = Callable[..., bytes | None]
MAX_SIGNATURES: Final = 5
# dkimpy logs each signature's tags at DEBUG; ours are ids and outcomes only.
_QUIET: Final = logging.getLogger("intake.dkim")
_QUIET.propagate = False


@dataclass(frozen=True, slots=True)
class DkimVerifier:
    dnsfunc: DnsFunc | None = None  # None: dkimpy's own resolver (dnspython)
    timeout: int = 5

    def verified_domains(self, raw: bytes) -> tuple[str, ...]:
        """The lower-case ``d=`` of every signature that verifies, in header order."""
        try:
            verifier = dkim.DKIM(raw, logger=_QUIET, timeout=self.timeout)
            count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
        except Exception:  # unparseable: nothing verified
            return ()
        found: list[str] = []
        for index in range(min(count, MAX_SIGNATURES)):
            if self._verify(verifier, index) and verifier.domain:
                found.append(bytes(verifier.domain).decode("ascii", "replace").lower())
        return tuple(dict.fromkeys(found))

    def _verify(self, verifier: dkim.DKIM, index: int) -> bool:
        try:
            if self.dnsfunc is None:
                return bool(verifier.verify(idx=index))
            return bool(verifier.verify(idx=index, dnsfunc=self.dnsfunc))
        except Exception:  # dkim.DKIMException, DNS errors: this signature does not verify
            return False
