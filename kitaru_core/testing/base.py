"""What every suite shares: building the flavor under test as users meet it, the
`requires` marker, and the guard against silently dropped standard tests."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from ..interfaces import Component, ComponentContext

if TYPE_CHECKING:
    from ..plugins.flavor import Flavor
    from ..plugins.manager import PluginManager


def build_component(
    component_type: str, flavor: str, config: dict[str, Any], *, home: Path,
    stack_name: str = "conformance", durability: str = "default",
) -> Component:
    """Build a flavor through the installed plugins' entry points, like a stack does.

    Registration, lazy import, `${env:}` / `${home}` placeholders and config
    validation are exercised on the way.
    """
    from ..plugins.manager import PluginManager

    manager = PluginManager()
    manager.load_entry_points()
    return _build(manager.flavor(component_type, flavor), config, home=home, stack_name=stack_name,
                  durability=durability)


def _build(
    found: Flavor, config: dict[str, Any], *, home: Path, stack_name: str = "conformance",
    durability: str = "default",
) -> Component:
    from ..stack import resolve_config

    model = found.config.model_validate(resolve_config(config, home=home, where=f"{found.name}.config"))
    cls = found.load_class()
    context = ComponentContext(home=home, stack_name=stack_name, durability=durability)
    return cls(model, context)


class ComponentConformance:
    """Base of the suites: says which flavor to build; `config` is the author's fixture.

    `make_component()` builds the flavor as a stack would: the `kitaru` entry points are
    loaded into a fresh plugin manager (or the modules in `plugin_modules` registered), the
    flavor is found, `config` resolved and validated by its model, and the class built with a
    `ComponentContext` under the test's `tmp_path`; everything built is closed after the test.
    """

    component_type: ClassVar[str]
    #: the flavor name, as registered by the plugin under test (or override `flavor_name`)
    flavor: ClassVar[str]
    durability: ClassVar[str] = "default"
    #: plugin modules to register instead of loading the installed entry points
    plugin_modules: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        """The flavor's config as a stack file would give it (override per backend)."""
        return {}

    @pytest.fixture
    def flavor_name(self) -> str:
        """The flavor under test: `flavor`, unless overridden (say, parametrized)."""
        name = getattr(self, "flavor", "")
        if not name:
            pytest.fail(f"{type(self).__name__}: set `flavor = NAME` or override `flavor_name`",
                        pytrace=False)
        return name

    @pytest.fixture
    def component_durability(self) -> str:
        """The stack's durability mode the component is built with (`durability` by default)."""
        return self.durability

    @pytest.fixture
    def component_home(self, tmp_path: Path) -> Path:
        """The kitaru home the component is told about."""
        return tmp_path

    @pytest.fixture
    def plugin_manager(self) -> PluginManager:
        from ..plugins.manager import PluginManager

        manager = PluginManager()
        if self.plugin_modules:
            for name in self.plugin_modules:
                manager.register(importlib.import_module(name), name=name)
        else:
            manager.load_entry_points()
        return manager

    @pytest.fixture
    def flavor_spec(self, plugin_manager: PluginManager, flavor_name: str) -> Flavor:
        return plugin_manager.flavor(self.component_type, flavor_name)

    @pytest.fixture
    def flavor_caps(self) -> Any:
        """What the flavor declares (`caps`), for the `requires` marker; None if nothing."""
        return getattr(self, "caps", None)

    @pytest.fixture
    def make_component(
        self, config: dict[str, Any], flavor_spec: Flavor, component_home: Path,
        component_durability: str,
    ) -> Iterator[Callable[..., Component]]:
        """Builds instances of the flavor on the same backend (`make(other_config)` on
        another); closes them all at the end."""
        built: list[Component] = []

        def make(other: dict[str, Any] | None = None) -> Component:
            comp = _build(flavor_spec, config if other is None else other, home=component_home,
                          durability=component_durability)
            built.append(comp)
            return comp

        yield make
        for comp in reversed(built):
            comp.close()

    @pytest.fixture(autouse=True)
    def _kitaru_requires(self, request: pytest.FixtureRequest) -> None:
        """Skip a test marked `requires(feature)` whose feature the flavor's caps lack."""
        markers = list(request.node.iter_markers("requires"))
        caps = request.getfixturevalue("flavor_caps") if markers else None
        if caps is None:
            return
        for marker in markers:
            for feature in marker.args:
                if not getattr(caps, feature):
                    pytest.skip(f"{request.getfixturevalue('flavor_name')!r} does not declare "
                                f"{feature} (caps.{feature} is False)")

    def test_standard_tests_are_not_dropped(self) -> None:
        """A standard test may be overridden only to mark it `xfail(reason=...)`."""
        suites = [c for c in type(self).__mro__
                  if c.__module__.startswith("kitaru_core.testing.suites")]
        dropped = []
        for suite in suites:
            for name, fn in vars(suite).items():
                if not name.startswith("test_"):
                    continue
                mine = getattr(type(self), name, None)
                if mine is fn:
                    continue
                marks = getattr(mine, "pytestmark", [])
                if not any(m.name == "xfail" and m.kwargs.get("reason") for m in marks):
                    dropped.append(name)
        assert dropped == [], (
            f"standard tests overridden without @pytest.mark.xfail(reason=...): {dropped}"
        )
