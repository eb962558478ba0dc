"""What every suite shares: building the flavor under test as users meet it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ..interfaces import Component, ComponentContext


def build_component(
    component_type: str, flavor: str, config: dict[str, Any], *, home: Path,
    stack_name: str = "conformance", durability: str = "default",
) -> Component:
    """Build a flavor through the installed plugins' entry points, like a stack does.

    Registration, lazy import and config validation are exercised on the way.
    """
    from ..plugins.manager import PluginManager

    manager = PluginManager()
    manager.load_entry_points()
    found = manager.flavor(component_type, flavor)
    model = found.config.model_validate(config)
    cls = found.load_class()
    context = ComponentContext(home=home, stack_name=stack_name, durability=durability)
    return cls(model, context)


class ComponentConformance:
    """Base of the suites: says which flavor to build; `config` is the author's fixture."""

    component_type: ClassVar[str]
    #: the flavor name, as registered by the plugin under test
    flavor: ClassVar[str]
    durability: ClassVar[str] = "default"

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        """The flavor's config as a stack file would give it (override per backend)."""
        return {}

    @pytest.fixture
    def make_component(
        self, config: dict[str, Any], tmp_path: Path
    ) -> Iterator[Callable[[], Component]]:
        """Builds instances of the flavor on the same backend; closes them all at the end."""
        built: list[Component] = []

        def make() -> Component:
            comp = build_component(self.component_type, self.flavor, config, home=tmp_path,
                                   durability=self.durability)
            built.append(comp)
            return comp

        yield make
        for comp in reversed(built):
            comp.close()
