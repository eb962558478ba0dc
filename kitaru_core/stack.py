"""Stacks: parse and validate stack files, store them under the home, build components.

A stack file names one flavor per component and that flavor's config::

    name: local
    durability: default          # or "strict": records also survive a power loss
    code: {source: package}      # or {source: image, path: /app}: see `code_source`
    registry:         {flavor: sqlite}
    artifact_store:   {flavor: local}
    orchestrator:     {flavor: local}
    execution_target: {flavor: process}

Config values may hold `${env:NAME}` (read when the stack is built, never
written to a record; a whole-value reference takes the field's type),
`${secret:NAME.KEY}` (resolved when the component is built: from the environment,
a secret backend plugin, or this stack's registry) and `${home}` (the kitaru home
folder); see `placeholders` and `kitaru_core.secrets`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import placeholders, yamltext
from .errors import ConfigError, KitaruError, StackBuildError, StackExistsError, StackNotFoundError
from .home import home_dir, read_settings, stacks_dir, write_settings
from .ids import quoted
from .interfaces import LOCALITIES
from .plugins.flavor import COMPONENT_TYPES, type_label
from .plugins.manager import PluginManager, default_manager

DEFAULT_STACK = "local"
TOP_LEVEL_KEYS = ("name", "description", "durability", "code", *COMPONENT_TYPES)
COMPONENT_KEYS = ("flavor", "config")
DURABILITY_MODES = ("default", "strict")
DEFAULT_COMPONENTS: dict[str, dict[str, Any]] = {
    "registry": {"flavor": "sqlite"},
    "artifact_store": {"flavor": "local"},
    "orchestrator": {"flavor": "local"},
    "execution_target": {"flavor": "inline"},
}
# Letters and digits of any script (a stack name is also a file name under the home).
_NAME_RE = re.compile(r"^[^\W_][\w.-]*$")


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
        data = yamltext.safe_load(text)
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
    if not isinstance(name, str) or not _valid_name(name):
        raise ConfigError(
            f"{source}: `name` must be a word of letters (any script), digits, '-', '_' or '.' "
            f"that starts with a letter or digit, at most {MAX_STACK_NAME} characters "
            f"(got {quoted(name) if isinstance(name, str) else repr(name)})"
        )
    name = normalize_name(name)
    durability = spec.get("durability", "default")
    if durability not in DURABILITY_MODES:
        raise ConfigError(
            f"{source}: `durability` must be one of {', '.join(DURABILITY_MODES)} "
            f"(got {durability!r})"
        )
    out: dict[str, Any] = {"name": name, "durability": durability}
    models: dict[str, tuple[Any, Any]] = {}
    if spec.get("description") is not None:
        out["description"] = str(spec["description"])
    if spec.get("code") is not None:  # where remote tasks get the code (see `code_source`)
        from .code_source import validate_code

        out["code"] = validate_code(spec["code"], source)
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
        models[ctype] = (flavor, validate_config(flavor, config, source=source, where=f"{ctype}.config"))
        out[ctype] = {"flavor": flavor_name, "config": config}
    check_reach(models, source)
    return out


_WHERE = {"process": "in the runner's process", "machine": "on this machine", "network": "anywhere"}


def check_reach(models: dict[str, tuple[Any, Any]], source: str) -> None:
    """Refuse a stack whose tasks or runners run where its store or registry cannot be used.

    `models` maps each component type to (flavor, its validated config model or None
    when that is not known yet). A flavor whose class cannot be imported here is not
    checked (it fails, with its own message, when the stack is built).
    """
    from .errors import PluginError

    def cls_of(ctype: str) -> Any:
        try:
            return models[ctype][0].load_class()
        except (PluginError, ImportError):
            return None

    def reach(ctype: str) -> str:
        cls, model = cls_of(ctype), models[ctype][1]
        if cls is None or model is None:
            return "network"
        return str(cls.reach(model))

    rank = {name: i for i, name in enumerate(LOCALITIES)}
    target, orchestrator = cls_of("execution_target"), cls_of("orchestrator")
    users: list[tuple[str, str, tuple[str, ...]]] = []
    if target is not None and not target.in_process:
        users.append(("execution_target", target.locality, ("artifact_store",)))
    if orchestrator is not None:
        users.append(("orchestrator", orchestrator.locality, ("artifact_store", "registry")))
    for user, runs, needs in users:
        for need in needs:
            where = reach(need)
            if rank.get(where, 2) < rank.get(runs, 2):
                what = "tasks" if user == "execution_target" else "runners"
                raise ConfigError(
                    f"{source}: the {models[user][0].name!r} {user.replace('_', ' ')} runs {what} "
                    f"{_WHERE.get(runs, runs)}, but the {models[need][0].name!r} "
                    f"{need.replace('_', ' ')} can only be used {_WHERE.get(where, where)}; use a "
                    f"{need.replace('_', ' ')} they can reach (such as "
                    f"{'s3, gcs or azure' if need == 'artifact_store' else 'postgres'}) or a local "
                    f"{user.replace('_', ' ')}"
                )


def normalize_name(name: str) -> str:
    """A stack name in Unicode NFC, so that `é` typed either way names the same stack."""
    return unicodedata.normalize("NFC", name)


#: A stack name is also a file name under the home: keep it well under any file system's limit.
MAX_STACK_NAME = 100


def _valid_name(name: str) -> bool:
    if len(name) > MAX_STACK_NAME:
        return False
    return _NAME_RE.fullmatch(unicodedata.normalize("NFC", name)) is not None


def validate_config(
    flavor: Any,
    config: dict[str, Any],
    *,
    source: str,
    where: str,
    home: Path | None = None,
    resolve_env: bool = False,
    secret: placeholders.SecretLookup | None = None,
) -> Any:
    """The flavor's config model built from a stack's raw `config`, placeholders resolved.

    `resolve_env=False` (checking a stack file): a key whose `${env:NAME}` is not set
    here, or that holds a `${secret:...}`, is left unchecked, and None is returned if
    there is such a key. With `resolve_env=True` (building a component) every variable
    must be set and every secret found, through `secret` (default: the environment and
    secret backend plugins, no registry: what a worker has).
    A value that is exactly one `${env:NAME}` and does not fit the field as a
    string is read as YAML: `${env:PORT}` can fill an int, a bool, a list or a mapping.
    """
    from pydantic import ValidationError

    if resolve_env and secret is None:
        secret = secret_lookup(None)
    try:
        placeholders.check(config, where)
        resolved = placeholders.resolve(config, home=home or home_dir(), strict=resolve_env, where=where,
                                        secret=secret if resolve_env else None)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    pending = set() if resolve_env else {
        k for k, v in config.items()
        if any(n not in os.environ for n in placeholders.env_names(v)) or placeholders.secret_refs(v)
    }
    try:
        model = flavor.config.model_validate(resolved)
        return None if pending else model
    except ValidationError as exc:
        errors = exc.errors()
    retry: dict[str, Any] = {}
    for err in errors:
        key = err["loc"][0] if err["loc"] else None
        if key in pending or not isinstance(key, str) or not placeholders.whole_env(config.get(key)):
            continue
        try:
            parsed = yamltext.safe_load(resolved[key])
        except yaml.YAMLError:
            continue
        if parsed != resolved[key]:
            retry[key] = parsed
    if retry:
        try:
            model = flavor.config.model_validate({**resolved, **retry})
            return None if pending else model
        except ValidationError as exc:
            errors = exc.errors()
    errors = [e for e in errors if not (e["loc"] and e["loc"][0] in pending)]
    if not errors:
        return None
    raise ConfigError(
        f"{source}: `{where}` of flavor {flavor.name!r}: "
        + "; ".join(_describe(flavor.config, err, config) for err in errors)
    ) from None


def _describe(model: Any, err: dict[str, Any], config: dict[str, Any]) -> str:
    """One config validation problem, in the stack file's terms."""
    loc = ".".join(str(p) for p in err["loc"])
    expected = _expected_type(model, err["loc"])
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(model.model_fields) or "none"
        return f"unknown key {loc!r} (allowed keys: {allowed})"
    if err["type"] == "missing":
        return f"missing required key {loc!r}" + (f" ({expected})" if expected else "")
    raw = config.get(err["loc"][0]) if err["loc"] else None
    # A value read from the environment may be a secret: show the reference, never the value.
    got = f"{raw!r}" if placeholders.env_names(raw) or placeholders.secret_refs(raw) \
        else repr(err.get("input"))
    if err["type"] == "value_error":
        message = err["msg"].removeprefix("Value error, ")
        return f"{loc}: {message}"
    if expected and len(err["loc"]) == 1:
        return f"{loc}: expected {expected}, got {got} ({err['msg']})"
    return f"{loc}: {err['msg']} (got {got})"


def _expected_type(model: Any, loc: tuple[Any, ...]) -> str:
    """The declared type of the config field an error location starts with ("" if unknown)."""
    info = model.model_fields.get(loc[0]) if loc else None
    if info is None or info.annotation is None:
        return ""
    return type_label(info.annotation)


def secret_lookup(registry: Any, manager: PluginManager | None = None) -> placeholders.SecretLookup:
    """Resolves `${secret:NAME.KEY}`: from the environment and secret backend plugins, then
    from `registry` (a callable building it on first need, or None for no registry)."""

    def lookup(name: str, key: str, where: str) -> str:
        from .secrets import resolve_key

        found = registry() if callable(registry) else registry
        return resolve_key(name, key, registry=found, manager=manager, where=f"`{where}`")

    return lookup


def resolve_config(config: dict[str, Any], *, home: Path, where: str = "config") -> dict[str, Any]:
    """`config` with `${home}` and `${env:NAME}` resolved (every variable must be set)."""
    return placeholders.resolve(config, home=home, strict=True, where=where)


# -- the stack store under the home ------------------------------------------


class StackStore:
    """Registered stacks (YAML files under `<home>/stacks`) and the active one."""

    def __init__(self, home: Path | None = None, manager: PluginManager | None = None) -> None:
        self.home = home or home_dir()
        self.manager = manager

    def _path(self, name: str) -> Path:
        if not _valid_name(name):  # also keeps `../x` from naming a file outside the folder
            raise StackNotFoundError(
                f"no stack named {quoted(name)} (not a valid stack name: letters, digits, '.', "
                f"'-', '_', at most {MAX_STACK_NAME} characters); registered stacks: "
                f"{', '.join(self.names())}"
            )
        return stacks_dir(self.home) / f"{normalize_name(name)}.yaml"

    def register(self, path: str | Path, *, activate: bool = False, force: bool = False) -> dict[str, Any]:
        """Validate a stack file and store it; an existing stack of that name needs `force`."""
        spec = validate_stack(load_stack_file(path), source=str(path), manager=self.manager)
        name = spec["name"]
        target = self._path(name)
        if not force and (target.exists() or name == DEFAULT_STACK):
            what = "the built-in `local` stack" if name == DEFAULT_STACK and not target.exists() \
                else f"a registered stack {name!r}"
            raise StackExistsError(
                f"{path}: there is already {what}; pass --force (force=True) to replace it, "
                "or give this stack another `name`"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                yaml.safe_dump(spec, fh, sort_keys=False, allow_unicode=True)
            if force:
                os.replace(tmp, target)
            else:
                try:  # never replaces a file another `register` wrote in the meantime
                    os.link(tmp, target)
                except FileExistsError:
                    raise StackExistsError(
                        f"{path}: a stack {name!r} was registered meanwhile; pass --force to replace it"
                    ) from None
        finally:
            tmp.unlink(missing_ok=True)
        if activate:
            self.set_active(name)
        return spec

    def names(self) -> list[str]:
        found = {p.stem for p in stacks_dir(self.home).glob("*.yaml")}
        return sorted(found | {DEFAULT_STACK})

    def get(self, name: str) -> dict[str, Any]:
        name = normalize_name(name)
        path = self._path(name)
        try:
            stat = path.stat()
        except FileNotFoundError:
            stat = None
        if stat is not None:
            return _validated_file(path, stat, self.manager or default_manager())
        if name == DEFAULT_STACK:
            return builtin_local_stack()
        raise StackNotFoundError(
            f"no stack named {name!r}; registered stacks: {', '.join(self.names())}. "
            "Register one with `kitaru stack register FILE.yaml`"
        )

    def delete(self, name: str) -> None:
        name = normalize_name(name)
        if name == DEFAULT_STACK and not self._path(name).exists():
            raise ConfigError("the built-in `local` stack cannot be deleted")
        if not self._path(name).exists():
            self.get(name)  # raises the not-found error
        # Deleting a replacement of `local` brings the built-in one back: nothing is left dangling.
        if self.active_name() == name and name != DEFAULT_STACK:
            raise ConfigError(
                f"stack {name!r} is active; activate another first with `kitaru stack set NAME`"
            )
        self._path(name).unlink()

    def active_name(self) -> str:
        return str(read_settings(self.home).get("active_stack") or DEFAULT_STACK)

    def set_active(self, name: str) -> None:
        name = self.get(name)["name"]
        settings = read_settings(self.home)
        settings["active_stack"] = name
        write_settings(settings, self.home)


#: Validated stack files by path: (the file's signature, the plugin manager, the spec). A
#: flow reads its stack on every `run()`; the file is parsed and checked again only when it
#: changed (a registered file is replaced, never rewritten in place: a new inode).
_specs: dict[str, tuple[tuple[int, ...], PluginManager, dict[str, Any]]] = {}


def _validated_file(path: Path, stat: os.stat_result, manager: PluginManager) -> dict[str, Any]:
    signature = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
    hit = _specs.get(str(path))
    if hit is not None and hit[0] == signature and hit[1] is manager:
        return copy.deepcopy(hit[2])
    spec = validate_stack(load_stack_file(path), source=str(path), manager=manager)
    _specs[str(path)] = (signature, manager, spec)
    return copy.deepcopy(spec)


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
    # Reentrant: building a component whose config names a `${secret:...}` builds the registry.
    _lock: threading.RLock = field(default_factory=threading.RLock)

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
        flavor = self.manager.flavor(ctype, self.spec[ctype]["flavor"])
        try:
            return self._construct(ctype, flavor)
        except KitaruError:
            raise
        except Exception as exc:  # a plugin's constructor: say which component and plugin
            raise StackBuildError(
                f"stack {self.name!r}: {_component_label(ctype, flavor)} could not be built: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _construct(self, ctype: str, flavor: Any) -> Any:
        from .interfaces import ComponentContext

        # The registry's own config cannot name a secret kept in that registry.
        registry = None if ctype == "registry" else (lambda: self.registry)
        config = validate_config(
            flavor, self.spec[ctype].get("config") or {}, source=f"stack {self.name!r}",
            where=f"{ctype}.config", home=self.home, resolve_env=True,
            secret=secret_lookup(registry, self.manager),
        )
        cls = flavor.load_class()
        context = ComponentContext(
            home=self.home, stack_name=self.name, durability=self.spec.get("durability", "default")
        )
        return cls(config, context)

    def connect(self) -> dict[str, str]:
        """Build (then close) every component; returns each one's flavor.

        A `StackBuildError` names every component that failed, its flavor and plugin.
        """
        failures: list[str] = []
        for ctype in COMPONENT_TYPES:
            label = f"`{ctype}` (flavor {self.spec[ctype]['flavor']!r})"
            try:
                flavor = self.manager.flavor(ctype, self.spec[ctype]["flavor"])
                label = _component_label(ctype, flavor)
                component = self._construct(ctype, flavor)
            except Exception as exc:  # any plugin's code: report it and try the others
                detail = str(exc) if isinstance(exc, KitaruError) else f"{type(exc).__name__}: {exc}"
                detail = detail.removeprefix(f"stack {self.name!r}: ")
                failures.append(f"{label} could not be built: {detail}")
            else:
                component.close()
        if failures:
            raise StackBuildError(f"stack {self.name!r}: " + "; ".join(failures))
        return {ctype: self.spec[ctype]["flavor"] for ctype in COMPONENT_TYPES}

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


def _component_label(ctype: str, flavor: Any) -> str:
    plugin = f" from plugin {flavor.plugin!r}" if getattr(flavor, "plugin", "") else ""
    return f"`{ctype}` (flavor {flavor.name!r}{plugin})"


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
