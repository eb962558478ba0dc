"""A throwaway PostgreSQL cluster on 127.0.0.1, started from Debian's server binaries.

`initdb` refuses to run as root, so as root the cluster belongs to the `postgres` system
user (created by Debian's package); otherwise to the current user. `fsync=off` because
the cluster lives only as long as the test session: durability is what kitaru's own
tests check on its side, not the server's.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_bin() -> Path | None:
    """The folder of PostgreSQL's server binaries (newest version found), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


class PostgresServer:
    """One running cluster: `url(dbname)` connects to it; `create_database()` makes a fresh one."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.user = "kitaru"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Start a cluster in a temporary folder; stop it and remove the folder at the end.

    `durable` keeps the server's own defaults (fsync, synchronous_commit, full-page writes),
    as a production server has them; the default turns them off, which is enough for tests.
    """
    bindir = server_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="kitaru-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    server = PostgresServer(bindir, root, port)
    subprocess.run(
        _as_owner([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", server.user,
                   "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True,
    )
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
            "-c max_connections=200")
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    log = root / "server.log"
    subprocess.run(
        _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w",
                   "-t", "60", "start"]),
        check=True, capture_output=True,
    )
    try:
        _wait_ready(server)
        yield server
    finally:
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PostgresServer, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
