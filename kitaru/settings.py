"""Process-wide defaults: `kitaru.configure(...)`, and `ImageSettings` for remote runs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class ImageSettings:
    """The container image remote stacks run flows and isolated checkpoints in."""

    base_image: str | None = None
    requirements: list[str] = field(default_factory=list)
    apt_packages: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """What `configure()` sets; decorators and `run()` arguments override it."""

    stack: str | None = None
    retries: int = 0
    cache: bool = False
    image: ImageSettings | None = None


_settings = Settings()
_UNSET: Any = object()


def configure(
    *,
    stack: str | None = _UNSET,
    retries: int = _UNSET,
    cache: bool = _UNSET,
    image: ImageSettings | None = _UNSET,
) -> Settings:
    """Set process defaults: the stack for runs, checkpoint retries and cache, the image.

    Only the arguments given change; returns the settings now in force.
    """
    global _settings
    changes = {
        k: v
        for k, v in {"stack": stack, "retries": retries, "cache": cache, "image": image}.items()
        if v is not _UNSET
    }
    if "retries" in changes and (not isinstance(changes["retries"], int) or changes["retries"] < 0):
        from .errors import ConfigError

        raise ConfigError(f"configure(retries=...) needs an int >= 0 (got {retries!r})")
    _settings = replace(_settings, **changes)
    return _settings


def current() -> Settings:
    return _settings
