"""The `server` registry flavor passes the Registry conformance kit against a real
`kitaru server start` process (over SQLite, and over PostgreSQL), and speaks its errors,
scopes and retries as documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from services.kitaru_server import KitaruServer, running_server

from kitaru_core.testing import RegistryConformance


@pytest.fixture
def sqlite_server(kitaru_server: KitaruServer) -> KitaruServer:
    """The session's server over a SQLite registry (conftest)."""
    return kitaru_server


@pytest.fixture(scope="session")
def postgres_kitaru_server(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory
                           ) -> Iterator[KitaruServer]:
    """One server over a PostgreSQL registry for the session."""
    url = postgres_server.create_database("srv")
    with running_server(tmp_path_factory.mktemp("kitaru-server-pg"), registry=url) as server:
        yield server


class TestServerRegistry(RegistryConformance):
    flavor = "server"

    @pytest.fixture
    def config(self, sqlite_server: KitaruServer) -> dict[str, Any]:
        sqlite_server.wipe()
        return {"url": sqlite_server.url, "api_key": sqlite_server.token}


class TestServerRegistryOverPostgres(RegistryConformance):
    flavor = "server"

    @pytest.fixture
    def config(self, postgres_kitaru_server: KitaruServer) -> dict[str, Any]:
        postgres_kitaru_server.wipe()
        return {"url": postgres_kitaru_server.url, "api_key": postgres_kitaru_server.token}


# -- beyond the kit: keys and scopes, errors, retries -------------------------------------------
def server_registry(server: KitaruServer, home: Path, **config: Any) -> Any:
    from kitaru_core.testing import build_component

    return build_component("registry", "server", {"url": server.url, **config}, home=home)


def test_inline_limit_is_the_served_registrys(sqlite_server: KitaruServer, tmp_path: Path) -> None:
    from kitaru_local.configs import SqliteRegistryConfig

    reg = server_registry(sqlite_server, tmp_path, api_key=sqlite_server.tokens["read"])
    assert reg.inline_limit == SqliteRegistryConfig().inline_max_bytes > 0
    reg.close()


def test_pending_waits_from_a_server_without_that_method(
    sqlite_server: KitaruServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server older than `pending_waits` (its `/info` does not list it) is asked per
    execution with `get_waits`, and gives the same answer."""
    from kitaru_core.records import WaitRecord
    from kitaru_core.testing.suites.registry import execution

    sqlite_server.wipe()
    reg = server_registry(sqlite_server, tmp_path, api_key=sqlite_server.token)
    recs = [execution(status="waiting") for _ in range(3)]
    for rec in recs:
        reg.create_execution(rec)
    for rec in recs[1:]:
        reg.create_wait(WaitRecord(rec.exec_id, "approve", 1, "pending"))
    ids = [r.exec_id for r in recs]
    current = [(w.exec_id, w.name) for w in reg.pending_waits(ids)]
    assert current == [(recs[1].exec_id, "approve"), (recs[2].exec_id, "approve")]
    asked: list[str] = []
    get_waits = reg.get_waits
    monkeypatch.setattr(reg, "get_waits", lambda exec_id: asked.append(exec_id) or get_waits(exec_id))
    info = {**reg.info(), "methods": [m for m in reg.info()["methods"] if m != "pending_waits"]}
    monkeypatch.setattr(reg, "info", lambda: info)
    assert [(w.exec_id, w.name) for w in reg.pending_waits(ids)] == current
    assert asked == ids
    reg.close()


def test_a_read_key_reads_and_cannot_write(sqlite_server: KitaruServer, tmp_path: Path) -> None:
    from kitaru_server.flavors.server_registry import ServerAuthError

    from kitaru_core.testing.suites.registry import execution

    sqlite_server.wipe()
    reg = server_registry(sqlite_server, tmp_path, api_key=sqlite_server.tokens["read"])
    assert reg.list_executions() == []
    with pytest.raises(ServerAuthError, match=r"403.*'operator' scope"):
        reg.create_execution(execution())
    with pytest.raises(ServerAuthError, match="admin"):
        reg.delete_executions(["x"])
    reg.close()


def test_only_an_admin_key_reaches_api_key_documents(sqlite_server: KitaruServer, tmp_path: Path) -> None:
    from kitaru_server.flavors.server_registry import ServerAuthError

    operator = server_registry(sqlite_server, tmp_path, api_key=sqlite_server.tokens["operator"])
    for call in (lambda: operator.list_documents("api-key"),
                 lambda: operator.get_document("service-account", "tests"),
                 lambda: operator.put_document("api-key", "mine", {"scope": "admin"})):
        with pytest.raises(ServerAuthError, match="'admin' scope"):
            call()
    assert operator.put_document("deployment", "review:1", {"n": 1}).version >= 1
    admin = server_registry(sqlite_server, tmp_path, api_key=sqlite_server.tokens["admin"])
    assert [d.name for d in admin.list_documents("service-account")] == ["tests"]
    operator.close()
    admin.close()


def test_no_key_or_a_wrong_one_says_how_to_log_in(sqlite_server: KitaruServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from kitaru_server.flavors.server_registry import ServerAuthError

    monkeypatch.delenv("KITARU_API_KEY", raising=False)
    for config in ({}, {"api_key": "kitaru_0123456789abcdef_" + "x" * 43}):
        reg = server_registry(sqlite_server, tmp_path, **config)
        with pytest.raises(ServerAuthError, match=rf"401.*kitaru login {sqlite_server.url}"):
            reg.list_executions()
        reg.close()
    monkeypatch.setenv("KITARU_API_KEY", sqlite_server.tokens["read"])
    reg = server_registry(sqlite_server, tmp_path)
    assert isinstance(reg.list_executions(), list)
    reg.close()


def test_bad_arguments_are_refused_with_the_registrys_error(sqlite_server: KitaruServer) -> None:
    import httpx

    http = httpx.Client(base_url=f"{sqlite_server.url}/api/v1/registry",
                        headers={"Authorization": f"Bearer {sqlite_server.token}"})
    missing = http.post("/get-execution", json={})
    assert missing.status_code == 422 and "exec_id" in missing.json()["detail"]
    unknown = http.post("/list-executions", json={"flow": "x"})
    assert unknown.status_code == 422 and "'flow'" in unknown.json()["detail"]
    bad_id = http.post("/get-execution", json={"exec_id": "x" * 500})
    assert bad_id.status_code == 422 and bad_id.json()["error"] == "InvalidValueError"
    assert http.get("/info").json()["flavor"] == "sqlite"


class _Dropper:
    """A TCP server on 127.0.0.1 that accepts connections, reads a request and hangs up."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.recv(65536)
            conn.close()


def test_a_broken_connection_is_retried_only_for_repeatable_calls(tmp_path: Path) -> None:
    from kitaru_server.flavors.server_registry import ServerUnavailableError

    from kitaru_core.records import CallRecord
    from kitaru_core.testing import build_component

    dropper = _Dropper()
    reg = build_component("registry", "server", {"url": f"http://127.0.0.1:{dropper.port}",
                                                 "retries": 2}, home=tmp_path)
    with pytest.raises(ServerUnavailableError, match="cannot be reached"):
        reg.get_calls("e1")  # a read: sent again, 1 + 2 times
    assert dropper.accepted == 3
    with pytest.raises(ServerUnavailableError, match="may or may not have been recorded"):
        reg.save_call(CallRecord("e1", "a#1", "a", 1, "completed"))
    assert dropper.accepted == 4  # a write the server may have run: never sent twice
    dropper.sock.close()
    reg.close()


def test_a_server_that_is_not_there_is_retried_then_named(tmp_path: Path) -> None:
    from kitaru_server.flavors.server_registry import ServerUnavailableError
    from services.kitaru_server import free_port

    from kitaru_core.records import CallRecord
    from kitaru_core.testing import build_component

    url = f"http://127.0.0.1:{free_port()}"
    reg = build_component("registry", "server", {"url": url, "retries": 1}, home=tmp_path)
    with pytest.raises(ServerUnavailableError, match=rf"{url} cannot be reached.*kitaru server start"):
        reg.save_call(CallRecord("e1", "a#1", "a", 1, "completed"))  # never sent: retried too
    reg.close()
