"""Staff accounts (``intake.web.staff``): the config's and the file's, verification, the
rehash of outdated parameters, and the users file's format and atomic rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr

from intake.errors import ConfigError
from intake.settings import WebAuthSettings
from intake.web.staff import StaffAccounts, Verified, read_users_file, set_password

OLD = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # outdated, cheap parameters
NEWER = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)


def accounts(tmp_path: Path, inline: dict[str, str] | None = None) -> StaffAccounts:
    users = {name: SecretStr(phc) for name, phc in (inline or {}).items()}
    auth = WebAuthSettings(users=users, users_file=tmp_path / "staff.passwd")
    return StaffAccounts(auth, hasher=NEWER)


@pytest.mark.parametrize(
    ("name", "password", "expected"),
    [
        ("carol", "inline password", Verified("carol", known=True, ok=True)),
        ("carol", "wrong password", Verified("carol", known=True, ok=False)),
        ("ann", "file password", Verified("ann", known=True, ok=True)),
        ("ann", "inline password", Verified("ann", known=True, ok=False)),  # the file wins
        ("zed", "inline password", Verified("zed", known=False, ok=False)),
    ],
    ids=["inline", "inline-wrong", "file", "file-wins-a-clash", "unknown"],
)
def test_verify(tmp_path: Path, name: str, password: str, expected: Verified) -> None:
    set_password(tmp_path / "staff.passwd", "ann", "file password", OLD)
    inline = {"carol": OLD.hash("inline password"), "ann": OLD.hash("inline password")}
    assert accounts(tmp_path, inline).verify(name, password) == expected


def test_outdated_parameters_are_rehashed_at_login_when_the_file_is_writable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "staff.passwd"
    set_password(path, "ann", "file password", OLD)
    staff = accounts(tmp_path)
    assert not staff.verify("ann", "wrong password").ok
    assert read_users_file(path)["ann"].startswith("$argon2id$v=19$m=8,t=1,p=1$")  # untouched
    assert staff.verify("ann", "file password").ok
    rehashed = read_users_file(path)["ann"]
    assert rehashed.startswith("$argon2id$v=19$m=16,t=2,p=1$")
    assert staff.verify("ann", "file password").ok  # and the new hash is read back


def test_a_file_spoilt_while_serving_keeps_the_last_good_accounts(tmp_path: Path) -> None:
    path = tmp_path / "staff.passwd"
    set_password(path, "ann", "file password", OLD)
    staff = accounts(tmp_path)
    path.write_text("ann $argon2id$ no colon here\n")
    assert staff.verify("ann", "file password").ok
    with pytest.raises(ConfigError, match=r"staff.passwd: line 1: expected NAME:ARGON2HASH"):
        accounts(tmp_path)  # at start-up the same file is an error


def test_a_missing_file_has_no_accounts(tmp_path: Path) -> None:
    staff = accounts(tmp_path)
    assert staff.users() == {}
    assert staff.verify("ann", "any password") == Verified("ann", known=False, ok=False)
    set_password(tmp_path / "staff.passwd", "ann", "file password", OLD)
    assert staff.verify("ann", "file password").ok  # added while serving: counts at once
