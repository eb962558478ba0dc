"""A real `kitaru server start` process on 127.0.0.1 for tests, with an API key made for it.

`running_server(root)` serves a SQLite registry in `root/home` (or `registry=` a PostgreSQL
URL); `server.wipe()` empties that registry but for the service accounts and API keys, so a
session-scoped server gives every test an empty backend, as the Registry kit requires.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

#: What `wipe` keeps: the server's own service accounts and API keys.
AUTH_KINDS = ("service-account", "api-key")
#: The registry's tables (PostgreSQL); SQLite's are read from the file.
TABLES = ("executions", "calls", "artifacts", "waits", "logs", "metadata", "memory", "documents")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class KitaruServer:
    url: str
    home: Path
    tokens: dict[str, str]  # scope -> token of the `tests` service account
    registry: str | None  # a PostgreSQL URL, or None for the home's SQLite file
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def token(self) -> str:
        return self.tokens["admin"]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wipe(self) -> None:
        """Empty the served registry, keeping its service accounts and API keys."""
        if self.registry is None:
            with contextlib.closing(sqlite3.connect(self.home / "kitaru.db", timeout=30)) as conn:
                tables = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
                with conn:
                    for table in tables:
                        where = " WHERE kind NOT IN (?, ?)" if table == "documents" else ""
                        conn.execute(f"DELETE FROM {table}{where}", AUTH_KINDS if where else ())
            return
        import psycopg

        with psycopg.connect(self.registry, autocommit=True) as conn:
            conn.execute("TRUNCATE " + ", ".join(t for t in TABLES if t != "documents"))
            conn.execute("DELETE FROM documents WHERE kind NOT IN (%s, %s)", AUTH_KINDS)
            # The artifact versions' sequences (one per name): numbering starts again at 1.
            for schema, name in conn.execute(
                "SELECT schemaname, sequencename FROM pg_sequences "
                "WHERE sequencename LIKE 'kitaru_av_%'"
            ).fetchall():
                conn.execute(f'DROP SEQUENCE "{schema}"."{name}"')


def _make_keys(home: Path, registry: str | None) -> dict[str, str]:
    from kitaru_server.keys import KeyStore
    from kitaru_server.scopes import SCOPES

    from kitaru_core.testing import build_component

    flavor, config = ("postgres", {"url": registry}) if registry else (
        "sqlite", {"path": str(home / "kitaru.db")})
    reg = build_component("registry", flavor, config, home=home)
    try:
        keys = KeyStore(reg)  # type: ignore[arg-type]
        keys.create_account("tests", description="the test session")
        return {scope: keys.create_key("tests", scope=scope)[1] for scope in SCOPES}
    finally:
        reg.close()


@contextlib.contextmanager
def running_server(root: Path, *, registry: str | None = None, env: dict[str, str] | None = None,
                   recovery_interval: float = 0) -> Iterator[KitaruServer]:
    """`kitaru server start` on a free port until the block ends (then SIGTERM).

    Recovery sweeps are off unless `recovery_interval` is set: the records tests write (fake
    owners, runners that resume from the test) are theirs alone.
    """
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    tokens = _make_keys(home, registry)
    port = free_port()
    args = [sys.executable, "-m", "kitaru.cli.main", "server", "start", "--port", str(port),
            "--recovery-interval", str(recovery_interval)]
    if registry:
        args += ["--registry", registry]
    log = root / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=root, env={**os.environ, "KITARU_HOME": str(home), **(env or {})},
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = KitaruServer(f"http://127.0.0.1:{port}", home, tokens, registry, proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kitaru server did not become ready:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
