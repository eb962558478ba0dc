"""Shared fixtures: every test gets its own kitaru home (real SQLite file, real folder)."""

from __future__ import annotations

import importlib.abc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kitaru_core.stack import clear_stack_cache

REPO = Path(__file__).resolve().parent.parent

# The conformance kits' pytest plugin (`requires` marker, --kitaru-require-backends), pytester
# (tests of the kits themselves), and the object-store emulators (tests/emulators.py).
pytest_plugins = ["kitaru_core.testing.plugin", "pytester", "emulators"]


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Any:
    """A real PostgreSQL server on 127.0.0.1 for this test session (one per xdist worker)."""
    from services.postgres import running_postgres, server_bin

    from kitaru_core.testing.plugin import backend_unavailable

    if server_bin() is None:
        backend_unavailable(request, "PostgreSQL server binaries not found (apt-get install postgresql)")
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def kitaru_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real `kitaru server start` on 127.0.0.1 over a SQLite registry for this session (one
    per xdist worker), with API keys of every scope (tests/services/kitaru_server.py)."""
    from services.kitaru_server import running_server

    with running_server(tmp_path_factory.mktemp("kitaru-server")) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_server.create_database()


@pytest.fixture
def kube_cluster(tmp_path: Path) -> Any:
    """kmock's Kubernetes emulator on 127.0.0.1 with a controller that runs each Job's
    command as a local process (tests/services/kube.py): yields (server, controller)."""
    from services.kube import running_cluster

    root = tmp_path / "kube"
    root.mkdir()
    with running_cluster(root) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def vertex_double(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Vertex AI double on 127.0.0.1 that runs each custom job as a local process
    (tests/services/vertex_double.py); one per session."""
    from services.vertex_double import VertexDouble

    double = VertexDouble(tmp_path_factory.mktemp("vertex")).start()
    yield double
    double.stop()


@pytest.fixture(scope="session")
def cloud_run_double(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Cloud Run double on 127.0.0.1 that runs each job execution as a local process
    (tests/services/cloud_run_double.py); one per session."""
    from services.cloud_run_double import CloudRunDouble

    double = CloudRunDouble(tmp_path_factory.mktemp("cloud-run")).start()
    yield double
    double.stop()


@pytest.fixture(scope="session")
def sagemaker_harness(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """moto's SageMaker and CloudWatch Logs on 127.0.0.1, with a runner that starts each
    training job's container command as a local process (tests/services/sagemaker.py)."""
    from services.sagemaker import running_sagemaker

    with running_sagemaker(tmp_path_factory.mktemp("sagemaker")) as harness:
        yield harness


# -- no test calls a real model provider ----------------------------------------------------------


class _NoModelRequests(importlib.abc.MetaPathFinder):
    """Sets `pydantic_ai.models.ALLOW_MODEL_REQUESTS = False` when Pydantic AI is imported.

    A real provider model then raises `RuntimeError("Model requests are not allowed ...")`
    before sending anything; TestModel and FunctionModel are not affected. Done on import,
    so tests that never use Pydantic AI do not pay for importing it.
    """

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "pydantic_ai.models":
            return None
        for finder in sys.meta_path:
            found = None if finder is self else getattr(finder, "find_spec", None)
            spec = found(fullname, path, target) if found else None
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        load = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            load(module)
            module.ALLOW_MODEL_REQUESTS = False

        spec.loader.exec_module = exec_module
        return spec


if "pydantic_ai.models" in sys.modules:
    sys.modules["pydantic_ai.models"].ALLOW_MODEL_REQUESTS = False
else:
    sys.meta_path.insert(0, _NoModelRequests())


#: Provider credentials a developer's shell may hold: removed for every test, so that a real
#: provider model fails at construction ("set OPENAI_API_KEY") in subprocesses too, where the
#: ALLOW_MODEL_REQUESTS switch above does not reach.
PROVIDER_KEYS = (
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY",
    "MISTRAL_API_KEY", "CO_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY", "XAI_API_KEY",
    "AWS_BEARER_TOKEN_BEDROCK", "HF_TOKEN", "AZURE_OPENAI_API_KEY",
)


@pytest.fixture(autouse=True)
def no_model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with real model requests refused (a test may have allowed them)."""
    for key in PROVIDER_KEYS:
        monkeypatch.delenv(key, raising=False)
    models = sys.modules.get("pydantic_ai.models")
    if models is not None:
        monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", False)


#: `KITARU_TEST_REGISTRY=postgres` runs the tests on a `local` stack whose registry is a fresh
#: PostgreSQL database per test (the core suite on a shared record; see scripts/test.sh).
TEST_REGISTRY = os.environ.get("KITARU_TEST_REGISTRY", "sqlite")


def _local_stack_on_postgres(home: Path, url: str) -> None:
    """Replace the home's built-in `local` stack by one with a `postgres` registry."""
    import yaml

    from kitaru_core.stack import StackStore

    path = home.parent / "local-postgres.yaml"
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "name": "local", "registry": {"flavor": "postgres", "config": {"url": url}},
        "artifact_store": {"flavor": "local"}, "orchestrator": {"flavor": "local"},
        "execution_target": {"flavor": "inline"},
    }))
    StackStore(home).register(path, activate=True, force=True)


@pytest.fixture(autouse=True)
def kitaru_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Path:
    """A fresh KITARU_HOME per test; no prompts; stacks rebuilt per test."""
    home = tmp_path / "kitaru-home"
    monkeypatch.setenv("KITARU_HOME", str(home))
    monkeypatch.setenv("KITARU_INTERACTIVE", "0")
    monkeypatch.delenv("KITARU_STACK", raising=False)
    for name in ("KITARU_CACHE", "KITARU_RETRIES", "KITARU_IMAGE"):  # run options (settings.py)
        monkeypatch.delenv(name, raising=False)
    clear_stack_cache()
    import kitaru.settings as settings

    monkeypatch.setattr(settings, "_settings", settings.Settings())
    if TEST_REGISTRY == "postgres":
        _local_stack_on_postgres(home, request.getfixturevalue("postgres_url"))
    yield home
    clear_stack_cache()


@pytest.fixture
def client():
    from kitaru import KitaruClient

    return KitaruClient()


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `kitaru ARGS` in a subprocess with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "kitaru.cli.main", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd,
        timeout=timeout, input=input,
    )


@dataclass
class CliResult:
    """What an in-process `kitaru` command printed and its exit code."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run `kitaru ARGS` in this process (fast); exit code and output as a `CliResult`.

    A Python exception escaping the command fails the test, so a passing call
    printed no traceback. Use `run_cli` where a real process matters.
    """
    from kitaru.cli.main import run

    monkeypatch.setenv("KITARU_STACK", "")  # `--stack` sets it; restored after the test

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            run(list(args))
        out, err = capsys.readouterr()
        code = exited.value.code
        return CliResult(code if isinstance(code, int) else (0 if code is None else 1), out, err)

    return invoke


def until_suspended(handle: Any) -> None:
    """Block until a run's wait (timeout=0) has suspended it (`waiting`, its process let go);
    fail if it ended instead."""
    deadline = time.monotonic() + 30
    while True:
        record = handle._stack.registry.get_execution(handle.exec_id)
        if record.status == "waiting" and record.owner is None:
            return
        assert time.monotonic() < deadline, f"{handle.exec_id} never suspended"
        assert record.status not in ("completed", "failed", "cancelled"), handle.wait()
        time.sleep(0.005)


@pytest.fixture(scope="session")
def azureml_double(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A double of the Azure ML REST endpoints the `azureml` target calls, on 127.0.0.1, running
    each submitted command job as a local process (tests/services/azureml_double.py)."""
    from services.azureml_double import running_double

    with running_double(tmp_path_factory.mktemp("azureml")) as double:
        yield double
