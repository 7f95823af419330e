"""OAuth 2 access tokens for XOAUTH2 (Microsoft 365, Gmail): where they come from, when to renew.

We never run an OAuth flow ourselves: an operator's command (``oauth2_token_command``,
e.g. a small script around MSAL or ``oauth2l``) or a file another process keeps fresh
(``oauth2_token_file``) supplies the access token. Either prints/holds the bare token, or
a JSON object ``{"access_token", "expires_in" | "expires_at", "refresh_token_expires_at"}``.
A token is fetched again ``refresh_margin`` before it expires; a refresh token that is
due to expire within ``warn_before`` produces one warning line per fetch, well before
the mailbox would start failing.

The SASL exchange itself (``user=…^Aauth=Bearer …^A^A``) is Google's and Microsoft's
XOAUTH2, the pre-standard form of RFC 7628 OAUTHBEARER.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from intake.errors import TokenError


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: datetime | None = None
    refresh_token_expires_at: datetime | None = None


def parse_token(text: str, now: datetime) -> AccessToken:
    """A bare token, or the JSON object described in the module docstring."""
    text = text.strip()
    if not text:
        raise TokenError("empty access token")
    if not text.startswith("{"):
        return AccessToken(text.splitlines()[0].strip())
    try:
        data: dict[str, Any] = json.loads(text)
        value = str(data["access_token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError(f"token JSON has no access_token: {exc}") from None
    return AccessToken(
        value,
        _instant(data, "expires_at", "expires_in", now),
        _instant(data, "refresh_token_expires_at", "refresh_token_expires_in", now),
    )


def _instant(data: dict[str, Any], at_key: str, in_key: str, now: datetime) -> datetime | None:
    if data.get(at_key):
        parsed = datetime.fromisoformat(str(data[at_key]).replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise TokenError(f"{at_key} needs a UTC offset or Z")
        return parsed
    if data.get(in_key) is not None:
        return now + timedelta(seconds=float(data[in_key]))
    return None


@dataclass
class TokenSource:
    """Fetches and caches one mailbox's access token."""

    command: str | None = None
    file: Path | None = None
    refresh_margin: timedelta = timedelta(minutes=5)
    warn_before: timedelta = timedelta(days=14)
    refresh_token_expires_at: datetime | None = None  # from config, if the source has none
    timeout: float = 60.0
    _cached: AccessToken | None = field(default=None, repr=False)

    def token(self, now: datetime) -> AccessToken:
        if self._cached is None or self.needs_refresh(now):
            self._cached = parse_token(self._read(), now)
        return self._cached

    def needs_refresh(self, now: datetime) -> bool:
        """True when the cached token is missing or within ``refresh_margin`` of expiry."""
        cached = self._cached
        if cached is None:
            return True
        return cached.expires_at is not None and now >= cached.expires_at - self.refresh_margin

    def refresh_token_warning(self, now: datetime) -> str | None:
        """A warning when the refresh token expires within ``warn_before``."""
        cached = self._cached
        expires = (cached.refresh_token_expires_at if cached else None) or (
            self.refresh_token_expires_at
        )
        if expires is None or expires - now > self.warn_before:
            return None
        if expires <= now:
            return f"the OAuth refresh token expired at {expires.isoformat()}; re-authorise"
        return f"the OAuth refresh token expires at {expires.isoformat()}; re-authorise before"

    def _read(self) -> str:
        if self.command:
            return self._run_command(self.command)
        if self.file:
            try:
                return self.file.read_text(encoding="utf-8")
            except OSError as exc:
                raise TokenError(f"token file {self.file}: {exc.strerror or exc}") from None
        raise TokenError("no oauth2_token_command or oauth2_token_file configured")

    def _run_command(self, command: str) -> str:
        try:
            done = subprocess.run(  # noqa: S603 - the operator's own configured command
                shlex.split(command),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TokenError(f"token command failed: {exc}") from None
        if done.returncode != 0:
            detail = done.stderr.strip().splitlines()[-1:] or [""]
            raise TokenError(f"token command exited {done.returncode}: {detail[0]}")
        return done.stdout
