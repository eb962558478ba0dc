"""`kitaru login URL` and `kitaru logout` as a user runs them against a real server: the key
is checked, kept in the OS keyring or a 0600 file (never in the stack file), and the stack it
registers runs flows whose records live on the server."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import run_cli
from services.kitaru_server import KitaruServer

from kitaru import checkpoint, flow
from kitaru_core.stack import clear_stack_cache

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@checkpoint
def double(x: int) -> int:
    return 2 * x


@flow
def doubled(x: int) -> int:
    return double(x)


def stack_name(server: KitaruServer) -> str:
    return "server-127.0.0.1-" + server.url.rsplit(":", 1)[1]


def test_login_keeps_the_key_in_a_0600_file_and_registers_the_stack(
    kitaru_server: KitaruServer, kitaru_home: Path
) -> None:
    token = kitaru_server.tokens["operator"]
    done = run_cli("login", kitaru_server.url + "/", "--api-key", token, env=NO_KEYRING)
    assert done.returncode == 0, done.stderr
    creds = kitaru_home / "credentials.json"
    assert f"kept in {creds} (mode 0600)" in done.stdout
    assert "as tests (scope operator)" in done.stdout and "(active)" in done.stdout
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert json.loads(creds.read_text())["servers"][kitaru_server.url]["store"] == "file"

    name = stack_name(kitaru_server)
    stack_file = kitaru_home / "stacks" / f"{name}.yaml"
    spec = yaml.safe_load(stack_file.read_text())
    assert spec["registry"] == {"flavor": "server", "config": {"url": kitaru_server.url}}
    assert spec["artifact_store"] == {"flavor": "local",
                                      "config": {"root": str(kitaru_server.home / "artifacts")}}
    assert token not in stack_file.read_text()
    shown = run_cli("status")
    assert shown.returncode == 0 and name in shown.stdout
    from kitaru.cli.flow_cmd import curl_command  # a deploy's curl example names this server

    assert curl_command("f", tag="production").split()[4] == (
        f"{kitaru_server.url}/api/v1/deployments/f/invoke")

    clear_stack_cache()
    handle = doubled.run(21)
    assert handle.wait(timeout=60) == 42
    assert not (kitaru_home / "kitaru.db").exists()
    admin = {"Authorization": f"Bearer {kitaru_server.token}"}
    recorded = httpx.get(f"{kitaru_server.url}/api/v1/executions/{handle.exec_id}", headers=admin)
    assert recorded.json()["status"] == "completed"

    out = run_cli("logout", env=NO_KEYRING)
    assert out.returncode == 0, out.stderr
    assert f"removed from {creds}" in out.stdout and "now 'local'" in out.stdout
    assert token not in creds.read_text() and stat.S_IMODE(creds.stat().st_mode) == 0o600
    again = run_cli("logout", kitaru_server.url, env=NO_KEYRING)
    assert again.returncode == 1 and "not logged in" in again.stderr


def test_login_uses_the_os_keyring_when_there_is_one(
    kitaru_server: KitaruServer, kitaru_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = tmp_path / "keyring.json"
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "services.fake_keyring.FileKeyring")
    monkeypatch.setenv("FAKE_KEYRING_FILE", str(ring))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    token = kitaru_server.tokens["read"]
    done = run_cli("login", kitaru_server.url, "--api-key", token, "--stack", "team", "-o", "json")
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert (said["stored"], said["scope"], said["stack"]) == ("keyring", "read", "team")
    assert token in ring.read_text()
    assert token not in (kitaru_home / "credentials.json").read_text()

    listed = run_cli("executions", "list", "-o", "json")  # a read key reads through the stack
    assert listed.returncode == 0, listed.stderr
    out = run_cli("logout", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["removed_from"] == "keyring"
    assert token not in ring.read_text()


def test_login_refuses_a_wrong_key_and_asks_for_one(kitaru_server: KitaruServer,
                                                    kitaru_home: Path) -> None:
    wrong = run_cli("login", kitaru_server.url, "--api-key", "kitaru_0123456789abcdef_" + "x" * 43,
                    env=NO_KEYRING)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1  # a ConfigError
    assert "refused this API key" in wrong.stderr
    missing = run_cli("login", kitaru_server.url, env={**NO_KEYRING, "KITARU_API_KEY": ""})
    assert missing.returncode == 1 and "--api-key" in missing.stderr
    assert not (kitaru_home / "credentials.json").exists()
    assert not (kitaru_home / "stacks").exists()
