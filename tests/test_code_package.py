"""The code package: modules and package data, minus ignored files, within a size limit."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from kitaru_core.errors import ConfigError
from kitaru_core.runtime import code_package as cp


def names(root: Path) -> list[str]:
    cp._cache.clear()
    package = cp.code_package(root)
    assert package is not None
    return sorted(zipfile.ZipFile(io.BytesIO(package[0])).namelist())


def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "app" / "prompts").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "agent.py").write_text("X = 1\n")
    (root / "app" / "prompts" / "greet.txt").write_text("Hello {name}")
    (root / "app" / "schema.json").write_text("{}")
    (root / "data").mkdir()
    (root / "data" / "big.csv").write_text("a,b\n")
    (root / "app" / "__pycache__").mkdir()
    (root / "app" / "__pycache__" / "agent.cpython-311.pyc").write_bytes(b"\0")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / ".env").write_text("SECRET=1")
    return root


def test_package_data_next_to_the_code_is_shipped(tmp_path: Path) -> None:
    assert names(project(tmp_path)) == [
        "app/__init__.py", "app/agent.py", "app/prompts/greet.txt", "app/schema.json", "data/big.csv",
    ]  # no caches, VCS folders or dotfiles (a .env holds secrets)


def test_the_ignore_file_leaves_out_names_paths_and_folders(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / ".kitaruignore").write_text("# data is fetched by the task\ndata/\n*.json\napp/prompts/*\n")
    assert names(root) == ["app/__init__.py", "app/agent.py"]


def test_the_same_files_make_the_same_package(tmp_path: Path) -> None:
    root = project(tmp_path)
    cp._cache.clear()
    first = cp.code_package(root)
    cp._cache.clear()
    assert cp.code_package(root) == first


def test_a_package_over_the_limit_is_refused_naming_the_largest_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    (root / "data" / "huge.bin").write_bytes(b"x" * 3 * 2**20)
    monkeypatch.setenv("KITARU_CODE_PACKAGE_MAX_MB", "2")
    cp._cache.clear()
    with pytest.raises(ConfigError) as err:
        cp.code_package(root)
    message = str(err.value)
    assert "data/huge.bin" in message and ".kitaruignore" in message and "\n" not in message
    (root / ".kitaruignore").write_text("*.bin\n")
    assert "data/huge.bin" not in names(root)
