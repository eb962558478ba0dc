"""Placeholders in stack config values: `${home}`, `${env:NAME}`, `${secret:NAME.KEY}` and `$$`
for a literal `$`.

A stack file keeps its placeholders as written: registering a stack, freezing it into an
execution record or shipping it to a worker never writes an environment variable's or a
secret's value. They are resolved where a component is built (a secret through the
`secret` lookup the builder passes: `kitaru_core.secrets`). Any other `${...}` is an error, so that a
typo (`${HOME}`, `${env:}`) is caught at `kitaru stack validate` and not in production.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError

# `$$` (an escaped `$`), a closed `${...}`, or a `${` that is never closed.
_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: `${secret:NAME.KEY}`: a secret's name (no dots) and one of its keys.
_SECRET_REF = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)")
_FIX = ("the placeholders are ${home} (the kitaru home), ${env:NAME} and ${secret:NAME.KEY}; "
        "write $$ for a literal $")
#: Resolves one `${secret:NAME.KEY}`: (name, key, where) -> the value.
SecretLookup = Callable[[str, str, str], str]


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
            if inner.startswith("secret:"):
                if _SECRET_REF.fullmatch(inner[7:]):
                    continue
                raise ConfigError(
                    f"`{path}`: {token!r} needs a secret name and key, e.g. "
                    f"${{secret:db-creds.PASSWORD}}; {_FIX}"
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


def secret_refs(value: Any) -> list[tuple[str, str]]:
    """The (secret, key) pairs `value` (a string, list or mapping) refers to, in order."""
    refs: list[tuple[str, str]] = []
    for _, text in _strings(value, ""):
        for match in _TOKEN.finditer(text):
            inner = match.group(1)
            found = _SECRET_REF.fullmatch(inner[7:]) if inner and inner.startswith("secret:") else None
            if found and (found.group(1), found.group(2)) not in refs:
                refs.append((found.group(1), found.group(2)))
    return refs


def whole_env(value: Any) -> str | None:
    """The variable name if `value` is exactly one `${env:NAME}`, else None."""
    if isinstance(value, str):
        match = _TOKEN.fullmatch(value)
        inner = match.group(1) if match else None
        if inner and inner.startswith("env:") and _ENV_NAME.fullmatch(inner[4:]):
            return inner[4:]
    return None


def resolve(value: Any, *, home: Path, strict: bool, where: str = "config",
            secret: SecretLookup | None = None) -> Any:
    """`value` with its placeholders replaced, recursively.

    `strict`: an unset variable is a `ConfigError` naming the key; otherwise its
    `${env:NAME}` is left in place (validation before the environment is known).
    `${secret:NAME.KEY}` is resolved through `secret`, and left in place without one.
    """
    if isinstance(value, dict):
        return {k: resolve(v, home=home, strict=strict, where=f"{where}.{k}", secret=secret)
                for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, home=home, strict=strict, where=f"{where}[{i}]", secret=secret)
                for i, v in enumerate(value)]
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
        if secret is not None and inner is not None and inner.startswith("secret:"):
            found = _SECRET_REF.fullmatch(inner[7:])
            if found:
                return secret(found.group(1), found.group(2), where)
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
