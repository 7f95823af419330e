"""Fixtures for the IMAP edge tests: a real Dovecot per test (plain, TLS), stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.intake.edges.dovecot import Dovecot, Introspection, dovecot_binary, make_dovecot


def _require_dovecot() -> None:
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd)")


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """Dovecot on a free loopback port, plaintext auth, ``ssl = no``; users alice and bob."""
    _require_dovecot()
    server = make_dovecot()
    yield server
    server.destroy()


@pytest.fixture
def dovecot_tls() -> Iterator[Dovecot]:
    """Dovecot with a self-signed certificate: STARTTLS on ``port``, TLS on ``tls_port``."""
    _require_dovecot()
    server = make_dovecot(tls=True)
    yield server
    server.destroy()


@pytest.fixture
def dovecot_oauth() -> Iterator[tuple[Dovecot, Introspection]]:
    """Dovecot whose only passdb is oauth2 (XOAUTH2/OAUTHBEARER) asking our endpoint."""
    _require_dovecot()
    endpoint = Introspection()
    endpoint.start()
    server = make_dovecot(oauth_url=endpoint.url)
    yield server, endpoint
    server.destroy()
    endpoint.stop()
