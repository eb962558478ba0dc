"""The kitaru home folder: stacks, settings, and the local stack's data.

`KITARU_HOME` moves it (tests use a temporary one); the default is `~/.kitaru`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from . import yamltext
from .errors import ConfigError


def home_dir() -> Path:
    """The kitaru home folder (not created)."""
    env = os.environ.get("KITARU_HOME")
    return Path(env).expanduser().resolve() if env else Path.home() / ".kitaru"


def stacks_dir(home: Path | None = None) -> Path:
    return (home or home_dir()) / "stacks"


def settings_path(home: Path | None = None) -> Path:
    return (home or home_dir()) / "settings.yaml"


def read_settings(home: Path | None = None) -> dict:
    """The settings file as a dict ({} when absent)."""
    path = settings_path(home)
    if not path.exists():
        return {}
    try:
        data = yamltext.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix or delete the file") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings; fix or delete the file")
    return data


def write_settings(data: dict, home: Path | None = None) -> None:
    path = settings_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of this process's own: two processes saving settings at once each rename a
    # whole file (the last one wins) instead of one renaming the other's half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=True))
    os.replace(tmp, path)
