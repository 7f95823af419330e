"""Configuration: file < environment < flags, and one clear line for every bad key."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from intake.errors import ConfigError
from intake.settings import load_settings, parse_deliver_target


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "intake.toml"
    path.write_text(text)
    return path


def test_shipped_defaults_are_the_embedded_ones() -> None:
    settings = load_settings()
    assert settings.database.url == "sqlite:///./intake.db"
    assert (settings.smtp.host, settings.smtp.port) == ("127.0.0.1", 2525)
    assert settings.intake.support_addresses == ("support@example.com",)
    assert settings.outbound.directory == Path("outbox") and not settings.outbound.uses_relay
    assert settings.smtp.max_message_size == 25 * 1024 * 1024


def test_environment_beats_file_and_flags_beat_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[smtp]\nport = 3000\nhost = '0.0.0.0'\n")
    monkeypatch.setenv("INTAKE_SMTP__PORT", "4000")
    monkeypatch.setenv("INTAKE_OUTBOUND__PASSWORD", "s3cret")
    settings = load_settings(path)
    assert (settings.smtp.host, settings.smtp.port) == ("0.0.0.0", 4000)
    assert settings.outbound.password is not None
    assert settings.outbound.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert load_settings(path, {"smtp.port": 5000}).smtp.port == 5000


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[smtp]\nprot = 25\n", "smtp.prot: unknown key"),
        ("[smtp]\nport = 'many'\n", "smtp.port: Input should be a valid integer"),
        ("[smtp]\nport = 70000\n", "smtp.port: Input should be less than or equal to 65535"),
        ("[nonsense]\nx = 1\n", "nonsense: unknown key"),
        ("[intake]\nsupport_addresses = ['not an address']\n", "intake.support_addresses"),
        ("[intake]\nticket_number_format = 'TKT-{name}'\n", "intake.ticket_number_format"),
        ("[intake]\nticket_number_format = '{0}-{0}'\n", "intake.ticket_number_format"),
        ("[outbound]\nsecurity = 'maybe'\n", "outbound.security"),
        ("[smtp\n", "config file"),
        ("[smtp]\ntls_certificate = 'c.pem'\n", "smtp: Value error, tls_certificate and tls_key"),
        ("[smtp]\nrequire_tls = true\n", "smtp: Value error, require_tls needs tls_certificate"),
        ("[smtp]\nmax_sessions = 0\n", "smtp.max_sessions: Input should be greater than 0"),
    ],
    ids=[
        "typo",
        "wrong-type",
        "out-of-range",
        "unknown-section",
        "bad-address",
        "bad-number-format",
        "number-twice",
        "bad-choice",
        "toml-syntax",
        "tls-certificate-without-key",
        "require-tls-without-certificate",
        "no-sessions",
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, toml))
    message = str(error.value)
    assert expected in message and "\n" not in message


def test_unknown_environment_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_SMTP__PROT", "25")
    with pytest.raises(ConfigError, match=r"smtp\.prot: unknown key"):
        load_settings()


def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("replies", {"directory": Path("replies"), "relay_host": None}),
        (
            "smtp://127.0.0.1:2600",
            {"relay_host": "127.0.0.1", "relay_port": 2600, "security": "none"},
        ),
        (
            "smtps://relay.example",
            {"relay_host": "relay.example", "relay_port": 465, "security": "tls"},
        ),
        (
            "smtp+starttls://u%40x:p%3A@relay.example",
            {
                "relay_host": "relay.example",
                "relay_port": 587,
                "security": "starttls",
                "username": "u@x",
                "password": "p:",
            },
        ),
    ],
    ids=["directory", "plain", "implicit-tls", "starttls-auth"],
)
def test_deliver_target(target: str, expected: dict[str, object]) -> None:
    assert parse_deliver_target(target) == expected


HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


@pytest.mark.parametrize(
    ("listen", "auth", "refused"),
    [
        ("0.0.0.0:8025", "", True),
        ("[::]:8025", "", True),
        ("192.0.2.10:8025", "", True),
        ("0.0.0.0:8025", "[web.auth]\nsession_hours = 8\n", True),  # settings, no accounts
        ("127.0.0.1:8025", "", False),
        ("127.8.9.1:8025", "", False),
        ("[::1]:8025", "", False),
        ("localhost:8025", "", False),
        ("0.0.0.0:8025", "[web.auth]\nusers_file = 'staff.passwd'\n", False),
        ("0.0.0.0:8025", f"[web.auth.users]\nann = '{HASH}'\n", False),
    ],
    ids=[
        "any-v4",
        "any-v6",
        "lan-address",
        "auth-without-accounts",
        "loopback",
        "loopback-net",
        "loopback-v6",
        "localhost",
        "users-file",
        "inline-users",
    ],
)
def test_the_board_off_loopback_needs_web_auth(
    tmp_path: Path, listen: str, auth: str, refused: bool
) -> None:
    path = write(tmp_path, auth)
    if refused:
        with pytest.raises(ConfigError, match=r"web\.auth: listen .* is not loopback"):
            load_settings(path, {"web.listen": listen})
    else:
        assert load_settings(path, {"web.listen": listen}).web.listen == listen


@pytest.mark.parametrize(
    ("users", "expected"),
    [
        ("'ann:x' = 'HASH'", "is not a staff name"),
        ("ann = 'plaintext-password'", "ann: not an argon2 hash"),
    ],
    ids=["colon-in-name", "not-a-hash"],
)
def test_inline_staff_accounts_are_checked(tmp_path: Path, users: str, expected: str) -> None:
    path = write(tmp_path, "[web.auth.users]\n" + users.replace("HASH", HASH) + "\n")
    with pytest.raises(ConfigError, match=expected) as raised:
        load_settings(path)
    assert "web.auth.users" in str(raised.value)
    assert "plaintext-password" not in str(raised.value)


def test_settings_from_a_file_travel_to_the_processing_process_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processing process gets the daemon's settings pickled: file, environment and
    flags as the daemon resolved them, secrets included, none of the sources read again."""
    config = tmp_path / "intake.toml"
    config.write_text('[intake]\nthread_secret = "from-the-file"\nmax_attempts = 7\n')
    monkeypatch.setenv("INTAKE_INTAKE__SWEEP_INTERVAL", "3")
    settings = load_settings(config, {"smtp.port": 2626})
    config.unlink()  # a child that read the file again would fail here
    monkeypatch.delenv("INTAKE_INTAKE__SWEEP_INTERVAL")
    copy = pickle.loads(pickle.dumps(settings))  # noqa: S301 - our own bytes
    assert copy.model_dump() == settings.model_dump()
    assert copy.intake.thread_secret is not None
    assert copy.intake.thread_secret.get_secret_value() == "from-the-file"
    assert (copy.intake.max_attempts, copy.intake.sweep_interval, copy.smtp.port) == (7, 3.0, 2626)
