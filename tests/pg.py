"""A private, throw-away PostgreSQL cluster for tests and benchmarks.

Uses Debian's server binaries (/usr/lib/postgresql/<ver>/bin).  initdb refuses to run as
root, so when we are root the cluster runs as the ``postgres`` user (via runuser) with its
data directory in a temporary directory chowned to it.  Listens on 127.0.0.1 only, on a
free port; ``stop()`` shuts it down with pg_ctl.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")


def find_pg_bin() -> Path | None:
    """The newest installed server bin dir (prefers 15), or None."""
    if not PG_ROOT.is_dir():
        return None
    candidates = sorted(
        (p for p in PG_ROOT.iterdir() if (p / "bin" / "initdb").exists()),
        key=lambda p: (p.name != "15", -int(p.name) if p.name.isdigit() else 0),
    )
    return candidates[0] / "bin" if candidates else None


def unavailable_reason() -> str | None:
    if find_pg_bin() is None:
        return "PostgreSQL server binaries not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' user to run the cluster as"
        if shutil.which("runuser") is None:
            return "runuser not found"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgCluster:
    bin_dir: Path
    base_dir: Path
    port: int
    user: str
    options: str = ""  # the server options it was started with (for ``start_server``)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def stop_server(self, mode: str = "fast") -> None:
        """Shut the server down, keeping its data (an outage: ``start_server`` ends it)."""
        self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "stop")

    def start_server(self) -> None:
        self._run(
            self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.base_dir / "server.log",
            "-o", self.options, "-w", "-t", "60", "start",
        )

    def stop(self) -> None:
        try:
            self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def start_cluster(durable: bool = False) -> PgCluster:
    """Start a cluster; ``durable=False`` turns fsync off (fine for throw-away test data)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise RuntimeError(unavailable_reason() or "no PostgreSQL")
    base = Path(tempfile.mkdtemp(prefix="dvrt-pg-"))
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
    cluster = PgCluster(bin_dir=bin_dir, base_dir=base, port=free_port(), user=user)
    cluster._run(
        bin_dir / "initdb", "-D", cluster.data_dir, "-U", user, "-A", "trust", "-E", "UTF8",
        "--no-instructions",
    )
    for attempt in range(3):  # the free port may be taken by someone else before we bind it
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={cluster.port}"
            f" -c unix_socket_directories={base} -c max_connections=300 -c shared_buffers=64MB"
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        cluster.options = options
        try:
            cluster.start_server()
            return cluster
        except subprocess.CalledProcessError:
            if attempt == 2:
                log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
                shutil.rmtree(base, ignore_errors=True)
                raise RuntimeError(f"PostgreSQL did not start:\n{log}") from None
            cluster.port = free_port()
    raise AssertionError("unreachable")
