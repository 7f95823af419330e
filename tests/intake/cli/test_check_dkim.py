"""``intake check`` runs the pipeline's own DKIM verification (issue 13).

With ``--verify-dkim`` or ``intake.verify_dkim``, the verifier the pipeline is wired with
(``intake.app``) checks each signature; a key generated here is served by the stub
resolver the DKIM tests use, put in the place ``build_app`` takes its verifier from.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from intake.pipeline import dkimcheck
from tests.conftest import make_mail
from tests.intake.cli.conftest import Cli, write_config
from tests.intake.pipeline.test_dkimcheck import signed, txt_record

RECORD = b"s1._domainkey.acme.example."


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch, key: rsa.RSAPrivateKey) -> list[bytes]:
    """The names the verifier looked up; the stub resolver serves ``key`` for acme.example."""
    names: list[bytes] = []
    records = {RECORD: txt_record(key)}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        names.append(name)
        return records.get(name)

    stubbed = functools.partial(dkimcheck.DkimVerifier, dnsfunc=dnsfunc)
    monkeypatch.setattr("intake.app.DkimVerifier", stubbed)
    return names


def check_json(cli: Cli, raw: bytes, tmp_path: Path, *flags: str) -> dict[str, object]:
    mail = tmp_path / "signed.eml"
    mail.write_bytes(raw)
    result = cli("check", "--json", *flags, str(mail))
    assert result.exit_code == 0, result.output
    [line] = result.output.splitlines()
    record: dict[str, object] = json.loads(line)
    return record


def test_verify_dkim_flag_shows_an_aligned_signature_as_the_sender_trust(
    cli: Cli, tmp_path: Path, key: rsa.RSAPrivateKey, asked: list[bytes]
) -> None:
    record = check_json(cli, signed(key, make_mail()), tmp_path, "--verify-dkim")
    assert record["sender_trust"] == "dkim aligned"
    assert record["dkim_verified"] == ["acme.example"]
    assert asked == [RECORD]


def test_without_verification_the_signature_proves_nothing(
    cli: Cli, tmp_path: Path, key: rsa.RSAPrivateKey, asked: list[bytes]
) -> None:
    record = check_json(cli, signed(key, make_mail()), tmp_path)
    assert record["sender_trust"] == "none"
    assert "dkim_verified" not in record and asked == []


def test_the_verify_dkim_setting_turns_it_on(
    cli: Cli, tmp_path: Path, key: rsa.RSAPrivateKey, asked: list[bytes]
) -> None:
    extra = "[intake]\nverify_dkim = true\n"
    write_config(cli.config, cli.database_url, cli.outbox, extra)
    record = check_json(cli, signed(key, make_mail()), tmp_path)
    assert (record["sender_trust"], record["dkim_verified"]) == ("dkim aligned", ["acme.example"])


def test_a_tampered_message_does_not_verify(
    cli: Cli, tmp_path: Path, key: rsa.RSAPrivateKey, asked: list[bytes]
) -> None:
    raw = signed(key, make_mail()).replace(b"Subject: Acme", b"Subject: Evil")
    record = check_json(cli, raw, tmp_path, "--verify-dkim")
    assert (record["sender_trust"], record["dkim_verified"]) == ("none", [])
    assert asked == [RECORD]  # looked up, and the body hash or signature did not match
