"""Our own DKIM verification: a key generated here, dkimpy signs, a stub resolver serves it."""

from __future__ import annotations

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from intake.pipeline.dkimcheck import DkimVerifier
from parsing import SenderTrust, parse_message, sender_trust
from tests.conftest import make_mail

SELECTOR, DOMAIN = b"s1", b"acme.example"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def txt_record(key: rsa.RSAPrivateKey) -> bytes:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def stub_resolver(records: dict[bytes, bytes]) -> tuple[DkimVerifier, list[bytes]]:
    asked: list[bytes] = []

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        return records.get(name)

    return DkimVerifier(dnsfunc=dnsfunc), asked


def signed(key: rsa.RSAPrivateKey, raw: bytes) -> bytes:
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    signature = dkim.sign(
        raw, SELECTOR, DOMAIN, private_pem(key), include_headers=[b"from", b"subject"]
    )
    return signature + raw


def test_a_signature_verifies_against_the_key_the_resolver_serves(key: rsa.RSAPrivateKey) -> None:
    raw = signed(key, make_mail())
    verifier, asked = stub_resolver({b"s1._domainkey.acme.example.": txt_record(key)})
    verified = verifier.verified_domains(raw)
    assert verified == ("acme.example",)
    assert asked == [b"s1._domainkey.acme.example."]
    assert sender_trust(parse_message(raw), (), verified) is SenderTrust.DKIM_ALIGNED


def test_a_tampered_message_or_a_missing_key_verifies_nothing(key: rsa.RSAPrivateKey) -> None:
    raw = signed(key, make_mail())
    verifier, _ = stub_resolver({b"s1._domainkey.acme.example.": txt_record(key)})
    tampered = raw.replace(b"Subject: Acme", b"Subject: Evil")
    assert verifier.verified_domains(tampered) == ()
    unknown, _ = stub_resolver({})
    assert unknown.verified_domains(raw) == ()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong, _ = stub_resolver({b"s1._domainkey.acme.example.": txt_record(other)})
    assert wrong.verified_domains(raw) == ()


def test_unsigned_and_junk_input_verify_nothing() -> None:
    verifier, asked = stub_resolver({})
    assert verifier.verified_domains(make_mail()) == ()
    assert verifier.verified_domains(b"DKIM-Signature: v=1; junk\r\n\r\nx") == ()
    assert verifier.verified_domains(b"\x00\xff") == ()
    assert asked == []
