"""The registrar plugins add their flavors to; it owns all validation."""

from __future__ import annotations

from ..errors import PluginError
from .flavor import COMPONENT_TYPES, Flavor


class FlavorRegistrar:
    """Collects flavors from plugins; rejects wrong types and duplicates by name."""

    def __init__(self) -> None:
        self._flavors: dict[tuple[str, str], Flavor] = {}
        self.current_plugin = ""

    def add(self, flavor: Flavor) -> None:
        """Register one flavor on behalf of the plugin being loaded."""
        from ..interfaces import FlavorConfig

        if not isinstance(flavor, Flavor):
            raise PluginError(
                f"plugin {self.current_plugin!r} registered {flavor!r}; expected a "
                "kitaru_core.plugins.Flavor"
            )
        if flavor.type not in COMPONENT_TYPES:
            raise PluginError(
                f"plugin {self.current_plugin!r} registered flavor {flavor.name!r} with unknown "
                f"type {flavor.type!r}; expected one of {', '.join(COMPONENT_TYPES)}"
            )
        if not (isinstance(flavor.config, type) and issubclass(flavor.config, FlavorConfig)):
            raise PluginError(
                f"plugin {self.current_plugin!r}: flavor {flavor.name!r} config must subclass "
                "kitaru_core.interfaces.FlavorConfig"
            )
        key = (flavor.type, flavor.name)
        if key in self._flavors:
            other = self._flavors[key].plugin
            raise PluginError(
                f"flavor {flavor.name!r} ({flavor.type}) is registered by both {other!r} and "
                f"{self.current_plugin!r}; uninstall one of them"
            )
        object.__setattr__(flavor, "plugin", self.current_plugin)
        self._flavors[key] = flavor

    def restore(self, flavors: list[Flavor]) -> None:
        """Go back to exactly `flavors` (an earlier `all()`): drops a failed plugin's additions."""
        self._flavors = {(f.type, f.name): f for f in flavors}

    def get(self, type_: str, name: str) -> Flavor | None:
        return self._flavors.get((type_, name))

    def of_type(self, type_: str) -> list[Flavor]:
        return [f for (t, _), f in sorted(self._flavors.items()) if t == type_]

    def all(self) -> list[Flavor]:
        return [self._flavors[k] for k in sorted(self._flavors)]
