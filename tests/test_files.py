"""Small files under the home (settings, model aliases, the secrets key) are replaced whole,
by any number of threads and processes at once, with the mode they need from the start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kitaru_core import files
from kitaru_core.home import read_settings, write_settings
from kitaru_core.secrets.crypto import write_key_file


def test_a_save_inside_another_saves_rename_leaves_the_last_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The second save runs inside the first one's rename, where another thread could run."""
    real_replace = os.replace
    nested: list[bool] = []

    def replace_after_another_save(src: str, dst: str) -> None:
        if not nested:
            nested.append(True)
            write_settings({"active_stack": "second"}, tmp_path)
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace_after_another_save)
    write_settings({"active_stack": "first"}, tmp_path)

    assert nested and read_settings(tmp_path) == {"active_stack": "first"}
    assert [p.name for p in tmp_path.iterdir()] == ["settings.yaml"]


def test_the_key_file_is_never_readable_by_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    modes: list[int] = []
    real_replace = os.replace

    def replace_seeing_the_mode(src: str, dst: str) -> None:
        modes.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace_seeing_the_mode)
    path = write_key_file(["k1", "k2"], tmp_path / "secrets.key")

    assert modes == [0o600] and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "k1\nk2\n"
    write_settings({"a": 1}, tmp_path)
    assert stat.S_IMODE((tmp_path / "settings.yaml").stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    write_settings({"active_stack": "kept"}, tmp_path)

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_settings({"active_stack": "lost"}, tmp_path)

    assert read_settings(tmp_path) == {"active_stack": "kept"}
    assert [p.name for p in tmp_path.iterdir()] == ["settings.yaml"]
