"""Every hook a kitaru plugin may implement. This file is the whole contract."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .markers import hookspec

if TYPE_CHECKING:
    from ..secrets import SecretBackend
    from .registrar import FlavorRegistrar


@hookspec
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    """Register this plugin's component flavors with `registrar.add(Flavor(...))`.

    Called once per plugin manager, when flavors are first needed. Keep it
    cheap: import config models (pydantic) here, but name implementation
    classes as "module:Class" strings so no SDK is imported until a stack
    using the flavor is built. Since 0.1.
    """


@hookspec
def kitaru_secret_backends() -> list[SecretBackend]:
    """Return this plugin's secret backends (`kitaru_core.secrets.SecretBackend` instances).

    A backend is a read-only source of secrets besides the registry: the environment
    (kitaru-local's), a cloud secret manager, a vault. `get(name)` returns the secret's
    keys and values, or None when the backend has no such secret; `list()` may name the
    secrets it has (names and key names only). Backends are asked in ascending `order`
    (the environment is 0), before the registry. Keep it cheap: import SDKs inside
    `get`. Since 0.1.
    """
