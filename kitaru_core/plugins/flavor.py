"""A flavor: a name, a component type, a config model and a lazily imported class."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
            raise PluginError(
                f"flavor {self.name!r} ({self.type}) from plugin {self.plugin!r} could not load "
                f"{self.implementation!r}: {exc}. Reinstall the plugin with its dependencies "
                f"(pip install {self.plugin or '<plugin>'})."
            ) from exc

    def config_fields(self) -> dict[str, dict[str, object]]:
        """Config field names with their type, default and description, for listings."""
        out: dict[str, dict[str, object]] = {}
        for fname, info in self.config.model_fields.items():
            annotation = info.annotation
            # a plain class by its name; `str | None`, `dict[str, str]` spelled out
            type_name = annotation.__name__ if isinstance(annotation, type) else str(annotation)
            out[fname] = {
                "type": str(type_name).replace("typing.", ""),
                "required": info.is_required(),
                "default": None if info.is_required() else _jsonable(
                    info.get_default(call_default_factory=True)
                ),
                "description": info.description or "",
            }
        return out


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
