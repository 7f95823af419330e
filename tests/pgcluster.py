"""A private PostgreSQL cluster for one test: ``initdb`` in a temp dir, its own free port.

Fault tests stop and start this cluster; the machine's shared server on 5432 is never
touched. PostgreSQL refuses to run as root, so when the tests run as root the cluster
runs as the ``postgres`` user (``runuser``), in a directory under /tmp that user owns
(pytest's tmp_path is private to root). Binaries come from /usr/lib/postgresql/*/bin, the
newest first, else from PATH.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port


def postgres_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def missing_reason() -> str | None:
    """Why no private cluster can run here (for ``pytest.skip``), or None."""
    if postgres_bindir() is None:
        return "initdb/pg_ctl not found (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the cluster as"
        if shutil.which("runuser") is None:
            return "running as root and runuser (util-linux) is missing"
    return None


@dataclass
class PgCluster:
    """``start()``/``stop()`` as often as a test likes; ``destroy()`` removes everything."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="intake-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database ``create()`` makes."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/intake"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        bindir = postgres_bindir()
        assert bindir is not None
        command = [str(bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {result.stdout}{result.stderr}{tail}")

    def create(self) -> None:
        """initdb (trust auth, loopback only, no fsync: a test cluster), start, CREATE DATABASE."""
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.root, postgres.pw_uid, postgres.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "max_connections = 50\nshared_buffers = 16MB\n"
            )
        self.start()
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE intake")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (an outage); ``immediate`` is a crash of the server."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
