"""Placeholders in stack config values: `${home}`, `${env:NAME}`, and `$$` for a literal `$`.

A stack file keeps its placeholders as written: registering a stack, freezing it into an
execution record or shipping it to a worker never writes an environment variable's value.
They are resolved where a component is built. Any other `${...}` is an error, so that a
typo (`${HOME}`, `${env:}`) is caught at `kitaru stack validate` and not in production.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

# `$$` (an escaped `$`), a closed `${...}`, or a `${` that is never closed.
_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIX = "the placeholders are ${home} (the kitaru home) and ${env:NAME}; write $$ for a literal $"


def check(value: Any, where: str) -> None:
    """Raise a `ConfigError` naming the key (`where`) of the first unknown or malformed placeholder."""
    for path, text in _strings(value, where):
        for match in _TOKEN.finditer(text):
            token = match.group(0)
            if token == "$$":
                continue
            inner = match.group(1)
            if inner is None:
                raise ConfigError(f"`{path}`: `${{` is never closed in {text!r}; {_FIX}")
            if inner == "home":
                continue
            if inner.startswith("env:"):
                if _ENV_NAME.fullmatch(inner[4:]):
                    continue
                raise ConfigError(
                    f"`{path}`: {token!r} needs an environment variable name (letters, digits, "
                    f"'_'), e.g. ${{env:DATABASE_URL}}; {_FIX}"
                )
            hint = f" (did you mean ${{env:{inner}}}?)" if _ENV_NAME.fullmatch(inner) else ""
            raise ConfigError(f"`{path}`: unknown placeholder {token!r}{hint}; {_FIX}")


def env_names(value: Any) -> list[str]:
    """The environment variables `value` (a string, list or mapping) refers to, in order."""
    names: list[str] = []
    for _, text in _strings(value, ""):
        for match in _TOKEN.finditer(text):
            inner = match.group(1)
            if inner and inner.startswith("env:") and inner[4:] not in names:
                names.append(inner[4:])
    return names


def whole_env(value: Any) -> str | None:
    """The variable name if `value` is exactly one `${env:NAME}`, else None."""
    if isinstance(value, str):
        match = _TOKEN.fullmatch(value)
        inner = match.group(1) if match else None
        if inner and inner.startswith("env:") and _ENV_NAME.fullmatch(inner[4:]):
            return inner[4:]
    return None


def resolve(value: Any, *, home: Path, strict: bool, where: str = "config") -> Any:
    """`value` with its placeholders replaced, recursively.

    `strict`: an unset variable is a `ConfigError` naming the key; otherwise its
    `${env:NAME}` is left in place (validation before the environment is known).
    """
    if isinstance(value, dict):
        return {k: resolve(v, home=home, strict=strict, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, home=home, strict=strict, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        token, inner = match.group(0), match.group(1)
        if token == "$$":
            return "$"
        if inner == "home":
            return str(home)
        if inner is not None and inner.startswith("env:"):
            name = inner[4:]
            if name in os.environ:
                return os.environ[name]
            if strict:
                raise ConfigError(
                    f"`{where}` uses ${{env:{name}}}, but the environment variable {name} is not "
                    "set; export it where the stack's components are built and try again"
                )
        return token

    return _TOKEN.sub(replace, value)


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    """Every string in `value` with its key path."""
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{where}[{i}]")]
    return []
