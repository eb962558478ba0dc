"""Discovers plugins through entry points (group `kitaru`) and collects their flavors.

One broken plugin is reported and skipped; `KITARU_STRICT_PLUGINS=1` makes it
fatal. Tests build their own `PluginManager` and register modules explicitly.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from ..errors import FlavorNotFoundError, PluginError
from . import hookspecs
from .flavor import Flavor
from .markers import PROJECT
from .registrar import FlavorRegistrar

if TYPE_CHECKING:
    from ..secrets import SecretBackend

ENTRY_POINT_GROUP = "kitaru"

# Flavors that kitaru's own plugin packages provide, so that a stack naming one
# that is not installed can say which `pip install` fixes it.
KNOWN_FLAVOR_PACKAGES: dict[tuple[str, str], str] = {
    ("registry", "sqlite"): "kitaru-local",
    ("artifact_store", "local"): "kitaru-local",
    ("artifact_store", "fsspec"): "kitaru-local",
    ("orchestrator", "local"): "kitaru-local",
    ("execution_target", "inline"): "kitaru-local",
    ("execution_target", "process"): "kitaru-local",
    ("registry", "postgres"): "kitaru-postgres",
    ("registry", "server"): "kitaru-server",
    ("artifact_store", "s3"): "kitaru-aws",
    ("execution_target", "sagemaker"): "kitaru-aws",
    ("artifact_store", "gcs"): "kitaru-gcp",
    ("execution_target", "vertex"): "kitaru-gcp",
    ("execution_target", "cloud-run"): "kitaru-gcp",
    ("artifact_store", "azure"): "kitaru-azure",
    ("execution_target", "azureml"): "kitaru-azure",
    ("orchestrator", "kubernetes"): "kitaru-kubernetes",
    ("execution_target", "kubernetes"): "kitaru-kubernetes",
}


#: Where kitaru's own plugins live in its source repository. They are not on a package index
#: yet, so a hint names this folder, never a `pip install NAME` that would fail.
PLUGINS_FOLDER = Path(__file__).resolve().parents[2] / "plugins"


def install_hint(package: str | None) -> str:
    """How to get the flavor kitaru's plugin `package` provides (None: a flavor kitaru has no plugin for)."""
    other = "install a plugin that provides it, or pick an installed flavor"
    if package is None:
        return other
    folder = PLUGINS_FOLDER / package
    if (folder / "pyproject.toml").is_file():
        return f"install kitaru's {package} plugin from its source folder: `pip install {_shown(folder)}`"
    if PLUGINS_FOLDER.is_dir():  # a source checkout without that plugin: it does not exist yet
        return (f"kitaru has no {package} plugin yet (its plugins are the folders of "
                f"{_shown(PLUGINS_FOLDER)}); {other}")
    return (f"kitaru's own plugins install from the `plugins/` folder of its source repository "
            f"(`pip install ./plugins/{package}`, where that folder exists); or {other}")


def _shown(path: Path) -> str:
    """`path` relative to the working folder when it is below it, else absolute."""
    try:
        return f"./{path.relative_to(Path.cwd())}"
    except ValueError:
        return str(path)


@dataclass
class PluginInfo:
    """What `kitaru plugins list` shows about one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    flavors: list[Flavor] = field(default_factory=list)
    error: str | None = None


class PluginManager:
    """A pluggy manager plus the flavors its plugins registered."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._registrar: FlavorRegistrar | None = None

    # -- loading ----------------------------------------------------------
    def load_entry_points(self) -> None:
        """Import every module registered under the `kitaru` entry point group."""
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self._infos:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            self._infos[ep.name] = info
            try:
                module = ep.load()
                self._pm.register(module, name=ep.name)
            except Exception as exc:  # any import error of a third party's code
                info.error = f"{type(exc).__name__}: {exc}"
                self._maybe_strict(info)
                continue
            self._check_hook_names(info, module)
        self._registrar = None

    def register(self, module: types.ModuleType | object, name: str | None = None) -> None:
        """Register a plugin object explicitly (tests, embedded use)."""
        plugin_name = name or getattr(module, "__name__", repr(module))
        info = PluginInfo(name=plugin_name, module=plugin_name)
        self._infos[plugin_name] = info
        self._pm.register(module, name=plugin_name)
        self._check_hook_names(info, module)
        self._registrar = None

    def _check_hook_names(self, info: PluginInfo, module: object) -> None:
        """A `@hookimpl` whose name is no hook (a typo) would be silently ignored: report it."""
        unknown = sorted(
            caller.name for caller in self._pm.get_hookcallers(module) or [] if not caller.has_spec()
        )
        if unknown:
            info.error = (
                f"implements unknown hook(s) {', '.join(unknown)}; kitaru's hooks are: "
                + ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("kitaru_")))
            )
            self._maybe_strict(info)

    # -- flavors ----------------------------------------------------------
    @property
    def registrar(self) -> FlavorRegistrar:
        if self._registrar is None:
            self._registrar = self._collect()
        return self._registrar

    def flavor(self, type_: str, name: str) -> Flavor:
        """The flavor `name` of `type_`, or a `FlavorNotFoundError` naming the installed ones."""
        found = self.registrar.get(type_, name)
        if found is not None:
            return found
        installed = ", ".join(f.name for f in self.registrar.of_type(type_)) or "none"
        fix = install_hint(KNOWN_FLAVOR_PACKAGES.get((type_, name)))
        broken = [i for i in self._infos.values() if i.error]
        extra = (
            "; plugins that failed to load: "
            + ", ".join(f"{i.name} ({i.error})" for i in broken)
            if broken
            else ""
        )
        raise FlavorNotFoundError(
            f"unknown {type_} flavor {name!r}; installed {type_} flavors: {installed}; "
            f"{fix}{extra}"
        )

    def secret_backends(self) -> list[SecretBackend]:
        """Every plugin's secret backends, in the order they are asked (`order`, then name).

        A plugin whose hook fails is reported like one whose flavors fail (`plugins()`)."""
        from ..secrets import SecretBackend

        found: list[SecretBackend] = []
        for impl in self._pm.hook.kitaru_secret_backends.get_hookimpls():
            info = self._infos.setdefault(
                impl.plugin_name, PluginInfo(name=impl.plugin_name, module=impl.plugin_name)
            )
            try:
                backends = list(impl.function() or [])
                wrong = [b for b in backends if not isinstance(b, SecretBackend)]
                if wrong:
                    raise PluginError(f"kitaru_secret_backends returned {wrong[0]!r}, not a "
                                      "kitaru_core.secrets.SecretBackend")
            except Exception as exc:
                info.error = f"{type(exc).__name__}: {exc}"
                self._maybe_strict(info)
                continue
            found.extend(backends)
        return sorted(found, key=lambda b: (b.order, b.name))

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, with its flavors or its load error."""
        self.registrar  # noqa: B018 - make sure flavors are collected
        return [self._infos[k] for k in sorted(self._infos)]

    def _collect(self) -> FlavorRegistrar:
        registrar = FlavorRegistrar()
        for info in self._infos.values():
            info.flavors = []
        for impl in self._pm.hook.kitaru_register_flavors.get_hookimpls():
            info = self._infos.setdefault(
                impl.plugin_name, PluginInfo(name=impl.plugin_name, module=impl.plugin_name)
            )
            registrar.current_plugin = info.distribution or info.name
            before = registrar.all()
            try:
                impl.function(registrar=registrar)
            except Exception as exc:
                # all or nothing: a plugin that failed half way contributes no flavors
                registrar.restore(before)
                info.error = f"{type(exc).__name__}: {exc}"
                self._maybe_strict(info)
            info.flavors = [f for f in registrar.all() if f not in before]
        return registrar

    @staticmethod
    def _maybe_strict(info: PluginInfo) -> None:
        if os.environ.get("KITARU_STRICT_PLUGINS", "") not in ("", "0", "false"):
            raise PluginError(f"plugin {info.name!r} ({info.module}) failed to load: {info.error}")


_default: PluginManager | None = None


def default_manager() -> PluginManager:
    """The process-wide manager, loaded from entry points on first use."""
    global _default
    if _default is None:
        manager = PluginManager()
        manager.load_entry_points()
        _default = manager
    return _default


def set_default_manager(manager: PluginManager | None) -> None:
    """Replace (or with None, reset) the process-wide manager."""
    global _default
    _default = manager
