"""Packaging: kitaru and its plugins build without setuptools deprecation warnings."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECTS = [REPO, *sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))]


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_pyproject_metadata_gives_no_setuptools_warning(project: Path, monkeypatch: pytest.MonkeyPatch):
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    monkeypatch.chdir(project)  # `readme` and package discovery are relative to the project
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), project / "pyproject.toml")
    problems = [f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught
                if "deprecat" in f"{w.category.__name__} {w.message}".lower()]
    assert problems == []
    fix = 'in pyproject.toml: license = "Apache-2.0" and build-system requires "setuptools>=77"'
    assert dist.metadata.license_expression == "Apache-2.0", fix
    # an SPDX license string needs setuptools 77 to build at all: the build requires say so
    requires = tomllib.loads((project / "pyproject.toml").read_text())["build-system"]["requires"]
    assert "setuptools>=77" in requires, fix
