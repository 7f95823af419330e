"""A private Postfix for tests and benchmarks: its own config, queue and log, on loopback.

Written for Postfix 3.x (Debian's ``postfix``). Nothing touches the machine's own Postfix:
``config_directory``, ``queue_directory`` and ``data_directory`` live in a temp dir, the
SMTP server listens on a free port of 127.0.0.1 only, and ``maillog_file`` (postlogd,
Postfix >= 3.4) puts every delivery status line in a file the test reads. No service is
chrooted, so nothing has to be copied into the queue directory.

``postfix -c DIR start`` needs root (the master drops to ``mail_owner``), and pipe(8)
refuses to run a command as root or as the mail owner, so commands run as ``nobody``:
whatever the command needs (its config file, a SQLite directory) must be readable or
writable by that user, which is why the temp dir is world-traversable.

The API is small on purpose, so a benchmark can reuse it::

    with PrivatePostfix.create(transport={"example.com": "intake:"},
                               services={"intake": pipe_service(argv)}) as mta:
        mta.send(messages)                   # plain SMTP to the private smtpd
        mta.wait_for_status("sent", count)   # reads maillog_file
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

POSTFIX = "/usr/sbin/postfix"
PIPE_USER = "nobody"  # pipe(8): never root, never mail_owner
# status=sent|deferred|bounced|expired on the delivery agents' lines (smtp, pipe, error...).
STATUS = re.compile(r"\bstatus=(?P<status>sent|deferred|bounced|expired)\b")


def postfix_missing() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if not os.access(POSTFIX, os.X_OK):
        return "postfix is not installed (Debian: apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix needs root (postfix -c DIR start)"
    for user in ("postfix", PIPE_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"user {user!r} does not exist (the postfix package creates 'postfix')"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runs_as(user: str, argv: Sequence[str]) -> bool:
    """Whether ``argv`` runs (exit 0) with ``user``'s uid and gid, as pipe(8) would run it."""
    entry = pwd.getpwnam(user)
    try:
        done = subprocess.run(
            list(argv),
            user=entry.pw_uid,
            group=entry.pw_gid,
            extra_groups=[],
            capture_output=True,
            timeout=120,
            check=False,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def python_for(user: str, base: Path) -> list[str] | None:
    """``[python, "-m", "intake"]`` that ``user`` can run, or None when there is none.

    This interpreter first; when ``user`` cannot execute it (a pyenv under /root, mode
    0700), a venv made in ``base`` from the system's python of the same minor version,
    reading this venv's site-packages (it must be world-readable, as the README asks).
    """
    here = [sys.executable, "-m", "intake"]
    if runs_as(user, [*here, "--version"]):
        return here
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin")
    if system is None:
        return None
    bridge = base / "pipe-venv"
    subprocess.run([system, "-m", "venv", "--without-pip", str(bridge)], check=True, timeout=120)
    [site_dir] = (bridge / "lib").glob("python*/site-packages")
    ours = [p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)]
    # An "import" line in a .pth runs: addsitedir also reads the editable install's .pth.
    (site_dir / "intake-venv.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)
    )
    bridged = [str(bridge / "bin" / "python"), "-m", "intake"]
    return bridged if runs_as(user, [*bridged, "--version"]) else None


def pipe_service(argv: Sequence[str], flags: str = "Rq", user: str = PIPE_USER) -> str:
    """A master.cf pipe(8) service line running ``argv`` (macros such as ${sender} kept)."""
    return f"unix - n n - - pipe\n  flags={flags} user={user} null_sender= argv={' '.join(argv)}"


# Services every instance needs (pickup too: `postfix flush` checks it is there), with
# "n" in the chroot column everywhere (see the module docstring).
BASE_MASTER = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixError(RuntimeError):
    """A ``postfix`` command failed; the message carries its stderr."""


@dataclass
class PrivatePostfix:
    """One Postfix instance under ``base``; ``start``/``stop`` or use it as a context manager."""

    base: Path
    port: int
    transport: Mapping[str, str]
    services: Mapping[str, str] = field(default_factory=dict)
    main_extra: Mapping[str, str] = field(default_factory=dict)
    running: bool = False

    @classmethod
    def create(
        cls,
        transport: Mapping[str, str],
        services: Mapping[str, str] | None = None,
        main_extra: Mapping[str, str] | None = None,
    ) -> PrivatePostfix:
        """A configured (not yet started) instance in a fresh temp dir on a free port."""
        base = Path(tempfile.mkdtemp(prefix="intake-postfix-"))
        base.chmod(0o755)  # pipe(8) commands run as nobody and must reach their files here
        mta = cls(base, free_port(), transport, services or {}, main_extra or {})
        mta.configure()
        return mta

    @property
    def config_dir(self) -> Path:
        return self.base / "etc"

    @property
    def maillog(self) -> Path:
        return self.base / "maillog"

    def configure(self) -> None:
        self.config_dir.mkdir(exist_ok=True)
        # postfix start creates the queue's subdirectories (post-install create-missing),
        # not the queue directory itself; the data directory belongs to the mail owner.
        (self.base / "spool").mkdir(mode=0o755, exist_ok=True)
        data = self.base / "data"
        data.mkdir(mode=0o700, exist_ok=True)
        owner = pwd.getpwnam("postfix")
        os.chown(data, owner.pw_uid, owner.pw_gid)
        routes = ", ".join(f"{domain}={route}" for domain, route in self.transport.items())
        main = {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.base / "spool"),
            "data_directory": str(self.base / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mta.intake-test.localhost",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": ", ".join(self.transport),
            "transport_maps": f"inline:{{{routes}}}",
            "default_transport": "error:5.1.2 the test instance delivers nowhere else",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "biff": "no",
            # The log the tests read: postlogd writes it (maillog_file_prefixes allows it).
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.base),
            # Retry within seconds, and never give up (bounce) within a test's lifetime.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "maximal_queue_lifetime": "1d",
            "bounce_queue_lifetime": "1d",
            **self.main_extra,
        }
        (self.config_dir / "main.cf").write_text(
            "".join(f"{key} = {value}\n" for key, value in main.items())
        )
        master = [f"{self.port} inet n - n - - smtpd", BASE_MASTER.rstrip("\n")]
        master += [f"{name} {line}" for name, line in self.services.items()]
        (self.config_dir / "master.cf").write_text("\n".join(master) + "\n")

    def postfix(self, *args: str, timeout: float = 60) -> str:
        """``postfix -c DIR ARGS``; its output, or an error carrying what it said."""
        done = subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise PostfixError(f"postfix {' '.join(args)}: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def start(self) -> None:
        self.postfix("start")
        self.running = True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                if sock.recv(512).startswith(b"220"):
                    return
            time.sleep(0.1)
        raise AssertionError(f"private postfix on port {self.port} did not answer in 30s")

    def stop(self) -> None:
        if self.running:
            with contextlib.suppress(PostfixError, subprocess.SubprocessError):
                self.postfix("stop")
            self.running = False

    def flush(self) -> None:
        """Retry every deferred message now (``postfix flush``), not at the next queue run."""
        self.postfix("flush")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PrivatePostfix:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def send(self, messages: Iterable[tuple[str, Sequence[str], bytes]]) -> int:
        """Submit (sender, recipients, raw) over SMTP, one session; returns how many."""
        count = 0
        with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as client:
            for sender, recipients, raw in messages:
                client.sendmail(sender, list(recipients), raw)
                count += 1
        return count

    def log_lines(self) -> list[str]:
        try:
            return self.maillog.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def statuses(self) -> dict[str, list[str]]:
        """Delivery status lines by status (sent, deferred, bounced, expired)."""
        found: dict[str, list[str]] = {}
        for line in self.log_lines():
            match = STATUS.search(line)
            if match:
                found.setdefault(match["status"], []).append(line)
        return found

    def wait_for_status(self, status: str, count: int, timeout: float = 120) -> list[str]:
        """Wait until ``count`` lines say status=``status``; fail early on any bounce."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.statuses()
            bounced = found.get("bounced", []) + found.get("expired", [])
            assert not bounced, f"postfix bounced mail: {bounced[:3]}"
            if len(found.get(status, [])) >= count:
                return found[status]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found.get(status, []))} of {count} status={status} within "
                    f"{timeout}s; last log lines: {self.log_lines()[-5:]}"
                )
            time.sleep(0.2)

    def queue_ids(self) -> Iterator[str]:
        """Ids of the messages still queued (read from the queue directories: no root
        ``postqueue`` against an alternate config directory needed)."""
        for sub in ("incoming", "active", "deferred", "hold"):
            root = self.base / "spool" / sub
            if root.is_dir():
                yield from (p.name for p in root.rglob("*") if p.is_file())
