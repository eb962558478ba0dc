"""Stacks: parse and validate stack files, store them under the home, build components.

A stack file names one flavor per component and that flavor's config::

    name: local
    durability: default          # or "strict": records also survive a power loss
    registry:         {flavor: sqlite}
    artifact_store:   {flavor: local}
    orchestrator:     {flavor: local}
    execution_target: {flavor: process}

Config strings may hold `${env:NAME}` (read when the stack is built, never
written to a record) and `${home}` (the kitaru home folder).
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, StackNotFoundError
from .home import home_dir, read_settings, stacks_dir, write_settings
from .plugins.flavor import COMPONENT_TYPES
from .plugins.manager import PluginManager, default_manager

DEFAULT_STACK = "local"
TOP_LEVEL_KEYS = ("name", "description", "durability", *COMPONENT_TYPES)
COMPONENT_KEYS = ("flavor", "config")
DURABILITY_MODES = ("default", "strict")
DEFAULT_COMPONENTS: dict[str, dict[str, Any]] = {
    "registry": {"flavor": "sqlite"},
    "artifact_store": {"flavor": "local"},
    "orchestrator": {"flavor": "local"},
    "execution_target": {"flavor": "inline"},
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def builtin_local_stack() -> dict[str, Any]:
    """The `local` stack every installation has: SQLite + a folder under the home."""
    return {"name": DEFAULT_STACK, "durability": "default", **copy.deepcopy(DEFAULT_COMPONENTS)}


# -- parsing and validation --------------------------------------------------


def load_stack_file(path: str | Path) -> dict[str, Any]:
    """Read a stack YAML file; syntax errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"stack file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"{path} is not a file; pass the path of a stack YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"stack file {path} could not be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None:  # e.g. where an unclosed `{` began
            problem += f" ({context} at line {start.line + 1}, column {start.column + 1})"
        raise ConfigError(
            f"{path}: YAML syntax error{where}: {problem}; fix the file and run the command again"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a stack file must be a mapping with a `name` and components")
    return data


def validate_stack(
    spec: dict[str, Any], *, source: str = "<stack>", manager: PluginManager | None = None
) -> dict[str, Any]:
    """Check keys, flavors and each config model; return the normalized spec.

    Components left out take the local defaults. Every error names `source`,
    the key, and what is allowed.
    """
    manager = manager or default_manager()
    unknown = [k for k in spec if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r}; allowed top-level keys: "
            f"{', '.join(TOP_LEVEL_KEYS)}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"{source}: `name` must be a word of letters, digits, '-', '_' or '.' "
            f"(got {name!r})"
        )
    durability = spec.get("durability", "default")
    if durability not in DURABILITY_MODES:
        raise ConfigError(
            f"{source}: `durability` must be one of {', '.join(DURABILITY_MODES)} "
            f"(got {durability!r})"
        )
    out: dict[str, Any] = {"name": name, "durability": durability}
    if spec.get("description") is not None:
        out["description"] = str(spec["description"])
    for ctype in COMPONENT_TYPES:
        comp = spec.get(ctype, DEFAULT_COMPONENTS[ctype])
        if isinstance(comp, str):  # shorthand: `registry: sqlite`
            comp = {"flavor": comp}
        if not isinstance(comp, dict):
            raise ConfigError(
                f"{source}: `{ctype}` must be a mapping like {{flavor: NAME, config: {{...}}}} "
                f"(got {type(comp).__name__})"
            )
        bad = [k for k in comp if k not in COMPONENT_KEYS]
        if bad:
            raise ConfigError(
                f"{source}: unknown key {bad[0]!r} in `{ctype}`; allowed keys: "
                f"{', '.join(COMPONENT_KEYS)}"
            )
        flavor_name = comp.get("flavor")
        if not isinstance(flavor_name, str):
            raise ConfigError(f"{source}: `{ctype}.flavor` must name a flavor (got {flavor_name!r})")
        config = comp.get("config") or {}
        if not isinstance(config, dict):
            raise ConfigError(
                f"{source}: `{ctype}.config` must be a mapping (got {type(config).__name__})"
            )
        try:
            flavor = manager.flavor(ctype, flavor_name)
        except ConfigError as exc:
            raise type(exc)(f"{source}: `{ctype}.flavor`: {exc}") from None
        _validate_config(flavor, config, source=source, where=f"{ctype}.config")
        out[ctype] = {"flavor": flavor_name, "config": config}
    return out


def _validate_config(flavor: Any, config: dict[str, Any], *, source: str, where: str) -> Any:
    from pydantic import ValidationError

    try:
        return flavor.config.model_validate(_interpolate(config, strict=False))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(flavor.config.model_fields) or "none"
                problems.append(f"unknown key {loc!r} (allowed keys: {allowed})")
            elif err["type"] == "missing":
                expected = _expected_type(flavor.config, err["loc"])
                problems.append(f"missing required key {loc!r}" + (f" ({expected})" if expected else ""))
            else:
                got = err.get("input")
                expected = _expected_type(flavor.config, err["loc"])
                if expected and len(err["loc"]) == 1:
                    problems.append(f"{loc}: expected {expected}, got {got!r} ({err['msg']})")
                else:
                    problems.append(f"{loc}: {err['msg']} (got {got!r})")
        raise ConfigError(
            f"{source}: `{where}` of flavor {flavor.name!r}: " + "; ".join(problems)
        ) from None


def _expected_type(model: Any, loc: tuple[Any, ...]) -> str:
    """The declared type of the config field an error location starts with ("" if unknown)."""
    info = model.model_fields.get(loc[0]) if loc else None
    if info is None or info.annotation is None:
        return ""
    annotation = info.annotation
    name = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return name.replace("typing.", "")


def _interpolate(value: Any, *, strict: bool, home: Path | None = None) -> Any:
    """Replace `${env:NAME}` and `${home}` in strings, recursively."""
    if isinstance(value, dict):
        return {k: _interpolate(v, strict=strict, home=home) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, strict=strict, home=home) for v in value]
    if not isinstance(value, str):
        return value

    def env(match: re.Match[str]) -> str:
        var = match.group(1)
        if var in os.environ:
            return os.environ[var]
        if strict:
            raise ConfigError(
                f"environment variable {var} is not set, but the stack's config uses "
                f"${{env:{var}}}; export it and try again"
            )
        return match.group(0)

    value = _ENV_RE.sub(env, value)
    return value.replace("${home}", str(home or home_dir()))


# -- the stack store under the home ------------------------------------------


class StackStore:
    """Registered stacks (YAML files under `<home>/stacks`) and the active one."""

    def __init__(self, home: Path | None = None, manager: PluginManager | None = None) -> None:
        self.home = home or home_dir()
        self.manager = manager

    def _path(self, name: str) -> Path:
        return stacks_dir(self.home) / f"{name}.yaml"

    def register(self, path: str | Path, *, activate: bool = False) -> dict[str, Any]:
        spec = validate_stack(load_stack_file(path), source=str(path), manager=self.manager)
        target = self._path(spec["name"])
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(spec, sort_keys=False))
        os.replace(tmp, target)
        if activate:
            self.set_active(spec["name"])
        return spec

    def names(self) -> list[str]:
        found = {p.stem for p in stacks_dir(self.home).glob("*.yaml")}
        return sorted(found | {DEFAULT_STACK})

    def get(self, name: str) -> dict[str, Any]:
        path = self._path(name)
        if path.exists():
            return validate_stack(load_stack_file(path), source=str(path), manager=self.manager)
        if name == DEFAULT_STACK:
            return builtin_local_stack()
        raise StackNotFoundError(
            f"no stack named {name!r}; registered stacks: {', '.join(self.names())}. "
            "Register one with `kitaru stack register FILE.yaml`"
        )

    def delete(self, name: str) -> None:
        if name == DEFAULT_STACK and not self._path(name).exists():
            raise ConfigError("the built-in `local` stack cannot be deleted")
        if not self._path(name).exists():
            self.get(name)  # raises the not-found error
        if self.active_name() == name:
            raise ConfigError(
                f"stack {name!r} is active; activate another first with `kitaru stack set NAME`"
            )
        self._path(name).unlink()

    def active_name(self) -> str:
        return str(read_settings(self.home).get("active_stack") or DEFAULT_STACK)

    def set_active(self, name: str) -> None:
        self.get(name)
        settings = read_settings(self.home)
        settings["active_stack"] = name
        write_settings(settings, self.home)


def resolve_stack_name(*candidates: str | None, home: Path | None = None) -> str:
    """The most specific stack name: the first given candidate, else KITARU_STACK, else active."""
    for name in candidates:
        if name:
            return name
    env = os.environ.get("KITARU_STACK")
    if env:
        return env
    return StackStore(home).active_name()


# -- built stacks --------------------------------------------------------------


@dataclass
class Stack:
    """A validated stack spec with its components built on first use."""

    spec: dict[str, Any]
    home: Path
    manager: PluginManager
    _components: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.spec["name"]

    def component(self, ctype: str) -> Any:
        comp = self._components.get(ctype)
        if comp is not None:
            return comp
        with self._lock:
            if ctype not in self._components:
                self._components[ctype] = self._build(ctype)
            return self._components[ctype]

    def _build(self, ctype: str) -> Any:
        from .interfaces import ComponentContext

        entry = self.spec[ctype]
        flavor = self.manager.flavor(ctype, entry["flavor"])
        raw = _interpolate(entry.get("config") or {}, strict=True, home=self.home)
        config = _validate_config(flavor, raw, source=f"stack {self.name!r}", where=f"{ctype}.config")
        cls = flavor.load_class()
        context = ComponentContext(
            home=self.home, stack_name=self.name, durability=self.spec.get("durability", "default")
        )
        return cls(config, context)

    @property
    def registry(self) -> Any:
        return self.component("registry")

    @property
    def artifact_store(self) -> Any:
        return self.component("artifact_store")

    @property
    def orchestrator(self) -> Any:
        return self.component("orchestrator")

    @property
    def execution_target(self) -> Any:
        return self.component("execution_target")

    def close(self) -> None:
        for comp in self._components.values():
            comp.close()
        self._components.clear()


_cache: dict[tuple[str, str], Stack] = {}
_cache_lock = threading.Lock()


def get_stack(
    name: str | None = None,
    *,
    spec: dict[str, Any] | None = None,
    manager: PluginManager | None = None,
) -> Stack:
    """A built stack by name (or from a frozen spec), cached per home and spec."""
    home = home_dir()
    if spec is None:
        spec = StackStore(home, manager).get(name or resolve_stack_name(home=home))
    # JSON, not YAML: this runs on every flow.run(), and yaml.safe_dump costs ~2 ms.
    key = (str(home), json.dumps(spec, sort_keys=True, default=str))
    with _cache_lock:
        stack = _cache.get(key)
        if stack is None:
            stack = Stack(spec=spec, home=home, manager=manager or default_manager())
            _cache[key] = stack
        return stack


def clear_stack_cache() -> None:
    """Close and forget every built stack (tests switch homes)."""
    with _cache_lock:
        for stack in _cache.values():
            stack.close()
        _cache.clear()
