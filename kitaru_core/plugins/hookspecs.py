"""Every hook a kitaru plugin may implement. This file is the whole contract."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .markers import hookspec

if TYPE_CHECKING:
    from .registrar import FlavorRegistrar


@hookspec
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    """Register this plugin's component flavors with `registrar.add(Flavor(...))`.

    Called once per plugin manager, when flavors are first needed. Keep it
    cheap: import config models (pydantic) here, but name implementation
    classes as "module:Class" strings so no SDK is imported until a stack
    using the flavor is built. Since 0.1.
    """
