"""A third party's plugin works with no change to kitaru: build it, pip-install it, use it.

The test writes a separate distribution (its own pyproject.toml with a
`[project.entry-points.kitaru]` entry) whose artifact store flavor keeps blobs
in a folder named in its config and writes a marker file when it is built. It
is installed into this virtualenv, a stack uses it, and a flow run in a fresh
process stores its artifacts there. Names are unique per run, so parallel runs
(and other tests seeing the extra plugin meanwhile) cannot collide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow

PYPROJECT = """\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "1.2.3"
description = "Mirror artifact store for kitaru (a third-party plugin built by a test)"
requires-python = ">=3.11"
dependencies = ["kitaru"]

[project.entry-points.kitaru]
{entry} = "{module}.plugin"

[tool.setuptools]
packages = ["{module}"]
"""

PLUGIN = '''\
"""Registers the mirror artifact store; imports no implementation."""

from pydantic import Field

from kitaru_core.interfaces import FlavorConfig
from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl


class MirrorStoreConfig(FlavorConfig):
    folder: str = Field(description="Where the blobs are kept")
    marker: str = Field(description="A file written each time the store is built")


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="{flavor}", type="artifact_store", config=MirrorStoreConfig,
        implementation="{module}.store:MirrorStore",
        description="Blobs in a folder of your choice.",
    ))
'''

STORE = '''\
"""The mirror artifact store: content-addressed blobs and named files in one folder."""

import os
from pathlib import Path

from kitaru_core.errors import ArtifactNotFoundError
from kitaru_core.interfaces import ArtifactStore


class MirrorStore(ArtifactStore):
    def __init__(self, config, context):
        super().__init__(config, context)
        self.root = Path(config.folder)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        Path(config.marker).write_text(f"mirror store built for stack {context.stack_name}\\n")

    def put_blob(self, data, key):
        path = self.root / "blobs" / key
        if not path.exists():
            self._write(path, data)

    def get_blob(self, key):
        try:
            return (self.root / "blobs" / key).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"blob {key} is not in {self.root}") from None

    def write_file(self, path, data):
        self._write(self.root / path, data)

    def read_file(self, path):
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None

    def url(self, path):
        return str((self.root / path).resolve())

    def _write(self, path, data):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
'''

FLOW_SCRIPT = """\
import json

from kitaru import checkpoint, flow


@checkpoint
def make_report(topic: str) -> dict:
    return {"topic": topic, "words": 3}


@flow
def report(topic: str) -> dict:
    return make_report(topic).load()


if __name__ == "__main__":
    handle = report.run("mirrors")
    print(json.dumps({"exec_id": handle.exec_id, "result": handle.wait()}))
"""


@dataclass
class ThirdPartyPlugin:
    dist: str  # the distribution's name, as pip knows it
    entry: str  # the entry point's name = the plugin's name in `kitaru plugins list`
    flavor: str
    source: Path


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=300)


def can_build_without_isolation() -> bool:
    """setuptools >= 70.1 builds wheels by itself (older ones need the `wheel` package)."""
    try:
        version = tuple(int(p) for p in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    try:
        metadata.version("wheel")
        return True
    except metadata.PackageNotFoundError:
        return version >= (70, 1)


@pytest.fixture
def mirror_plugin(tmp_path: Path) -> Iterator[ThirdPartyPlugin]:
    tag = uuid.uuid4().hex[:10]
    module = f"kitaru_mirror_{tag}"
    plugin = ThirdPartyPlugin(dist=f"kitaru-mirror-{tag}", entry=f"mirror-{tag}",
                              flavor=f"mirror-{tag}", source=tmp_path / "kitaru-mirror")
    (plugin.source / module).mkdir(parents=True)
    (plugin.source / "pyproject.toml").write_text(
        PYPROJECT.format(dist=plugin.dist, entry=plugin.entry, module=module)
    )
    (plugin.source / module / "__init__.py").write_text('"""A third party\'s kitaru plugin."""\n')
    (plugin.source / module / "plugin.py").write_text(PLUGIN.format(flavor=plugin.flavor, module=module))
    (plugin.source / module / "store.py").write_text(STORE)

    # building needs no index when the venv's setuptools can build wheels itself
    isolation = ["--no-build-isolation", "--no-index"] if can_build_without_isolation() else []
    installed = pip("install", "--no-deps", *isolation, str(plugin.source))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        yield plugin
    finally:
        removed = pip("uninstall", "-y", plugin.dist)
        assert removed.returncode == 0, removed.stderr


def test_third_party_artifact_store_is_used_for_a_flow(
    mirror_plugin: ThirdPartyPlugin, tmp_path: Path, kitaru_home: Path
):
    # the plugin is listed with its version, flavor and config fields
    listed = run_cli("plugins", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    mine = plugins[mirror_plugin.entry]
    assert (mine["distribution"], mine["version"], mine["error"]) == (mirror_plugin.dist, "1.2.3", None)
    assert [(f["type"], f["name"]) for f in mine["flavors"]] == [("artifact_store", mirror_plugin.flavor)]
    config = mine["flavors"][0]["config"]
    assert set(config) == {"folder", "marker"}
    assert config["folder"]["type"] == "str" and config["folder"]["required"] is True
    assert plugins["local"]["error"] is None  # the built-in plugin is unaffected

    # a stack that uses the flavor; the rest of it is local
    blobs, marker = tmp_path / "mirror-blobs", tmp_path / "mirror.marker"
    stack_file = tmp_path / "mirrored.yaml"
    stack_file.write_text(textwrap.dedent(f"""\
        name: mirrored
        # every value goes to the artifact store, however small
        registry: {{flavor: sqlite, config: {{inline_max_bytes: 0}}}}
        artifact_store:
          flavor: {mirror_plugin.flavor}
          config: {{folder: "{blobs}", marker: "{marker}"}}
    """))
    registered = run_cli("stack", "register", str(stack_file), "-o", "json")
    assert registered.returncode == 0, registered.stderr
    bad = stack_file.with_name("bad.yaml")
    bad.write_text(f"name: bad\nartifact_store: {{flavor: {mirror_plugin.flavor}, config: {{folder: x}}}}\n")
    refused = run_cli("stack", "validate", str(bad))
    assert refused.returncode == 2
    assert "missing required key 'marker'" in refused.stderr  # the plugin's config model is enforced

    # a flow in a fresh process on that stack
    script = tmp_path / "report_flow.py"
    script.write_text(FLOW_SCRIPT)
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "KITARU_STACK": "mirrored"}, timeout=120)
    assert ran.returncode == 0, ran.stderr
    outcome = json.loads(ran.stdout.strip().splitlines()[-1])
    assert outcome["result"] == {"topic": "mirrors", "words": 3}

    assert marker.read_text() == "mirror store built for stack mirrored\n"
    execution = run_cli("--stack", "mirrored", "executions", "get", outcome["exec_id"], "-o", "json")
    assert execution.returncode == 0, execution.stderr
    details = json.loads(execution.stdout)
    assert details["status"] == "completed" and details["stack_name"] == "mirrored"
    output = next(a for a in details["checkpoints"][0]["artifacts"] if a["direction"] == "output")
    assert (blobs / "blobs" / output["key"]).is_file()  # the output went to the plugin's folder
    assert not (kitaru_home / "artifacts" / "blobs").exists()  # nothing went to the local store

    # uninstalled, the stack is reported as invalid, and the rest keeps working
    assert pip("uninstall", "-y", mirror_plugin.dist).returncode == 0
    after = {r["name"]: r for r in json.loads(run_cli("stack", "list", "-o", "json").stdout)}
    assert f"unknown artifact_store flavor '{mirror_plugin.flavor}'" in after["mirrored"]["error"]
    assert after["local"]["error"] is None
