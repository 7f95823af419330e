"""The IMAP edge's pure parts: mailbox URLs and settings, envelope sender, tokens."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from intake.edges.imap import MailboxPoller, MailboxStore, return_path, unusable_reason
from intake.edges.mailboxes import resolve_mailbox
from intake.edges.oauth import TokenSource, parse_token
from intake.errors import ConfigError, MailboxError, TokenError
from intake.pipeline.core import Pipeline
from intake.settings import MailboxSettings, load_settings, parse_mailbox_url

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "security", "host", "port", "user", "password", "folder"),
    [
        ("imap://u:p@127.0.0.1:1143/INBOX", "plain", "127.0.0.1", 1143, "u", "p", "INBOX"),
        ("imaps://u@imap.example.net", "tls", "imap.example.net", 993, "u", None, "INBOX"),
        (
            "imap+starttls://u:p@mx.example/Support",
            "starttls",
            "mx.example",
            143,
            "u",
            "p",
            "Support",
        ),
        (
            "imaps://a%40b.example:p%2Fq@h:1/Sub/Folder",
            "tls",
            "h",
            1,
            "a@b.example",
            "p/q",
            "Sub/Folder",
        ),
    ],
    ids=["plain-loopback", "imaps-defaults", "starttls-folder", "percent-decoded"],
)
def test_mailbox_url_forms(url, security, host, port, user, password, folder) -> None:
    parsed = parse_mailbox_url(url)
    assert (parsed.security, parsed.host, parsed.port) == (security, host, port)
    assert (parsed.username, parsed.password, parsed.folder) == (user, password, folder)
    assert "p" not in parsed.name.split("@", 1)[0] or password is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("pop3://u@h/INBOX", "scheme"),
        ("imaps:///INBOX", "no host"),
        ("imaps://h/INBOX", "no user"),
        ("imaps://u@h:99999/INBOX", "port"),
    ],
    ids=["scheme", "host", "user", "port"],
)
def test_bad_mailbox_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_mailbox_url(url)


def test_password_moves_out_of_the_url_and_is_masked() -> None:
    box = MailboxSettings.model_validate({"url": "imaps://bot:s3cret@imap.example.net/INBOX"})
    assert "s3cret" not in box.url and "s3cret" not in box.model_dump_json()
    assert box.password is not None and box.password.get_secret_value() == "s3cret"
    assert box.name == "bot@imap.example.net:993/INBOX"


def test_query_parameters_set_mailbox_options() -> None:
    box = MailboxSettings.model_validate(
        {"url": "imaps://bot@h/INBOX?password_env=PW&processed_folder=Done"}
    )
    assert (box.password_env, box.processed_folder) == ("PW", "Done")


def test_plaintext_to_a_remote_host_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="allow_plaintext"):
        load_settings(None, {"imap.mailboxes": [{"url": "imap://u:p@imap.example.net/INBOX"}]})
    allowed = {"url": "imap://u:p@imap.example.net/INBOX", "allow_plaintext": True}
    assert load_settings(None, {"imap.mailboxes": [allowed]}).imap.mailboxes[0].allow_plaintext


def test_unknown_mailbox_key_and_idle_timeout_over_29_minutes_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"imap.mailboxes.0.pasword: unknown key"):
        load_settings(None, {"imap.mailboxes": [{"url": "imaps://u@h/I", "pasword": "x"}]})
    with pytest.raises(ConfigError, match="imap.idle_timeout"):
        load_settings(None, {"imap.idle_timeout": 29 * 60})


def test_the_same_mailbox_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="listed twice"):
        load_settings(
            None, {"imap.mailboxes": [{"url": "imaps://u@h/I"}, {"url": "imaps://u:x@h/I"}]}
        )


def test_password_from_env_and_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    by_file = resolve_mailbox(MailboxSettings(url="imaps://u@h/I", password_file=secret))
    assert by_file.password == "from-file"
    by_env = resolve_mailbox(MailboxSettings(url="imaps://u@h/I", password_env="PW"), {"PW": "env"})
    assert by_env.password == "env"
    with pytest.raises(ValueError, match="PW is not set"):
        resolve_mailbox(MailboxSettings(url="imaps://u@h/I", password_env="PW"), {})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"Return-Path: <jane@acme.example>\r\nFrom: x\r\n\r\nbody", "jane@acme.example"),
        (b"Return-Path: <>\r\nFrom: x\r\n\r\nbody", ""),
        (b"From: x\r\n\r\nReturn-Path: <in@body.example>\r\n", None),
    ],
    ids=["sender", "null-sender", "only-in-body"],
)
def test_return_path_is_the_envelope_sender(raw: bytes, expected: str | None) -> None:
    assert return_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "usable"),
    [
        (b"From: a@b\r\n\r\nhi", True),
        (None, False),
        (b"", False),
        (b"From: a\x00b\r\n\r\n", False),
        (b"just some text\r\n", False),
    ],
    ids=["message", "no-body", "empty", "nul", "no-header"],
)
def test_unusable_messages_are_recognised(raw: bytes | None, usable: bool) -> None:
    assert (unusable_reason(raw) is None) is usable


def test_token_json_with_expiry_and_refresh_token_expiry() -> None:
    token = parse_token(
        json.dumps(
            {
                "access_token": "abc",
                "expires_in": 3600,
                "refresh_token_expires_at": "2026-12-01T00:00:00Z",
            }
        ),
        NOW,
    )
    assert token.value == "abc"
    assert token.expires_at == NOW + timedelta(hours=1)
    assert token.refresh_token_expires_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_token("bare-token\n", NOW).value == "bare-token"
    with pytest.raises(TokenError):
        parse_token('{"token": 1}', NOW)


def test_token_file_is_read_again_before_expiry(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    path.write_text(json.dumps({"access_token": "one", "expires_in": 600}))
    source = TokenSource(file=path, refresh_margin=timedelta(minutes=5))
    assert source.token(NOW).value == "one"
    path.write_text(json.dumps({"access_token": "two", "expires_in": 600}))
    assert source.token(NOW + timedelta(minutes=4)).value == "one"  # still fresh
    assert source.needs_refresh(NOW + timedelta(minutes=5, seconds=1))
    assert source.token(NOW + timedelta(minutes=6)).value == "two"


def test_token_command_and_its_failure() -> None:
    ok = TokenSource(command=f"{sys.executable} -c \"print('cmd-token')\"")
    assert ok.token(NOW).value == "cmd-token"
    failing = TokenSource(command=f"{sys.executable} -c \"import sys; sys.exit('no grant')\"")
    with pytest.raises(TokenError, match="exited 1: no grant"):
        failing.token(NOW)


def test_refresh_token_expiry_warns_well_before() -> None:
    source = TokenSource(
        file=Path("/nonexistent"), refresh_token_expires_at=NOW + timedelta(days=30)
    )
    assert source.refresh_token_warning(NOW) is None
    assert "expires at" in (source.refresh_token_warning(NOW + timedelta(days=20)) or "")
    assert "expired" in (source.refresh_token_warning(NOW + timedelta(days=31)) or "")


class _LeaseBook:
    """A store's lease table for one mailbox: who holds it until when."""

    def __init__(self) -> None:
        self.renewals: list[datetime] = []
        self.taken_by_other = False

    def acquire_lease(self, mailbox: str, owner: str, now: datetime, until: datetime) -> bool:
        self.renewals.append(now)
        return not self.taken_by_other


@pytest.mark.parametrize(
    ("steps", "renewals"),
    [
        ([0, 1, 5, 9.9], 1),  # all within a third of the 30 s lease: one renewal
        ([0, 10, 19, 20.5], 3),  # at 10 s and at 20.5 s a third had passed
        ([0, 0, 40], 2),  # long after: renewed again
    ],
    ids=["within-a-third", "each-third", "long-after"],
)
def test_the_lease_is_renewed_between_batches_once_a_third_has_passed(
    steps: list[float], renewals: int
) -> None:
    poller, book, clock = _lease_poller()
    for seconds in steps:
        clock[0] = NOW + timedelta(seconds=seconds)
        poller._renew_lease()
    assert len(book.renewals) == renewals


def test_a_lease_lost_at_renewal_stops_the_batches_and_the_next_check_asks_again() -> None:
    poller, book, clock = _lease_poller()
    poller._renew_lease()
    book.taken_by_other = True
    clock[0] = NOW + timedelta(seconds=11)
    with pytest.raises(MailboxError, match="lost the mailbox lease"):
        poller._renew_lease()
    clock[0] = NOW + timedelta(seconds=12)  # no shortcut after a refusal: the store decides
    with pytest.raises(MailboxError):
        poller._renew_lease()
    assert len(book.renewals) == 3


def _lease_poller() -> tuple[MailboxPoller, _LeaseBook, list[datetime]]:
    settings = load_settings(None, {"imap.lease_duration": 30})
    mailbox = resolve_mailbox(MailboxSettings(url="imap://u:p@127.0.0.1:1143/INBOX"))
    book, clock = _LeaseBook(), [NOW]
    state = cast(MailboxStore, book)
    poller = MailboxPoller(
        mailbox, settings.imap, cast(Pipeline, None), state, print, lambda: clock[0], "me"
    )
    return poller, book, clock
