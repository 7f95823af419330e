"""STARTTLS on the listener (RFC 3207), with self-signed certificates made in the test.

Offered and working (smtplib verifying our certificate, swaks ``--tls``), required before
MAIL when ``smtp.require_tls`` (530 5.7.0), TLS 1.2 as the floor with ECDHE + AEAD suites
only, bad certificate files refused at start-up naming the keys, and SIGHUP to a real
``intake serve`` re-reading the files: the next session gets the new certificate, a bad
file keeps the old one.
"""

from __future__ import annotations

import shutil
import signal
import smtplib
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from intake.edges.smtp import MODERN_TLS12_CIPHERS, load_tls_context
from intake.errors import ConfigError
from intake.settings import Settings, SmtpSettings
from tests.conftest import RunningDaemon, make_mail, start_daemon, stop_daemon, swaks, wait_for
from tests.intake.edges.conftest import Served
from tests.intake.edges.dovecot import _self_signed

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl CLI not installed (makes the certificates)"
)


def certificate(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    return _self_signed(root), root / "key.pem"


@pytest.fixture
def tls_daemon(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[Callable[..., RunningDaemon]]:
    running: list[RunningDaemon] = []
    cert, key = certificate(tmp_path / "tls")

    def start(**overrides: object) -> RunningDaemon:
        values = {"smtp.tls_certificate": str(cert), "smtp.tls_key": str(key), **overrides}
        daemon = start_daemon(make_settings(**values))
        running.append(daemon)
        return daemon

    yield start
    for daemon in running:
        stop_daemon(daemon)


def trusting(cert: Path) -> ssl.SSLContext:
    """A client that verifies the server against exactly this certificate."""
    return ssl.create_default_context(cafile=str(cert))


def served_der(port: int, cert: Path) -> bytes | None:
    """The certificate a new session's STARTTLS presents (None when it is not ``cert``)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as connection:
        connection.ehlo("client.test")
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        connection.starttls(context=context)
        assert isinstance(connection.sock, ssl.SSLSocket)
        der = connection.sock.getpeercert(binary_form=True)
    return der if der == ssl.PEM_cert_to_DER_cert(cert.read_text()) else None


def test_starttls_is_offered_and_mail_over_it_is_stored(
    tls_daemon: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    daemon = tls_daemon()
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as connection:
        connection.ehlo("client.test")
        assert connection.has_extn("starttls")
        assert connection.starttls(context=trusting(tmp_path / "tls" / "cert.pem"))[0] == 220
        assert isinstance(connection.sock, ssl.SSLSocket)
        assert connection.sock.version() in ("TLSv1.2", "TLSv1.3")
        connection.ehlo("client.test")
        assert not connection.has_extn("starttls")  # RFC 3207 §4.2: not offered again
        connection.mail("jane@acme.example")
        connection.rcpt("support@example.com")
        code, reply = connection.data(make_mail(message_id="<tls@acme.example>"))
    assert code == 250, reply


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_1_2_is_refused(tls_daemon: Callable[..., RunningDaemon]) -> None:
    daemon = tls_daemon()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot offer TLS 1.1 as a client")
    with capture_logs() as logs, smtplib.SMTP(daemon.host, daemon.port, timeout=30) as connection:
        connection.ehlo("client.test")
        with pytest.raises(OSError):  # ssl.SSLError: the server's protocol_version alert
            connection.starttls(context=context)
        wait_for(lambda: any(e["event"] == "smtp.tls_handshake_failed" for e in logs), 30)
    # A client's failed handshake is its problem: logged at info, never as our error.
    assert not [e for e in logs if e["log_level"] == "error"], logs


def tls12_client(ciphers: str) -> ssl.SSLContext:
    """A TLS 1.2-only client offering exactly ``ciphers`` (no certificate check)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        pytest.skip(f"this OpenSSL cannot offer {ciphers} as a client")
    return context


@pytest.mark.parametrize(
    "ciphers",
    [
        "AES128-SHA:@SECLEVEL=0",  # static RSA key exchange, CBC
        "ECDHE-RSA-AES128-SHA:@SECLEVEL=0",  # forward secret, but CBC (no AEAD)
        # Python's default server list takes these two: forward secret, CBC with SHA-2.
        "ECDHE-RSA-AES128-SHA256",
        "ECDHE-RSA-AES256-SHA384",
        "AES128-GCM-SHA256:@SECLEVEL=0",  # AEAD, but no forward secrecy
        "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",  # finite-field DHE (Mozilla's, not ours)
    ],
    ids=["rsa-cbc", "ecdhe-cbc-sha1", "ecdhe-cbc-sha256", "ecdhe-cbc-sha384", "rsa-gcm", "dhe-gcm"],
)
def test_tls12_without_ecdhe_aead_is_refused(
    tls_daemon: Callable[..., RunningDaemon], ciphers: str
) -> None:
    daemon = tls_daemon()
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as connection:
        connection.ehlo("client.test")
        with pytest.raises(OSError):  # ssl.SSLError: handshake failure, no shared cipher
            connection.starttls(context=tls12_client(ciphers))


def test_tls12_client_with_modern_ciphers_gets_ecdhe_aead(
    tls_daemon: Callable[..., RunningDaemon],
) -> None:
    daemon = tls_daemon()
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as connection:
        connection.ehlo("client.test")
        assert connection.starttls(context=tls12_client("DEFAULT"))[0] == 220
        assert isinstance(connection.sock, ssl.SSLSocket)
        negotiated = connection.sock.cipher()
        assert negotiated is not None
        name, version, _ = negotiated
        connection.ehlo("client.test")
        assert connection.noop()[0] == 250
    assert version == "TLSv1.2"
    assert name in MODERN_TLS12_CIPHERS.split(":"), name


def test_require_tls_refuses_mail_before_starttls_with_530(
    tls_daemon: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    daemon = tls_daemon(**{"smtp.require_tls": True})
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as connection:
        connection.ehlo("client.test")
        assert connection.mail("jane@acme.example") == (
            530,
            b"5.7.0 Must issue a STARTTLS command first",
        )
        connection.starttls(context=trusting(tmp_path / "tls" / "cert.pem"))
        connection.ehlo("client.test")
        assert connection.mail("jane@acme.example")[0] == 250


def swaks_tls() -> bool:
    if shutil.which("swaks") is None:
        return False
    support = subprocess.run(["swaks", "--support"], capture_output=True, text=True, check=False)
    return "TLS supported" in support.stdout + support.stderr


@pytest.mark.skipif(
    not swaks_tls(), reason="swaks with TLS is not installed (apt-get install libnet-ssleay-perl)"
)
def test_swaks_tls_delivers_over_starttls(tls_daemon: Callable[..., RunningDaemon]) -> None:
    daemon = tls_daemon(**{"smtp.require_tls": True})
    result = swaks(
        daemon, "--tls",
        "--from", "noc@customer.example", "--to", "support@example.com",
        "--header", "Subject: Globex – 9 Elm Rd, Austin – Calls drop after 30 s – P2",
        "--body", "Phone: 512 555 0101\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TLS started" in result.stdout, result.stdout
    assert "250 2.0.0 Ok: queued as" in result.stdout


@pytest.mark.parametrize(
    ("break_it", "names"),
    [
        (lambda cert, key: key.unlink(), "key.pem"),
        (lambda cert, key: cert.write_text("not a certificate\n"), "cert.pem"),
    ],
    ids=["missing-key", "garbage-certificate"],
)
def test_unreadable_certificate_files_are_a_config_error(
    tmp_path: Path, break_it: Callable[[Path, Path], object], names: str
) -> None:
    cert, key = certificate(tmp_path)
    break_it(cert, key)
    with pytest.raises(ConfigError, match="smtp.tls_certificate .*smtp.tls_key") as error:
        load_tls_context(SmtpSettings(tls_certificate=cert, tls_key=key))
    assert names in str(error.value)


def test_sighup_rereads_the_certificate_for_the_next_session(
    served: Callable[..., Served], tmp_path: Path
) -> None:
    live = tmp_path / "live"
    first = certificate(tmp_path / "first")
    second = certificate(tmp_path / "second")
    live.mkdir()
    for name in ("cert.pem", "key.pem"):
        shutil.copy(tmp_path / "first" / name, live / name)
    daemon = served(
        INTAKE_SMTP__TLS_CERTIFICATE=str(live / "cert.pem"),
        INTAKE_SMTP__TLS_KEY=str(live / "key.pem"),
    )
    assert served_der(daemon.port, first[0])
    open_session = smtplib.SMTP("127.0.0.1", daemon.port, timeout=30)
    open_session.ehlo("client.test")

    for name in ("cert.pem", "key.pem"):  # what certbot's deploy hook does, then SIGHUP
        shutil.copy(tmp_path / "second" / name, live / name)
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.events("smtp.tls_reloaded"), timeout=30)
    assert served_der(daemon.port, second[0])
    assert open_session.noop()[0] == 250  # sessions already open are left alone
    open_session.quit()

    (live / "key.pem").write_text("broken\n")  # a bad file keeps the current certificate
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.events("smtp.tls_reload_failed"), timeout=30)
    assert served_der(daemon.port, second[0])
    assert daemon.process.poll() is None
    assert daemon.stop() == 0
