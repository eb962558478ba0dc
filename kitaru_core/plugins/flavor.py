"""A flavor: a name, a component type, a config model and a lazily imported class."""

from __future__ import annotations

import importlib
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from ..errors import PluginError

if TYPE_CHECKING:
    from ..interfaces import Component, FlavorConfig

COMPONENT_TYPES = ("registry", "artifact_store", "orchestrator", "execution_target")


@dataclass(frozen=True)
class Flavor:
    """One implementation of a component type, as a plugin registers it."""

    name: str
    type: str
    config: type[FlavorConfig]
    implementation: str  # "package.module:ClassName", imported on first use
    description: str = ""
    plugin: str = field(default="", compare=False)  # filled in by the registrar

    def load_class(self) -> type[Component]:
        """Import the implementation class; a missing SDK becomes a `PluginError`."""
        module_name, _, attr = self.implementation.partition(":")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            from .manager import PLUGINS_FOLDER

            own = PLUGINS_FOLDER / self.plugin if self.plugin else None
            source = str(own) if own is not None and (own / "pyproject.toml").is_file() else self.plugin
            raise PluginError(
                f"flavor {self.name!r} ({self.type}) from plugin {self.plugin!r} could not load "
                f"{self.implementation!r}: {exc}. Reinstall the plugin with its dependencies "
                f"(pip install {source or '<plugin>'})."
            ) from exc

    def config_fields(self) -> dict[str, dict[str, object]]:
        """Config field names with their type, default and description, for listings."""
        out: dict[str, dict[str, object]] = {}
        for fname, info in self.config.model_fields.items():
            out[fname] = {
                "type": type_label(info.annotation),
                "required": info.is_required(),
                "default": None if info.is_required() else _jsonable(
                    info.get_default(call_default_factory=True)
                ),
                "description": info.description or "",
            }
        return out


def type_label(annotation: Any) -> str:
    """A config field's type as a stack author reads it: `float`, `str | None`, `dict[str, str]`."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:  # e.g. `AbsolutePath`: its validators are not part of the name
        return type_label(args[0])
    if origin in (Union, types.UnionType):
        return " | ".join(type_label(a) for a in args)
    if annotation is type(None):
        return "None"
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_label(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
