"""A runner launched on another machine (an orchestrator with locality "network") gets only the
entrypoint, the registry's and store's flavor and config (`${env:}` unresolved) and the flow's
code reference: no interpreter path, folder or kitaru home of the launching machine.

The launch is recorded by a test orchestrator and then run here as another machine would: in an
empty folder, with another kitaru home and without the project on its path, so the flow can
only come from the code package in the store (or the code "in the image").
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kitaru_core import stack as stack_module
from kitaru_core.interfaces import FlavorConfig, Orchestrator
from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl
from kitaru_core.plugins.manager import PluginManager
from kitaru_core.runtime import code_package as cp
from kitaru_core.stack import StackStore, get_stack

APP = '''\
from kitaru import checkpoint, flow


@checkpoint
def shout(text: str) -> str:
    return text.upper()


@flow
def greet(name: str) -> dict:
    return {"text": shout(f"hello {name}").load(), "file": __file__}
'''

#: Run a recorded launch's command as a remote machine would (the test orchestrator's flavor
#: registered first: the runner builds the execution's frozen stack).
RUNNER = (
    "import sys; sys.path.insert(0, {tests!r}); import test_remote_launch as t; t.register_default(); "
    "from kitaru_core.entrypoint import main; sys.exit(main(sys.argv[1:]))"
)


class NoConfig(FlavorConfig):
    pass


class RecordingOrchestrator(Orchestrator):
    """Runs flow bodies "elsewhere": records each launch, starts nothing."""

    in_process = False
    locality = "network"
    launches: list[dict[str, Any]] = []

    def launch(
        self, exec_id: str, *, command: list[str], env: dict[str, str], cwd: str | None
    ) -> dict[str, Any]:
        type(self).launches.append({"command": list(command), "env": dict(env), "cwd": cwd})
        return {"exec_id": exec_id}


def _plugin() -> Any:
    import types

    mod = types.ModuleType("recording_orchestrator_plugin")

    @hookimpl
    def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
        registrar.add(Flavor(name="recording", type="orchestrator", config=NoConfig,
                             implementation=f"{__name__}:RecordingOrchestrator"))

    mod.kitaru_register_flavors = kitaru_register_flavors  # type: ignore[attr-defined]
    return mod


def register_default() -> PluginManager:
    from kitaru_core.plugins import manager as manager_module

    pm = PluginManager()
    pm.load_entry_points()
    pm.register(_plugin(), name="recording-orchestrator")
    manager_module.set_default_manager(pm)
    return pm


@pytest.fixture
def far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """The `recording` orchestrator; the record and store at paths named by `${env:}` references
    (a folder stands in for the shared services, which the reach check would otherwise refuse)."""
    from kitaru_core.plugins import manager as manager_module

    register_default()
    monkeypatch.setattr(stack_module, "check_reach", lambda *args: None)
    paths = {"db": tmp_path / "shared" / "kitaru.db", "store": tmp_path / "shared" / "store"}
    monkeypatch.setenv("SHARED_DB", str(paths["db"]))
    monkeypatch.setenv("SHARED_STORE", str(paths["store"]))
    RecordingOrchestrator.launches.clear()
    project = tmp_path / "proj"
    project.mkdir()
    (project / "remoteapp.py").write_text(APP)
    sys.path.insert(0, str(project))
    cp._cache.clear()
    cp._digests.clear()
    yield {"project": project, **paths}
    sys.path.remove(str(project))
    sys.modules.pop("remoteapp", None)
    manager_module.set_default_manager(None)


def register(tmp_path: Path, name: str, extra: str = "") -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nregistry: {{flavor: sqlite, config: {{path: '${{env:SHARED_DB}}'}}}}\n"
        "artifact_store: {flavor: local, config: {root: '${env:SHARED_STORE}'}}\n"
        f"orchestrator: {{flavor: recording}}\n{extra}"
    )
    StackStore().register(path)


def run_elsewhere(tmp_path: Path, launch: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """The launch's command on "another machine": its own home, an empty folder, no project."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("KITARU_HOME", "KITARU_STACK_SPEC", "PYTHONPATH")}
    env.update(launch["env"], KITARU_HOME=str(tmp_path / "remote-home"))
    assert launch["command"][0] == "python"
    runner = RUNNER.format(tests=str(Path(__file__).parent))
    return subprocess.run([sys.executable, "-c", runner, *launch["command"][3:]], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_remote_runner_gets_no_local_value_and_runs_the_flow_from_the_code_package(
    far: dict[str, Path], tmp_path: Path
) -> None:
    register(tmp_path, "far")
    app = importlib.import_module("remoteapp")
    handle = app.greet.run("ada", stack="far")
    launch = RecordingOrchestrator.launches[0]
    command = launch["command"]
    assert command[:5] == ["python", "-m", "kitaru_core.entrypoint", "resume", handle.exec_id]
    assert launch["cwd"] is None
    text = json.dumps(launch)
    for local in (sys.executable, "KITARU_HOME", "KITARU_STACK_SPEC", str(tmp_path), str(Path.home())):
        assert local not in text
    # The registry's and store's config as the stack file wrote them; the code by its store key.
    registry_config = json.loads(command[command.index("--registry-config") + 1])
    assert registry_config == {"path": "${env:SHARED_DB}"}
    assert json.loads(command[command.index("--store-config") + 1]) == {"root": "${env:SHARED_STORE}"}
    key = command[command.index("--code-package") + 1]
    store = get_stack("far").artifact_store
    assert store.get_blob(key) == cp.code_package(far["project"])[0]

    done = run_elsewhere(tmp_path, launch)
    assert done.returncode == 0, done.stderr
    result = handle.wait(timeout=60)
    assert result["text"] == "HELLO ADA"
    # It ran from the package unpacked under the other machine's home, not from the project.
    assert Path(result["file"]).parent == tmp_path / "remote-home" / "code" / key


def test_a_remote_runner_with_the_code_in_its_image_checks_the_digest(
    far: dict[str, Path], tmp_path: Path
) -> None:
    image_app = tmp_path / "image" / "app"
    shutil.copytree(far["project"], image_app)
    register(tmp_path, "baked", f"code: {{source: image, path: {image_app}}}\n")
    app = importlib.import_module("remoteapp")
    handle = app.greet.run("ada", stack="baked")
    command = RecordingOrchestrator.launches[0]["command"]
    assert "--code-package" not in command
    assert command[command.index("--code-image") + 1] == str(image_app)
    assert command[command.index("--code-digest") + 1] == cp.code_digest(far["project"])
    assert not (far["store"] / "blobs").exists() or not any(
        p.read_bytes().startswith(b"PK\x03\x04") for p in (far["store"] / "blobs").rglob("*") if p.is_file())
    done = run_elsewhere(tmp_path, RecordingOrchestrator.launches[0])
    assert done.returncode == 0, done.stderr
    assert Path(handle.wait(timeout=60)["file"]).parent == image_app

    # Other code in the image: the runner refuses it, and says so on the execution, in one line.
    (image_app / "remoteapp.py").write_text(APP + "# changed\n")
    second = app.greet.run("bob", stack="baked")
    done = run_elsewhere(tmp_path, RecordingOrchestrator.launches[1])
    assert done.returncode != 0
    assert "CodeMismatch" not in done.stdout and "rebuild and push the image" in done.stderr
    failure = get_stack("baked").registry.get_execution(second.exec_id).failure
    assert failure["resume_failed"] and failure["type"].endswith("CodeMismatchError")
    assert cp.code_digest(far["project"])[:16] in failure["message"]
    assert cp.code_digest(image_app, cached=False)[:16] in failure["message"]
    assert "\n" not in failure["message"]
