"""Mailbox URLs and mailbox credentials: the IMAP edge's address book, no I/O but secrets.

``imap://USER:PASSWORD@HOST:PORT/FOLDER`` (plaintext, loopback only unless allowed),
``imap+starttls://…`` (STARTTLS required, RFC 3501 §6.2.1; never a plaintext fallback)
and ``imaps://…`` (implicit TLS, RFC 8314). Query parameters name further per-mailbox
settings, e.g. ``imaps://bot@imap.example.net/INBOX?password_env=IMAP_PW``. The user and
password are percent-decoded, so ``%40`` stands for ``@`` in a user name.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

Security = Literal["plain", "starttls", "tls"]
SCHEMES: dict[str, Security] = {"imap": "plain", "imap+starttls": "starttls", "imaps": "tls"}
DEFAULT_PORTS: dict[Security, int] = {"plain": 143, "starttls": 143, "tls": 993}


@dataclass(frozen=True, slots=True)
class MailboxUrl:
    security: Security
    host: str
    port: int
    username: str
    password: str | None
    folder: str
    options: dict[str, str]  # the query string: further MailboxSettings keys

    @property
    def name(self) -> str:
        """The mailbox's stable name (logs, status, lease): never contains the password."""
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"

    def without_password(self) -> str:
        scheme = next(s for s, sec in SCHEMES.items() if sec == self.security)
        user, folder = quote(self.username, safe=""), quote(self.folder, safe="/")
        return f"{scheme}://{user}@{self.host}:{self.port}/{folder}"


def parse_mailbox_url(url: str) -> MailboxUrl:
    """Split a mailbox URL; raises ValueError naming what is wrong (never the password)."""
    parts = urlsplit(url)
    security = SCHEMES.get(parts.scheme.lower())
    if security is None:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("no host in mailbox URL")
    if not parts.username:
        raise ValueError("no user in mailbox URL (imap://USER@HOST/FOLDER)")
    try:
        port = parts.port or DEFAULT_PORTS[security]
    except ValueError:
        raise ValueError("port must be a number from 1 to 65535") from None
    return MailboxUrl(
        security=security,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username),
        password=unquote(parts.password) if parts.password is not None else None,
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
        options=dict(parse_qsl(parts.query, keep_blank_values=True)),
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_password(
    env_name: str | None, file: Path | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The password from an environment variable or a secrets file (first line)."""
    environ = os.environ if environ is None else environ
    if env_name:
        if env_name not in environ:
            raise ValueError(f"password_env: environment variable {env_name} is not set")
        return environ[env_name]
    if file:
        try:
            return file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError) as exc:
            raise ValueError(f"password_file {file}: cannot read a password: {exc}") from None
    return None
