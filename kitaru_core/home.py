"""The kitaru home folder: stacks, settings, and the local stack's data.

`KITARU_HOME` moves it (tests use a temporary one); the default is `~/.kitaru`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from . import yamltext
from .errors import ConfigError
from .files import replace_file

#: (KITARU_HOME, the working folder if that is relative, the resolved folder) last seen.
_resolved: tuple[str, str, Path] | None = None


def home_dir() -> Path:
    """The kitaru home folder (not created)."""
    global _resolved
    env = os.environ.get("KITARU_HOME")
    if not env:
        return Path.home() / ".kitaru"
    # Resolved once per value: every flow.run() asks a few times, and resolving costs a
    # system call per path component (~30 µs).
    cwd = "" if env.startswith(("/", "~")) else os.getcwd()
    hit = _resolved
    if hit is not None and hit[0] == env and hit[1] == cwd:
        return hit[2]
    path = Path(env).expanduser().resolve()
    _resolved = (env, cwd, path)
    return path


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
    replace_file(settings_path(home), yaml.safe_dump(data, sort_keys=True))
