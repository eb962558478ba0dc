"""The server's auth: every route refuses a call without a key (401) and beyond its key's
scope (403), takes it with the right scope; keys are hashed, expire, rotate and die with
their account; bodies are size-limited and inputs rate-limited."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import SimpleNamespace

import kitaru_server.keys as key_module
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from kitaru_server.app import ROUTERS, create_app
from kitaru_server.keys import KeyStore
from kitaru_server.scopes import SCOPES
from kitaru_server.security import route_scope
from kitaru_server.settings import ServerSettings

OPEN = {"/health", "/ready", "/api/v1/openapi.json", "/api/v1/docs",
        "/api/v1/docs/oauth2-redirect"}


@pytest.fixture
def app(kitaru_home: Path):
    return create_app(ServerSettings(key_cache_seconds=0, input_rate=1000, input_burst=1000))


@pytest.fixture
def keys(app) -> KeyStore:
    return app.state.kitaru.keys


@pytest.fixture
def tokens(keys: KeyStore) -> dict[str, str]:
    keys.create_account("ci", description="the test")
    return {scope: keys.create_key("ci", scope=scope)[1] for scope in SCOPES}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "nothing-here", path)


def routes(app) -> list[tuple[str, str, str | None]]:
    """(method, path, scope) of every route the app serves; each is in the OpenAPI schema."""
    found = []
    for router, prefix in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for method in sorted(route.methods):
                found.append((method, prefix + route.path_format, route_scope(route)))
    published = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert published == {(m, p) for m, p, _ in found}, "a route outside ROUTERS"
    return found


def test_every_route_but_health_declares_a_scope(app) -> None:
    found = routes(app)
    assert len(found) > 10
    for method, path, scope in found:
        if path in OPEN:
            assert scope is None, (method, path)
        else:
            assert scope in SCOPES, f"{method} {path} declares no scope"


def test_auth_matrix_every_route_by_key_and_scope(app, tokens: dict[str, str]) -> None:
    http = TestClient(app, raise_server_exceptions=False)
    checked = 0
    for method, path, needed in routes(app):
        if needed is None:
            continue
        url = concrete(path)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        plain = http.request(method, url, json=body)
        assert plain.status_code == 401, (method, path, plain.text)
        assert plain.headers.get("www-authenticate") == "Bearer"
        junk = http.request(method, url, json=body, headers=bearer("kitaru_0123456789abcdef_" + "x" * 43))
        assert junk.status_code == 401, (method, path)
        for scope in SCOPES:
            got = http.request(method, url, json=body, headers=bearer(tokens[scope]))
            if SCOPES.index(scope) < SCOPES.index(needed):
                assert got.status_code == 403, (method, path, scope, got.text)
                assert needed in got.json()["detail"]
            else:
                assert got.status_code not in (401, 403), (method, path, scope, got.text)
        checked += 1
    assert checked >= 10


def test_health_and_ready_need_no_key(app) -> None:
    http = TestClient(app)
    assert http.get("/health").json()["status"] == "ok"
    ready = http.get("/ready")
    assert ready.status_code == 200 and ready.json()["stack"] == "local"


def test_tokens_are_stored_hashed_and_shown_once(app, keys: KeyStore, tokens: dict[str, str]) -> None:
    registry = app.state.kitaru.stack.registry
    for doc in registry.list_documents("api-key"):
        text = repr(doc.body)
        for token in tokens.values():
            secret = token[len("kitaru_") + 17:]  # kitaru_<16 hex key id>_<secret>
            assert len(secret) >= 40 and secret not in text
        assert len(doc.body["hash"]) == 64
    listed = TestClient(app).get("/api/v1/auth/api-keys", headers=bearer(tokens["admin"])).json()
    assert all("token" not in k and "hash" not in k for k in listed["items"])
    assert len(listed["items"]) == 3


def test_whoami_names_the_key(app, tokens: dict[str, str]) -> None:
    me = TestClient(app).get("/api/v1/auth/whoami", headers=bearer(tokens["operator"])).json()
    assert me["account"] == "ci" and me["scope"] == "operator" and me["key_id"]


def test_expired_rotated_deleted_and_deactivated_keys_are_refused(
    app, keys: KeyStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    http = TestClient(app)
    keys.create_account("bot")
    key, token = keys.create_key("bot", scope="read", expires_at=time.time() + 3600)
    assert http.get("/api/v1/executions", headers=bearer(token)).status_code == 200
    # the key store's clock moves past the expiry (a real sleep races a loaded machine)
    later = time.time() + 3601
    monkeypatch.setattr(key_module, "time", SimpleNamespace(time=lambda: later))
    expired = http.get("/api/v1/executions", headers=bearer(token))
    monkeypatch.undo()
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    key, old = keys.create_key("bot", scope="read")
    _, new = keys.rotate_key(key.key_id)
    assert http.get("/api/v1/executions", headers=bearer(old)).status_code == 401
    assert http.get("/api/v1/executions", headers=bearer(new)).status_code == 200

    keys.update_account("bot", active=False)
    off = http.get("/api/v1/executions", headers=bearer(new))
    assert off.status_code == 401 and "deactivated" in off.json()["detail"]
    keys.update_account("bot", active=True)
    keys.delete_key(key.key_id)
    assert http.get("/api/v1/executions", headers=bearer(new)).status_code == 401


def test_deleting_an_account_deletes_its_keys(keys: KeyStore) -> None:
    keys.create_account("temp")
    keys.create_key("temp")
    keys.create_key("temp", scope="admin")
    assert keys.delete_account("temp") == 2
    assert keys.list_keys("temp") == []


def test_admin_manages_keys_over_http(app, tokens: dict[str, str]) -> None:
    http = TestClient(app)
    admin = bearer(tokens["admin"])
    made = http.post("/api/v1/auth/service-accounts", json={"name": "deployer"}, headers=admin)
    assert made.status_code == 201
    again = http.post("/api/v1/auth/service-accounts", json={"name": "deployer"}, headers=admin)
    assert again.status_code == 409 and "exists" in again.json()["detail"]
    key = http.post("/api/v1/auth/api-keys", json={"account": "deployer", "scope": "operator"},
                    headers=admin).json()
    assert key["token"].startswith("kitaru_") and key["scope"] == "operator"
    me = http.get("/api/v1/auth/whoami", headers=bearer(key["token"])).json()
    assert me["account"] == "deployer"
    bad = http.post("/api/v1/auth/api-keys", json={"account": "deployer", "scope": "root"},
                    headers=admin)
    assert bad.status_code == 422


def test_request_bodies_over_the_limit_are_refused(kitaru_home: Path) -> None:
    app = create_app(ServerSettings(max_body_bytes=2048, key_cache_seconds=0))
    keys = app.state.kitaru.keys
    keys.create_account("ci")
    token = keys.create_key("ci", scope="operator")[1]
    http = TestClient(app)
    big = http.post("/api/v1/executions/abc/input", headers=bearer(token),
                    json={"value": "x" * 5000})
    assert big.status_code == 413 and "2048" in big.json()["detail"]
    chunked = http.post("/api/v1/executions/abc/input",
                        headers={**bearer(token), "content-type": "application/json"},
                        content=iter([b'{"value": "', b"x" * 3000, b'"}']))
    assert chunked.status_code == 413
    small = http.post("/api/v1/executions/abc/input", headers=bearer(token), json={"value": 1})
    assert small.status_code == 404


def test_inputs_are_rate_limited_per_key(kitaru_home: Path) -> None:
    app = create_app(ServerSettings(input_rate=0.01, input_burst=3, key_cache_seconds=0))
    keys = app.state.kitaru.keys
    keys.create_account("ci")
    one = keys.create_key("ci", scope="operator")[1]
    two = keys.create_key("ci", scope="operator")[1]
    http = TestClient(app)
    codes = [http.post("/api/v1/executions/abc/waits/go", headers=bearer(one), json=True).status_code
             for _ in range(5)]
    assert codes[:3] == [404, 404, 404] and codes[3:] == [429, 429]
    limited = http.post("/api/v1/executions/abc/waits/go", headers=bearer(one), json=True)
    assert int(limited.headers["retry-after"]) >= 1
    assert http.post("/api/v1/executions/abc/waits/go", headers=bearer(two), json=True).status_code == 404
    # reads are not rate limited
    assert all(http.get("/api/v1/executions", headers=bearer(one)).status_code == 200 for _ in range(5))


def test_single_user_mode_needs_no_key(kitaru_home: Path) -> None:
    http = TestClient(create_app(ServerSettings(single_user=True)))
    me = http.get("/api/v1/auth/whoami").json()
    assert me == {"account": "local", "scope": "admin", "key_id": None}


def test_errors_are_one_line_json_with_a_fitting_status(app, tokens: dict[str, str]) -> None:
    http = TestClient(app)
    missing = http.get("/api/v1/executions/nothing-here", headers=bearer(tokens["read"]))
    assert missing.status_code == 404
    assert missing.json()["error"] == "ExecutionNotFoundError" and "\n" not in missing.json()["detail"]
    bad = http.get("/api/v1/executions", params={"status": "sleepy"}, headers=bearer(tokens["read"]))
    assert bad.status_code == 422
