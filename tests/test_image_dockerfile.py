"""`kitaru image dockerfile`: the image of a remote stack, pinned at this machine's versions.

No image is built here (no docker or buildah on the test machines): the tests check the
Dockerfile's pins and that `--out` writes a context whose every COPY source exists, whose
vendored sources are installable packages, and whose project passes the worker's digest check.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from kitaru import images
from kitaru_core.runtime import code_package as cp
from kitaru_core.runtime.image_code import image_code_root
from kitaru_core.stack import StackStore

#: Made at run time: the vendored kitaru source holds this file, which must not contain it.
TOKEN = uuid.uuid4().hex
SECRET = f"postgresql://kitaru:{TOKEN}@db.internal/kitaru"
PLUGINS = ("kitaru-kubernetes", "kitaru-postgres", "kitaru-aws")


@pytest.fixture
def k8s_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """stacks/k8s-postgres-s3.yaml registered, its database URL (a secret) set in the environment,
    and with the code in the image at /srv/agents."""
    monkeypatch.setenv("KITARU_DB_URL", SECRET)
    text = (REPO / "stacks" / "k8s-postgres-s3.yaml").read_text()
    path = tmp_path / "k8s.yaml"
    path.write_text(text + "\ncode: {source: image, path: /srv/agents}\n")
    return StackStore().register(path)["name"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "agents"
    (root / "agents" / "prompts").mkdir(parents=True)
    (root / "agents" / "__init__.py").write_text("")
    (root / "agents" / "flows.py").write_text("X = 1\n")
    (root / "agents" / "prompts" / "review.txt").write_text("Review {doc}")
    (root / "pyproject.toml").write_text('[project]\nname = "agents"\nversion = "1.0"\n')
    (root / ".env").write_text(f"KITARU_DB_URL={SECRET}\n")  # dotfiles stay out of images
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "lib" / "big.bin").write_bytes(b"\0" * 100)
    return root


def install_args(dockerfile: str) -> list[str]:
    """The arguments of the first `RUN pip install` (its continued lines)."""
    block = dockerfile.split("RUN pip install \\\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r'"([^"]+)"', block)


def test_the_dockerfile_pins_kitaru_and_the_stacks_plugins_at_the_installed_versions(
    cli: Callable[..., Any], k8s_stack: str, project: Path
) -> None:
    done = cli("image", "dockerfile", "--stack", k8s_stack, "--project", str(project))
    assert done.exit_code == 0, done.stderr
    text = done.stdout
    major, minor = sys.version_info[:2]
    assert f"FROM python:{major}.{minor}-slim\n" in text
    args = install_args(text)
    for name in ("kitaru", *PLUGINS, "cloudpickle"):
        version = metadata.version(name)
        assert f"#   {name} {version} (" in text, name
    # This checkout's kitaru and plugins are editable installs: carried as source.
    for name in ("kitaru", *PLUGINS):
        assert f"{images.VENDOR_IN_IMAGE}/{name}" in args
    assert f"cloudpickle=={metadata.version('cloudpickle')}" in args
    assert "kitaru-local" not in text  # not a flavor of this stack
    assert "COPY project/ /srv/agents/\n" in text and "WORKDIR /srv/agents" in text
    assert "RUN pip install /srv/agents" in text  # the project, from the build context
    assert cp.code_digest(project, cached=False)[:16] in text
    assert TOKEN not in text
    assert "--out DIR" in done.stderr


def test_distributions_from_a_package_index_are_pinned_by_version(
    cli: Callable[..., Any], k8s_stack: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "_local_source", lambda dist: None)  # as after `pip install kitaru-aws`
    done = cli("image", "dockerfile", "--stack", k8s_stack, "--project", str(project), "-o", "json")
    assert done.exit_code == 0, done.stderr
    data = done.json()
    args = install_args(data["dockerfile"])
    assert sorted(args) == sorted(f"{name}=={metadata.version(name)}"
                                  for name in ("kitaru", *PLUGINS, "cloudpickle"))
    assert args[0].startswith("kitaru==")
    assert "COPY vendor/" not in data["dockerfile"]
    assert data["code_path"] == "/srv/agents" and data["digest"] == cp.code_digest(project, cached=False)


def test_out_writes_a_usable_build_context(
    cli: Callable[..., Any], k8s_stack: str, project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "context"
    done = cli("image", "dockerfile", "--stack", k8s_stack, "--project", str(project), "--out", str(out))
    assert done.exit_code == 0, done.stderr
    assert "docker build -t" in done.stdout and "docker push" in done.stdout
    dockerfile = (out / "Dockerfile").read_text()
    # Every COPY source is in the context.
    copies = re.findall(r"^COPY (\S+) (\S+)$", dockerfile, re.M)
    assert {src for src, _ in copies} == {"vendor/", "project/"}
    for src, _ in copies:
        assert (out / src).is_dir()
    # Each vendored source is the installable package pip is told to install.
    for arg in install_args(dockerfile):
        if arg.startswith(images.VENDOR_IN_IMAGE):
            folder = out / "vendor" / arg.rsplit("/", 1)[1]
            assert (folder / "pyproject.toml").is_file(), folder
    vendored = {p.name for p in (out / "vendor").iterdir()}
    assert vendored == {"kitaru", *PLUGINS}
    assert (out / "vendor" / "kitaru-kubernetes" / "kitaru_kubernetes" / "target.py").is_file()
    assert not list((out / "vendor").rglob(".venv")) and not list((out / "vendor").rglob(".git"))
    # The project as a code package holds it (no .env, no .venv), with its digest recorded ...
    files = sorted(p.relative_to(out / "project").as_posix() for p in (out / "project").rglob("*")
                   if p.is_file())
    assert files == [cp.CODE_MANIFEST, "agents/__init__.py", "agents/flows.py",
                     "agents/prompts/review.txt", "pyproject.toml"]
    manifest = json.loads((out / "project" / cp.CODE_MANIFEST).read_text())
    assert manifest["digest"] == cp.code_digest(project, cached=False)
    assert manifest["path"] == "/srv/agents"
    # ... and passes the worker's check of the image's code against the runner's digest.
    assert image_code_root({"path": str(out / "project"), "digest": manifest["digest"]}) == out / "project"
    # No environment value anywhere in the context.
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_out_refuses_a_folder_that_is_not_empty(
    cli: Callable[..., Any], k8s_stack: str, project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = cli("image", "dockerfile", "--stack", k8s_stack, "--project", str(project), "--out", str(out))
    assert done.exit_code == 2  # a usage error (ConfigError)
    assert "not an empty folder" in done.stderr and (out / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_the_vendored_sources_build_as_the_pinned_versions(
    cli: Callable[..., Any], k8s_stack: str, project: Path, tmp_path: Path
) -> None:
    """pip (offline, no install) reads each vendored folder as the distribution and version pinned."""
    out = tmp_path / "context"
    assert cli("image", "dockerfile", "--stack", k8s_stack, "--project", str(project),
               "--out", str(out)).exit_code == 0
    folders = sorted((out / "vendor").iterdir())
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
         "--no-build-isolation", "--quiet", "--report", str(report), *map(str, folders)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    built = {item["metadata"]["name"]: item["metadata"]["version"]
             for item in json.loads(report.read_text())["install"]}
    assert built == {name: metadata.version(name) for name in ("kitaru", *PLUGINS)}
