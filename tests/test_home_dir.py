"""`home_dir()` follows KITARU_HOME and, for a relative one, the working folder, though it
resolves each value only once."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitaru_core.home import home_dir


def test_a_relative_home_follows_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv("KITARU_HOME", "kh")
    monkeypatch.chdir(tmp_path / "a")
    assert home_dir() == (tmp_path / "a" / "kh").resolve()
    monkeypatch.chdir(tmp_path / "b")
    assert home_dir() == (tmp_path / "b" / "kh").resolve()


def test_a_new_value_is_resolved_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("KITARU_HOME", str(tmp_path / "link"))
    assert home_dir() == real.resolve()
    monkeypatch.setenv("KITARU_HOME", str(tmp_path / "other"))
    assert home_dir() == (tmp_path / "other").resolve()
    monkeypatch.delenv("KITARU_HOME")
    assert home_dir() == Path.home() / ".kitaru"
