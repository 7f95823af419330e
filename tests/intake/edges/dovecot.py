"""A throw-away Dovecot for the IMAP tests: a child process with its own config and Maildirs.

Written for Dovecot 2.3 (Debian's ``dovecot-imapd``). Everything lives in a short temp
dir (UNIX socket paths have a 108-byte limit) made readable to Dovecot's unprivileged
auth and login users; mail is stored as ``nobody`` because Dovecot refuses uid 0. Three
flavours: plaintext on loopback (``ssl = no``), TLS with a self-signed certificate
(STARTTLS on one port, implicit TLS on another) and XOAUTH2 through the oauth2 passdb
pointed at a token-introspection URL the test serves.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from imapclient import IMAPClient

MAIL_UID = 65534  # nobody: Dovecot will not store mail as root


def _accounts() -> tuple[int, int, str, str]:
    """(mail uid, mail gid, internal user, login user) for the user running the tests.

    As root: mail as ``nobody``, Debian's ``dovecot``/``dovenull`` for auth and login.
    Otherwise Dovecot runs every process as the current user (its non-root mode).
    """
    if os.geteuid() == 0:
        return MAIL_UID, MAIL_UID, "dovecot", "dovenull"
    name = pwd.getpwuid(os.geteuid()).pw_name
    return os.geteuid(), os.getegid(), name, name


USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def dovecot_binary() -> str | None:
    found = shutil.which("dovecot") or "/usr/sbin/dovecot"
    return found if os.access(found, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    port: int
    tls_port: int | None = None
    cert: Path | None = None
    oauth: bool = False
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    capabilities: str | None = None
    process: subprocess.Popen[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        binary = dovecot_binary()
        assert binary, "dovecot is not installed"
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends every child
        )
        self._wait_listening()

    def stop(self) -> None:
        if self.process is None:
            return
        group = self.process.pid  # the session leader's pid is the group id
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        # The master leaves imap/log/stats children behind when it exits; a restarted
        # server drops its clients, so end them too (like `systemctl restart dovecot`).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process = None
        _wait(lambda: not _port_open(self.port), 10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        if self.process is not None:  # nothing to shut down gracefully: end the group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()[-2000:]}")
            if _port_open(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()[-2000:]}")

    # -- using it ------------------------------------------------------------------------

    def url(
        self,
        user: str = "alice",
        password: str | None = None,
        folder: str = "INBOX",
        scheme: str = "imap",
    ) -> str:
        secret = self.users[user] if password is None else password
        port = self.tls_port if scheme == "imaps" else self.port
        credentials = f"{user}:{secret}" if secret else user
        return f"{scheme}://{credentials}@127.0.0.1:{port}/{folder}"

    def client(self, user: str = "alice") -> IMAPClient:
        client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=30)
        if self.cert is not None:
            import ssl

            client.starttls(ssl.create_default_context(cafile=str(self.cert)))
        if self.oauth:  # the introspection endpoint always accepts "<user>-admin-token"
            client.oauth2_login(user, f"{user}-admin-token")
        else:
            client.login(user, self.users[user])
        return client

    def append(self, messages: Iterable[bytes], user: str = "alice", folder: str = "INBOX") -> None:
        client = self.client(user)
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            batch = list(messages)
            if not client.has_capability("MULTIAPPEND"):
                for raw in batch:
                    client.append(folder, raw)
                return
            for start in range(0, len(batch), 100):  # RFC 3502 MULTIAPPEND: one command
                client.multiappend(folder, batch[start : start + 100])
        finally:
            client.logout()

    def count(self, folder: str, user: str = "alice") -> int:
        client = self.client(user)
        try:
            if not client.folder_exists(folder):
                return 0
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
        finally:
            client.logout()

    def message_ids(self, folder: str, user: str = "alice") -> list[str]:
        client = self.client(user)
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
            return sorted(
                d[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip()
                for d in fetched.values()
            )
        finally:
            client.logout()


def make_dovecot(
    *, tls: bool = False, oauth_url: str | None = None, capabilities: str | None = None
) -> Dovecot:
    """Write a config into a fresh temp dir and start Dovecot on free loopback ports.

    ``capabilities`` replaces the advertised post-login capabilities (``imap_capability``),
    e.g. to play a server without MOVE or IDLE.
    """
    root = Path(tempfile.mkdtemp(prefix="intake-dv-"))
    root.chmod(0o755)  # Dovecot's auth/login users must read the config and passwd file
    (root / "mail").mkdir()
    uid, gid, _, _ = _accounts()
    if os.geteuid() == 0:
        os.chown(root / "mail", uid, gid)
    server = Dovecot(root, free_port(), oauth=oauth_url is not None)
    server.capabilities = capabilities
    if tls:
        server.tls_port = free_port()
        server.cert = _self_signed(root)
    (root / "passwd").write_text(
        "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in server.users.items()), encoding="utf-8"
    )
    if oauth_url:
        (root / "oauth2.conf.ext").write_text(
            f"introspection_mode = post\nintrospection_url = {oauth_url}\n"
            "username_attribute = username\nactive_attribute = active\nactive_value = true\n",
            encoding="utf-8",
        )
    (root / "dovecot.conf").write_text(_config(server), encoding="utf-8")
    server.start()
    return server


def _config(server: Dovecot) -> str:
    root = server.root
    uid, gid, internal, login = _accounts()
    if server.oauth:
        driver = f"oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {root}/oauth2.conf.ext"
    else:
        driver = f"passwd-file\n  args = scheme=PLAIN username_format=%u {root}/passwd"
    passdb = f"passdb {{\n  driver = {driver}\n}}\n"
    ssl_lines = "ssl = no\n"
    imaps = "  inet_listener imaps {\n    port = 0\n  }\n"
    if server.cert is not None:
        ssl_lines = f"ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem\n"
        imaps = f"  inet_listener imaps {{\n    port = {server.tls_port}\n    ssl = yes\n  }}\n"
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl_lines}disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
first_valid_uid = {min(uid, 100)}
default_internal_user = {internal}
default_login_user = {login}
mail_location = maildir:{root}/mail/%u
mail_fsync = never
{f"imap_capability = {server.capabilities}" if server.capabilities else ""}
{passdb}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {server.port}
  }}
{imaps}}}
"""


def _self_signed(root: Path) -> Path:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (root / "key.pem").chmod(0o644)
    return root / "cert.pem"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)


@dataclass
class Introspection:
    """A tiny OAuth 2 token-introspection endpoint (RFC 7662) for Dovecot's oauth2 passdb."""

    valid: dict[str, str] = field(default_factory=dict)  # access token -> user name
    seen: list[str] = field(default_factory=list)  # tokens Dovecot asked about
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}/introspect"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                length = int(self.headers.get("Content-Length") or 0)
                token = parse_qs(self.rfile.read(length).decode()).get("token", [""])[0]
                owner.seen.append(token)
                user = owner.valid.get(token) or (
                    token.removesuffix("-admin-token") if token.endswith("-admin-token") else None
                )
                body = json.dumps({"active": user is not None, "username": user or ""}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
