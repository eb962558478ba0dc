"""Shared fixtures: every test gets its own kitaru home (real SQLite file, real folder)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kitaru_core.stack import clear_stack_cache

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def kitaru_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh KITARU_HOME per test; no prompts; stacks rebuilt per test."""
    home = tmp_path / "kitaru-home"
    monkeypatch.setenv("KITARU_HOME", str(home))
    monkeypatch.setenv("KITARU_INTERACTIVE", "0")
    monkeypatch.delenv("KITARU_STACK", raising=False)
    clear_stack_cache()
    import kitaru.settings as settings

    monkeypatch.setattr(settings, "_settings", settings.Settings())
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
