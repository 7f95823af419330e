"""Mailbox credentials and resolution: configured settings to a mailbox we can log in to.

The URL grammar (``imaps://USER@HOST/FOLDER``) is config syntax and lives in
``intake.settings``; this module adds what only the IMAP edge needs: reading the password
from the environment or a secrets file, and the XOAUTH2 token source. It reads secrets,
never the network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from intake.edges.oauth import TokenSource
from intake.settings import MailboxSettings, Security, parse_mailbox_url


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One mailbox, resolved: where it is, how to log in, where mail goes afterwards."""

    name: str
    host: str
    port: int
    security: Security
    username: str
    folder: str
    processed_folder: str
    quarantine_folder: str
    verify_certificates: bool
    ca_file: str | None
    password: str | None = field(default=None, repr=False)
    tokens: TokenSource | None = None


def resolve_mailbox(settings: MailboxSettings, environ: Mapping[str, str] | None = None) -> Mailbox:
    """Settings to a usable mailbox: reads the password from env/file (raises ValueError)."""
    url = parse_mailbox_url(settings.url)
    password = settings.password.get_secret_value() if settings.password else None
    password = password or read_password(settings.password_env, settings.password_file, environ)
    return Mailbox(
        name=url.name,
        host=url.host,
        port=url.port,
        security=url.security,
        username=url.username,
        folder=url.folder,
        processed_folder=settings.processed_folder,
        quarantine_folder=settings.quarantine_folder,
        verify_certificates=settings.verify_certificates,
        ca_file=str(settings.ca_file) if settings.ca_file else None,
        password=password,
        tokens=_token_source(settings),
    )


def _token_source(settings: MailboxSettings) -> TokenSource | None:
    if not (settings.oauth2_token_command or settings.oauth2_token_file):
        return None
    return TokenSource(
        command=settings.oauth2_token_command,
        file=settings.oauth2_token_file,
        refresh_token_expires_at=settings.oauth2_refresh_token_expires_at,
    )


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
