"""Staff accounts for the board's login: the users file, argon2 hashing and verification.

An account is a name and an argon2id hash in PHC string form (RFC 9106; argon2-cffi's
``PasswordHasher`` with its default parameters, RFC 9106's second recommended option). They
come from ``web.auth.users`` in the config and from ``web.auth.users_file``, one
``NAME:HASH`` line each (the htpasswd shape; a PHC string has no colon), which ``intake
staff add`` writes atomically (a temporary file, fsync, rename) with mode 0600. The running
daemon re-reads the file when it changes, so an added or removed account counts at once.

Verification takes the same time whether the name exists or not: an unknown name is checked
against a dummy hash (OWASP Authentication Cheat Sheet, "Authentication Responses").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from intake.errors import ConfigError
from intake.settings import WebAuthSettings, check_staff_name

MIN_PASSWORD = 8  # NIST SP 800-63B §5.1.1.2: at least 8 characters for a chosen secret
MAX_PASSWORD = 1024  # argon2 takes any length; a megabyte form field is not a password


def make_hasher() -> PasswordHasher:
    return PasswordHasher()  # RFC 9106 §4 "second recommended option": t=3, m=64 MiB, p=4


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


# --------------------------------------------------------------------------- the file


def read_users_file(path: Path) -> dict[str, str]:
    """The file's accounts; a missing file has none. ConfigError names a malformed line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"web.auth.users_file {path}: {exc.strerror}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, phc = line.partition(":")
        if not sep or not phc.startswith("$argon2") or not _valid_name(name):
            where = f"web.auth.users_file {path}: line {number}"
            raise ConfigError(f"{where}: expected NAME:ARGON2HASH")
        users[name] = phc
    return users


def write_users_file(path: Path, users: Mapping[str, str]) -> None:
    """Replace the file atomically: readers see the old accounts or the new, never half."""
    body = "".join(f"{name}:{phc}\n" for name, phc in sorted(users.items()))
    directory = path.parent
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    temporary = Path(name)
    try:
        os.fchmod(fd, 0o600)  # hashes are secrets too (an offline guessing target)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)  # the rename itself survives a crash


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One writer at a time (two `intake staff add` at once would lose one account)."""
    lock = path.with_name(f".{path.name}.lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def set_password(path: Path, name: str, password: str, hasher: PasswordHasher) -> bool:
    """Add ``name`` or change its password; True when the account is new."""
    check_staff_name(name)
    phc = hasher.hash(check_password(password))
    with locked(path):
        users = read_users_file(path)
        new = name not in users
        write_users_file(path, {**users, name: phc})
    return new


def remove_user(path: Path, name: str) -> bool:
    """Remove ``name``; False when the file has no such account."""
    with locked(path):
        users = read_users_file(path)
        if name not in users:
            return False
        del users[name]
        write_users_file(path, users)
    return True


def _valid_name(name: str) -> bool:
    try:
        check_staff_name(name)
    except ValueError:
        return False
    return True


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the accounts


@dataclass(frozen=True, slots=True)
class Verified:
    name: str
    known: bool  # the account exists (whether or not the password was right)
    ok: bool


class StaffAccounts:
    """The accounts of ``web.auth``: the config's and the file's (the file's win a clash)."""

    def __init__(self, auth: WebAuthSettings, hasher: PasswordHasher | None = None) -> None:
        self.inline = {name: phc.get_secret_value() for name, phc in auth.users.items()}
        self.path = auth.users_file
        self.hasher = hasher or make_hasher()
        self._dummy = self.hasher.hash("not a password: only ever compared with")
        self._seen: tuple[int, int, int] | None = None
        self._from_file: dict[str, str] = {}
        self._loaded = False
        self.users()  # a malformed file is a ConfigError now, at start-up
        self._loaded = True

    def users(self) -> dict[str, str]:
        """Every account now; the file is re-read when its inode, size or mtime moved."""
        if self.path is not None:
            stamp = _stamp(self.path)
            if stamp != self._seen:
                self._from_file, self._seen = self._reread(self.path), stamp
        return {**self.inline, **self._from_file}

    def _reread(self, path: Path) -> dict[str, str]:
        """The file's accounts; a file spoilt while serving keeps the last good ones (the
        first read, at start-up, raises: a bad file stops the daemon there)."""
        try:
            return read_users_file(path)
        except ConfigError as exc:
            if not self._loaded:
                raise
            structlog.get_logger("intake.web").error("web.auth.users_file_bad", error=str(exc))
            return self._from_file

    def exists(self, name: str) -> bool:
        return name in self.users()

    def fingerprint(self, name: str) -> str | None:
        """A short tag of the account's hash: a session ends when the password changes."""
        phc = self.users().get(name)  # a digest: the cookie is signed, not encrypted
        return hashlib.sha256(phc.encode()).hexdigest()[:16] if phc else None

    def verify(self, name: str, password: str) -> Verified:
        """Check the password (slow on purpose: argon2); an unknown name costs the same."""
        phc = self.users().get(name)
        try:
            self.hasher.verify(phc or self._dummy, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return Verified(name, phc is not None, False)
        if phc is None:  # the dummy matched: impossible, but never a login
            return Verified(name, False, False)
        self._rehash_if_needed(name, phc, password)
        return Verified(name, True, True)

    def _rehash_if_needed(self, name: str, phc: str, password: str) -> None:
        """New parameters (a newer argon2-cffi) reach a file account at its next login."""
        if self.path is None or name not in self._from_file or name in self.inline:
            return
        if not self.hasher.check_needs_rehash(phc) or not os.access(self.path.parent, os.W_OK):
            return  # the rewrite goes through a temporary file beside it
        with contextlib.suppress(OSError, ConfigError):  # the login stands; the hash waits
            set_password(self.path, name, password, self.hasher)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns
