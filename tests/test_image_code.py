"""`code: {source: image}`: the runner uploads no code, the worker checks the image's code by digest."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitaru.errors import FlowFailedError
from kitaru_core.errors import ConfigError
from kitaru_core.runtime import code_package as cp
from kitaru_core.stack import StackStore, validate_stack

APP = '''\
from pathlib import Path

from kitaru import checkpoint, flow


@checkpoint(runtime="isolated")
def shout(text: str) -> dict:
    return {"text": text.upper(), "file": __file__}


@flow
def greet(name: str) -> dict:
    return shout(f"hello {name}").load()
'''


def test_the_stack_code_key_is_checked_and_normalized() -> None:
    spec = validate_stack({"name": "img", "code": {"source": "image", "path": "/srv/app/"}})
    assert spec["code"] == {"source": "image", "path": "/srv/app"}
    assert validate_stack({"name": "img", "code": "image"})["code"] == {"source": "image", "path": "/app"}
    assert "code" not in validate_stack({"name": "plain"})  # nothing said: code packages
    for bad, words in [
        ({"source": "docker"}, "`source` must be `package` or `image`"),
        ({"source": "image", "path": "app"}, "absolute POSIX path"),
        ({"source": "image", "dir": "/app"}, "unknown key 'dir'"),
        (["image"], "must be a mapping"),
    ]:
        with pytest.raises(ConfigError) as err:
            validate_stack({"name": "img", "code": bad}, source="img.yaml")
        assert words in str(err.value) and str(err.value).startswith("img.yaml: `code`")
        assert "\n" not in str(err.value)


def test_the_digest_names_files_by_path_and_content_only(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        (root / "pkg").mkdir(parents=True)
        (root / "pkg" / "a.py").write_text("A = 1\n")
        (root / "prompt.txt").write_text("hi")
    (two / cp.CODE_MANIFEST).write_text("{}")  # dotfiles, caches and VCS are not code
    (two / "pkg" / "__pycache__").mkdir()
    (two / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    digest = cp.code_digest(one, cached=False)
    assert cp.code_digest(two, cached=False) == digest
    (two / "pkg" / "a.py").write_text("A = 2\n")
    assert cp.code_digest(two, cached=False) != digest
    (two / "pkg" / "a.py").write_text("A = 1\n")
    (two / "pkg" / "a.py").rename(two / "pkg" / "b.py")
    assert cp.code_digest(two, cached=False) != digest


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A project `imgapp` importable by this process, and a copy of it as an image would hold it."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "imgapp.py").write_text(APP)
    (root / "prompts").mkdir()
    (root / "prompts" / "hello.txt").write_text("hello {name}")
    sys.path.insert(0, str(root))
    cp._cache.clear()
    cp._digests.clear()
    yield root
    sys.path.remove(str(root))
    sys.modules.pop("imgapp", None)
    cp._cache.clear()
    cp._digests.clear()


def register_image_stack(tmp_path: Path, image_path: Path) -> None:
    path = tmp_path / "img.yaml"
    path.write_text(
        "name: img\nartifact_store: {flavor: local}\nexecution_target: {flavor: process}\n"
        f"code: {{source: image, path: {image_path}}}\n"
    )
    StackStore().register(path)


def test_code_in_the_image_runs_without_an_upload_and_other_code_is_refused(
    project: Path, tmp_path: Path, kitaru_home: Path
) -> None:
    image_app = tmp_path / "image" / "app"
    shutil.copytree(project, image_app)
    register_image_stack(tmp_path, image_app)
    app = importlib.import_module("imgapp")

    handle = app.greet.run("ada", stack="img")
    result = handle.wait(timeout=120)
    assert result["text"] == "HELLO ADA"
    assert Path(result["file"]).resolve() == (image_app / "imgapp.py").resolve()  # the image's copy
    spec_files = list((kitaru_home / "artifacts" / "tasks" / handle.exec_id).rglob("spec.json"))
    function = json.loads(spec_files[0].read_text())["function"]
    assert function["code_image"] == {"path": str(image_app), "digest": cp.code_digest(project)}
    assert "code_package" not in function and "root" not in function
    # Nothing uploaded: no blob holds a zip of the project.
    blobs = [p for p in (kitaru_home / "artifacts" / "blobs").rglob("*") if p.is_file()]
    assert not any(p.read_bytes().startswith(b"PK\x03\x04") for p in blobs)

    # The image's code drifts from the runner's: the call fails naming both digests and the fix.
    (image_app / "imgapp.py").write_text(APP + "\n# edited in the image\n")
    with pytest.raises(FlowFailedError) as err:
        app.greet.run("bob", stack="img").wait(timeout=120)
    message = str(err.value)
    runner_digest = cp.code_digest(project)[:16]
    image_digest = cp.code_digest(image_app, cached=False)[:16]
    assert f"has digest {image_digest}" in message and f"has digest {runner_digest}" in message
    assert "CodeMismatchError" in message and "kitaru image dockerfile" in message
    assert "\n" not in message.strip()

    # No code at the path at all: the same error, saying so.
    shutil.rmtree(image_app)
    with pytest.raises(FlowFailedError, match="this image has no folder there"):
        app.greet.run("cy", stack="img").wait(timeout=120)
