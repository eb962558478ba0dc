"""Secrets: sealed in the registry with a key kept outside it, read from the environment or a
backend plugin, resolved only where used (`kitaru.get_secret`, `${secret:NAME.KEY}` in a stack,
a model alias's `--secret`); no value in any record, file, log, response or `-o json` output."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli

import kitaru
from kitaru import checkpoint, flow
from kitaru.errors import ConfigError, SecretKeyError, SecretNotFoundError
from kitaru_core.plugins import hookimpl
from kitaru_core.plugins.manager import PluginManager, set_default_manager
from kitaru_core.secrets import SecretBackend, generate_key, key_id, resolve
from kitaru_core.stack import StackStore, get_stack


def token() -> str:
    return f"sk-test-{uuid.uuid4().hex}"


def everything_under(path: Path) -> bytes:
    """Every file below `path`, concatenated (the SQLite file and its WAL included)."""
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


# -- the client and the registry ---------------------------------------------------------


def test_set_list_show_delete_and_the_value_is_in_no_file(client, kitaru_home: Path) -> None:
    value = token()
    created = client.secrets.set("openai-creds", {"OPENAI_API_KEY": value}, ORG="acme")
    assert (created.name, created.keys, created.source, created.version) == (
        "openai-creds", ["OPENAI_API_KEY", "ORG"], "registry", 1)
    assert value not in json.dumps(created.to_dict())
    assert kitaru.get_secret("openai-creds") == {"OPENAI_API_KEY": value, "ORG": "acme"}
    # A second set adds and changes keys, keeping the others; `replace` keeps only those given.
    client.secrets.set("openai-creds", ORG="other", REGION="eu")
    assert kitaru.get_secret("openai-creds") == {"OPENAI_API_KEY": value, "ORG": "other", "REGION": "eu"}
    assert [s.name for s in client.secrets.list()] == ["openai-creds"]
    shown = client.secrets.get("openai-creds")
    assert shown.keys == ["OPENAI_API_KEY", "ORG", "REGION"] and shown.version == 2
    assert shown.key_id == key_id(_file_keys(kitaru_home)[0])

    assert value.encode() not in everything_under(kitaru_home)  # registry, key file, all
    key_file = kitaru_home / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    client.secrets.set("openai-creds", {"ONLY": "this"}, replace=True)
    assert kitaru.get_secret("openai-creds") == {"ONLY": "this"}
    assert client.secrets.delete("openai-creds").name == "openai-creds"
    with pytest.raises(SecretNotFoundError, match="no secret 'openai-creds'"):
        kitaru.get_secret("openai-creds")
    with pytest.raises(SecretNotFoundError, match="kitaru secrets set openai-creds"):
        client.secrets.delete("openai-creds")


def _file_keys(home: Path) -> list[bytes]:
    import base64

    return [base64.urlsafe_b64decode(line) for line in (home / "secrets.key").read_text().split()]


@pytest.mark.parametrize(("name", "keys"), [
    ("bad name", {"K": "v"}), ("a.b", {"K": "v"}), ("", {"K": "v"}), ("ok", {"1BAD": "v"}),
    ("ok", {"has-dash": "v"}), ("ok", {}),
])
def test_names_and_keys_are_checked(client, name: str, keys: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        client.secrets.set(name, keys)


def test_a_wrong_or_missing_key_is_a_clear_error(client, monkeypatch: pytest.MonkeyPatch,
                                                kitaru_home: Path) -> None:
    first, second = generate_key(), generate_key()
    monkeypatch.setenv("KITARU_SECRETS_KEY", first)
    client.secrets.set("db", PASSWORD="hunter2")
    assert not (kitaru_home / "secrets.key").exists()  # the key comes from the environment
    monkeypatch.setenv("KITARU_SECRETS_KEY", second)
    import base64

    sealed_with = key_id(base64.urlsafe_b64decode(first))
    with pytest.raises(SecretKeyError, match=f"sealed with key {sealed_with}, which this process "
                                             "does not have") as caught:
        kitaru.get_secret("db")
    assert "KITARU_SECRETS_KEY" in str(caught.value) and "hunter2" not in str(caught.value)
    assert client.secrets.get("db").keys == ["PASSWORD"]  # names and keys need no key
    monkeypatch.delenv("KITARU_SECRETS_KEY")
    with pytest.raises(SecretKeyError, match="no secrets key: set KITARU_SECRETS_KEY"):
        kitaru.get_secret("db")
    monkeypatch.setenv("KITARU_SECRETS_KEY", "not-a-key")
    with pytest.raises(ConfigError, match="not 32 bytes"):
        kitaru.get_secret("db")


def test_a_sealed_value_copied_to_another_secret_or_altered_does_not_open(client) -> None:
    client.secrets.set("one", K="first")
    registry = client._stack.registry
    body = registry.get_document("secret", "one").body
    registry.put_document("secret", "two", dict(body))
    with pytest.raises(SecretKeyError, match="'two' does not open"):
        kitaru.get_secret("two")
    altered = dict(body, ciphertext=body["ciphertext"][:-4] + "AAAA")
    registry.put_document("secret", "one", altered)
    with pytest.raises(SecretKeyError, match="altered"):
        kitaru.get_secret("one")


def test_rotation_seals_every_secret_with_the_new_key(cli, client, kitaru_home: Path) -> None:
    client.secrets.set("a", K="1")
    client.secrets.set("b", K="2")
    old = client.secrets.get("a").key_id
    rotated = cli("secrets", "rotate-key", "-o", "json")
    assert rotated.exit_code == 0, rotated.stderr
    data = rotated.json()
    assert data["reencrypted"] == ["a", "b"] and data["key_id"] != old
    assert len(_file_keys(kitaru_home)) == 2  # the old key still opens, until --drop-old
    assert {client.secrets.get(n).key_id for n in "ab"} == {data["key_id"]}
    assert kitaru.get_secret("b") == {"K": "2"}
    assert cli("secrets", "rotate-key", "--drop-old").exit_code == 0
    assert len(_file_keys(kitaru_home)) == 1
    assert kitaru.get_secret("a") == {"K": "1"}


def test_reencrypt_with_keys_from_the_environment(client, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    old, new = generate_key(), generate_key()
    monkeypatch.setenv("KITARU_SECRETS_KEY", old)
    client.secrets.set("a", K="1")
    monkeypatch.setenv("KITARU_SECRETS_KEY", f"{new},{old}")
    refused = cli("secrets", "rotate-key")
    assert refused.exit_code == 2 and "KITARU_SECRETS_KEY is set" in refused.stderr
    assert cli("secrets", "reencrypt").exit_code == 0
    monkeypatch.setenv("KITARU_SECRETS_KEY", new)
    assert kitaru.get_secret("a") == {"K": "1"}


# -- the environment and backend plugins ---------------------------------------------------


def test_environment_secrets_win_and_are_listed(client, monkeypatch: pytest.MonkeyPatch) -> None:
    client.secrets.set("openai-creds", OPENAI_API_KEY="from-registry")
    monkeypatch.setenv("KITARU_SECRET_OPENAI_CREDS", json.dumps({"OPENAI_API_KEY": "from-env"}))
    assert kitaru.get_secret("openai-creds") == {"OPENAI_API_KEY": "from-env"}
    listed = {(s.name, s.source) for s in client.secrets.list()}
    assert listed == {("openai-creds", "registry"), ("openai-creds", "env")}
    monkeypatch.setenv("KITARU_SECRET_ONLY_ENV", json.dumps({"T": "x"}))
    assert client.secrets.get("only-env").source == "env"
    with pytest.raises(ConfigError, match="comes from the environment variable KITARU_SECRET_ONLY_ENV"):
        client.secrets.delete("only-env")
    monkeypatch.setenv("KITARU_SECRET_BROKEN", "not json")
    with pytest.raises(ConfigError, match="KITARU_SECRET_BROKEN is not a JSON object"):
        kitaru.get_secret("broken")


class Vault(SecretBackend):
    name = "vault"
    asked: list[str] = []

    def get(self, name: str) -> dict[str, str] | None:
        self.asked.append(name)
        return {"TOKEN": "from-vault"} if name == "in-vault" else None


class VaultPlugin:
    @hookimpl
    def kitaru_secret_backends(self) -> list[SecretBackend]:
        return [Vault()]


class BrokenPlugin:
    @hookimpl
    def kitaru_secret_backends(self) -> list[Any]:
        return ["not a backend"]


def test_a_backend_plugin_is_asked_after_the_environment_before_the_registry(client) -> None:
    manager = PluginManager()
    manager.load_entry_points()  # kitaru-local's environment backend, and the test's registry
    manager.register(VaultPlugin(), name="vault")
    manager.register(BrokenPlugin(), name="broken")
    assert [b.name for b in manager.secret_backends()] == ["env", "vault"]
    assert "not a kitaru_core.secrets.SecretBackend" in {p.name: p for p in manager.plugins()}["broken"].error
    client.secrets.set("in-vault", TOKEN="from-registry")
    registry = client._stack.registry
    assert resolve("in-vault", registry=registry, manager=manager) == {"TOKEN": "from-vault"}
    client.secrets.set("elsewhere", TOKEN="from-registry")
    assert resolve("elsewhere", registry=registry, manager=manager) == {"TOKEN": "from-registry"}
    with pytest.raises(SecretNotFoundError, match=r"backend 'vault'.*no registry"):
        resolve("elsewhere", registry=None, manager=manager)
    set_default_manager(manager)
    try:
        assert kitaru.get_secret("in-vault") == {"TOKEN": "from-vault"}
    finally:
        set_default_manager(None)


# -- ${secret:NAME.KEY} in stacks ------------------------------------------------------------


@checkpoint
def note(text: str) -> str:
    return text.upper()


@flow
def noting(text: str) -> str:
    return note(text).load()


def test_a_stack_config_secret_is_resolved_where_the_component_is_built(
    client, kitaru_home: Path, tmp_path: Path
) -> None:
    root = tmp_path / f"artifacts-{uuid.uuid4().hex}"
    client.secrets.set("store", ROOT=str(root))
    path = tmp_path / "vaulted.yaml"
    path.write_text(yaml.safe_dump({
        "name": "vaulted", "registry": StackStore().get("local")["registry"],  # the secret's registry
        "artifact_store": {"flavor": "local", "config": {"root": "${secret:store.ROOT}"}},
    }))
    StackStore().register(path, activate=True)
    stored = (kitaru_home / "stacks" / "vaulted.yaml").read_text()
    assert "${secret:store.ROOT}" in stored and str(root) not in stored
    handle = noting.run("hi" * 2000)  # larger than what the registry keeps inline
    assert handle.wait() == "HI" * 2000
    assert any(p.is_file() for p in root.rglob("*")), "the blobs went to the folder the secret names"
    record = get_stack("vaulted").registry.get_execution(handle.exec_id)
    assert record.stack["artifact_store"]["config"]["root"] == "${secret:store.ROOT}"
    assert str(root).encode() not in everything_under(kitaru_home)


def test_stack_secret_placeholders_are_checked_and_a_missing_one_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", "artifact_store": {
        "flavor": "local", "config": {"root": "${secret:nodot}"}}}))
    with pytest.raises(ConfigError, match=r"needs a secret name and key, e.g. \$\{secret:db-creds"):
        StackStore().register(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump({"name": "missing", "artifact_store": {
        "flavor": "local", "config": {"root": "${secret:nowhere.ROOT}"}}}))
    StackStore().register(missing)  # validation leaves a secret unresolved
    with pytest.raises(SecretNotFoundError, match=r"artifact_store.config.root.*no secret 'nowhere'"):
        get_stack("missing").artifact_store  # noqa: B018


# -- model aliases with --secret ---------------------------------------------------------------


@flow
def asking(question: str) -> str:
    return kitaru.llm(question, model="fast")


def test_a_model_alias_secret_becomes_the_providers_credentials_at_call_time(
    cli, client, kitaru_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pydantic_ai")
    from kitaru.errors import ModelUnavailableError
    from kitaru.llm import _build_model

    value = token()
    assert cli("model", "register", "fast", "--model", "openai:gpt-5-mini", "--secret",
               "openai-creds").exit_code == 0
    listed = cli("model", "list", "-o", "json").json()["aliases"]
    assert listed == [{"alias": "fast", "model": "openai:gpt-5-mini", "source": "file",
                       "default": False, "secret": "openai-creds"}]
    with pytest.raises(SecretNotFoundError, match="no secret 'openai-creds'"):
        kitaru.llm("hi", model="fast")
    client.secrets.set("openai-creds", OPENAI_API_KEY=value)
    model = _build_model("openai:gpt-5-mini", "openai-creds")
    assert model.client.api_key == value
    assert "OPENAI_API_KEY" not in os.environ  # only while the model was built
    with pytest.raises(ModelUnavailableError, match="OPENAI_API_KEY environment variable"):
        _build_model("openai:gpt-5-mini")  # the alias's secret is what gave the key
    monkeypatch.setenv("OPENAI_API_KEY", "from-the-environment")
    assert _build_model("openai:gpt-5-mini", "openai-creds").client.api_key == "from-the-environment"
    monkeypatch.delenv("OPENAI_API_KEY")
    # In a flow: the model is built, with the secret's key, inside the call (requests are refused
    # in the tests, so the call then fails) and the key is in no record or file.
    handle = asking.run("what?")
    with pytest.raises(Exception, match="Model requests are not allowed"):
        handle.wait()
    assert value.encode() not in everything_under(kitaru_home)
    assert "secret: openai-creds" in (kitaru_home / "models.yaml").read_text()


# -- the command line ---------------------------------------------------------------------


def test_cli_set_list_show_delete_never_print_a_value(cli, monkeypatch: pytest.MonkeyPatch,
                                                      kitaru_home: Path) -> None:
    value, other = token(), token()
    monkeypatch.setenv("MY_TOKEN", other)
    outputs = []
    for args in (
        ("secrets", "set", "creds", f"--API_KEY={value}", "--from-env", "MY_TOKEN",
         "--from-env", "RENAMED=MY_TOKEN"),
        ("secrets", "set", "creds", f"--API_KEY={value}", "-o", "json"),
        ("secrets", "list"), ("secrets", "list", "-o", "json"),
        ("secrets", "show", "creds"), ("secrets", "show", "creds", "-o", "json"),
    ):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stderr)
        outputs.append(result.stdout + result.stderr)
    assert "set secret 'creds' (keys: API_KEY, MY_TOKEN, RENAMED)" in outputs[0]
    assert json.loads(outputs[1].strip())["keys"] == ["API_KEY", "MY_TOKEN", "RENAMED"]
    assert "creds" in outputs[2] and "API_KEY, MY_TOKEN, RENAMED" in outputs[4]
    for text in outputs:
        assert value not in text and other not in text
    assert kitaru.get_secret("creds") == {"API_KEY": value, "MY_TOKEN": other, "RENAMED": other}

    bad = cli("secrets", "set", "creds", f"API_KEY={value}")
    assert bad.exit_code == 2 and "not a secret assignment" in bad.stderr and value not in bad.stderr
    assert cli("secrets", "set", "creds").exit_code == 2
    private = cli("secrets", "set", "creds", "--private", f"--API_KEY={value}")
    assert private.exit_code == 2 and "--private" in private.stderr and value not in private.stderr
    gone = cli("secrets", "delete", "creds", "-o", "json")
    assert gone.exit_code == 0 and gone.json()["deleted"]["name"] == "creds"
    missing = cli("secrets", "show", "creds")
    assert missing.exit_code == 1 and "no secret 'creds'" in missing.stderr
    assert value.encode() not in everything_under(kitaru_home)


def test_cli_reads_a_value_from_standard_input(kitaru_home: Path) -> None:
    value = token()
    done = run_cli("secrets", "set", "piped", "--TOKEN=-", "-o", "json", input=value + "\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["keys"] == ["TOKEN"] and value not in done.stdout + done.stderr
    shown = run_cli("secrets", "show", "piped")
    assert shown.returncode == 0 and value not in shown.stdout
    assert kitaru.get_secret("piped") == {"TOKEN": value}


# -- the REST routes -------------------------------------------------------------------------


def test_rest_routes_take_values_and_never_return_or_log_them(
    kitaru_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from fastapi.testclient import TestClient
    from kitaru_server.app import create_app
    from kitaru_server.settings import ServerSettings

    caplog.set_level(logging.DEBUG)
    value = token()
    app = create_app(ServerSettings(key_cache_seconds=0))
    keys = app.state.kitaru.keys
    keys.create_account("ops")
    admin = {"Authorization": f"Bearer {keys.create_key('ops', scope='admin')[1]}"}
    reader = {"Authorization": f"Bearer {keys.create_key('ops', scope='read')[1]}"}
    http = TestClient(app)
    texts = []

    put = http.put("/api/v1/secrets/openai-creds", json={"values": {"OPENAI_API_KEY": value}},
                   headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["keys"] == ["OPENAI_API_KEY"] and put.json()["source"] == "registry"
    texts.append(put.text)
    denied = http.put("/api/v1/secrets/x", json={"values": {"K": value}}, headers=reader)
    assert denied.status_code == 403
    texts.append(denied.text)
    for body in ({"values": {"K": 12345678901}}, {"values": value}, {"values": {}}, value,
                 {"values": {"K": value}, "replace": value}):
        refused = http.put("/api/v1/secrets/x", json=body, headers=admin)
        assert refused.status_code == 422, (body, refused.text)
        texts.append(refused.text)
        assert "12345678901" not in refused.text
    listed = http.get("/api/v1/secrets", headers=reader)
    assert [s["name"] for s in listed.json()["items"]] == ["openai-creds"]
    shown = http.get("/api/v1/secrets/openai-creds", headers=reader)
    assert shown.status_code == 200 and shown.json()["keys"] == ["OPENAI_API_KEY"]
    assert http.get("/api/v1/secrets/nope", headers=reader).status_code == 404
    texts += [listed.text, shown.text, json.dumps(app.openapi())]
    assert http.delete("/api/v1/secrets/openai-creds", headers=reader).status_code == 403
    deleted = http.delete("/api/v1/secrets/openai-creds", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["deleted"]["name"] == "openai-creds"
    for text in [*texts, caplog.text]:
        assert value not in text
    assert value.encode() not in everything_under(kitaru_home)
