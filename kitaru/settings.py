"""Run options and their precedence: `kitaru.configure(...)`, `ImageSettings`, `KITARU_*`.

A run's `stack`, `cache`, `retries` and `image` are resolved once, when the run starts,
most specific first: `.run(...)` > `@flow(...)` > `kitaru.configure(...)` > the
environment (`KITARU_STACK`, `KITARU_CACHE`, `KITARU_RETRIES`, `KITARU_IMAGE`) > defaults
(the active stack, `cache` unset, `retries=0`, no image). `image` is merged field by field
across these layers (a higher layer's `environment` adds to a lower one's), as Kitaru 0.21
does. The result is frozen into the execution, so a resume or a retry uses the same options.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from kitaru_core.errors import ConfigError


@dataclass(frozen=True)
class ImageSettings:
    """The container image a remote orchestrator or execution target runs a flow in.

    Recorded with the execution (like its stack); the local stack runs in this
    interpreter and uses none of it. The fields are Kitaru 0.21's.
    """

    base_image: str | None = None
    requirements: list[str] | None = None
    dockerfile: str | None = None
    build_context_root: str | None = None
    environment: dict[str, str] | None = None
    secret_environment_from: list[str] | None = None
    apt_packages: list[str] | None = None
    replicate_local_python_environment: bool | None = None
    image_tag: str | None = None
    target_repository: str | None = None
    user: str | None = None
    platform: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "replicate_local_python_environment":
                if not isinstance(value, bool):
                    raise ConfigError(f"ImageSettings({f.name}={value!r}): expected True or False")
            elif f.name == "environment":
                if not isinstance(value, Mapping) or not all(
                    isinstance(k, str) and k.strip() for k in value
                ):
                    raise ConfigError(
                        f"ImageSettings(environment={value!r}): expected a dict of variable names "
                        "to values"
                    )
                object.__setattr__(self, f.name, {k.strip(): str(v) for k, v in value.items()})
            elif f.name in ("requirements", "secret_environment_from", "apt_packages"):
                if isinstance(value, str) or not all(isinstance(v, str) and v.strip() for v in value):
                    raise ConfigError(
                        f"ImageSettings({f.name}={value!r}): expected a list of non-empty strings"
                    )
                object.__setattr__(self, f.name, [v.strip() for v in value])
            elif not isinstance(value, str) or not value.strip():
                raise ConfigError(f"ImageSettings({f.name}={value!r}): expected a non-empty string")
            else:
                object.__setattr__(self, f.name, value.strip())

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (what the execution record keeps)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def merged_over(self, base: ImageSettings | None) -> ImageSettings:
        """These settings over `base`: each field set here wins; `environment` is merged."""
        if base is None:
            return self
        changes = self.to_dict()
        if self.environment is not None and base.environment:
            changes["environment"] = {**base.environment, **self.environment}
        return replace(base, **changes)


def as_image(value: Any, where: str) -> ImageSettings | None:
    """`ImageSettings` from what Kitaru accepts for `image=`: settings, a mapping, a base image."""
    if value is None or isinstance(value, ImageSettings):
        return value
    if isinstance(value, str):
        if not value.strip():
            raise ConfigError(f"{where}: an image string can't be empty")
        return ImageSettings(base_image=value)
    if isinstance(value, Mapping):
        data = dict(value)
        if "parent_image" in data and "base_image" not in data:
            data["base_image"] = data.pop("parent_image")
        known = {f.name for f in fields(ImageSettings)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown image field {unknown[0]!r}; the fields are {', '.join(sorted(known))}"
            )
        return ImageSettings(**data)
    raise ConfigError(
        f"{where}: expected kitaru.ImageSettings(...), a dict of its fields or a base image string "
        f"(got {type(value).__name__})"
    )


def check_retries(value: Any, where: str) -> int | None:
    """`value` if it is None or an int >= 0, else a ConfigError naming `where`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}(retries={value!r}): expected an int >= 0")
    return value


def check_cache(value: Any, where: str) -> bool | None:
    """`value` if it is None, True or False, else a ConfigError naming `where`."""
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(f"{where}(cache={value!r}): expected True, False or None")


@dataclass(frozen=True)
class Settings:
    """What `configure()` sets; `@flow(...)` and `.run(...)` options override it."""

    stack: str | None = None
    retries: int | None = None
    cache: bool | None = None
    image: ImageSettings | None = None


@dataclass(frozen=True)
class RunOptions:
    """The options a run uses once every layer is resolved (frozen into the execution)."""

    retries: int = 0
    cache: bool | None = None
    image: ImageSettings | None = None

    def to_record(self) -> dict[str, Any]:
        """The options that differ from the defaults, as plain JSON values."""
        out: dict[str, Any] = {}
        if self.retries:
            out["retries"] = self.retries
        if self.cache is not None:
            out["cache"] = self.cache
        if self.image is not None and self.image.to_dict():
            out["image"] = self.image.to_dict()
        return out


_settings = Settings()
_UNSET: Any = object()


def configure(
    *,
    stack: str | None = _UNSET,
    retries: int | None = _UNSET,
    cache: bool | None = _UNSET,
    image: ImageSettings | Mapping[str, Any] | str | None = _UNSET,
) -> Settings:
    """Set this process's defaults for the runs it starts: stack, flow retries, cache, image.

    Only the arguments given change (`None` clears one); returns the settings now in
    force. `@flow(...)` and `.run(...)` options override these.
    """
    global _settings
    changes: dict[str, Any] = {}
    if stack is not _UNSET:
        changes["stack"] = stack
    if retries is not _UNSET:
        changes["retries"] = check_retries(retries, "configure")
    if cache is not _UNSET:
        changes["cache"] = check_cache(cache, "configure")
    if image is not _UNSET:
        changes["image"] = as_image(image, "configure(image=...)")
    _settings = replace(_settings, **changes)
    return _settings


def current() -> Settings:
    return _settings


# -- the environment layer -----------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_cache() -> bool | None:
    raw = os.environ.get("KITARU_CACHE", "").strip().lower()
    if not raw:
        return None
    if raw in _TRUE | _FALSE:
        return raw in _TRUE
    raise ConfigError(f"KITARU_CACHE={raw!r}: expected true or false (or unset it)")


def _env_retries() -> int | None:
    raw = os.environ.get("KITARU_RETRIES", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ConfigError(f"KITARU_RETRIES={raw!r}: expected an int >= 0 (or unset it)")
    return int(raw)


def _env_image() -> ImageSettings | None:
    raw = os.environ.get("KITARU_IMAGE", "").strip()
    if not raw:
        return None
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"KITARU_IMAGE is not valid JSON ({exc.msg}); give a JSON object of "
                              "ImageSettings fields or a plain base image") from None
        return as_image(data, "KITARU_IMAGE")
    return as_image(raw, "KITARU_IMAGE")


def resolve(run: Mapping[str, Any], flow: Mapping[str, Any]) -> RunOptions:
    """The options of one run: `run` (`.run(...)`) > `flow` (`@flow(...)`) > configure >
    environment > defaults. In `run` and `flow`, None means "not given here"."""
    conf = _settings
    retries = _first(run.get("retries"), flow.get("retries"), conf.retries, _env_retries())
    cache = _first(run.get("cache"), flow.get("cache"), conf.cache, _env_cache())
    image: ImageSettings | None = None
    for layer in (_env_image(), conf.image, flow.get("image"), run.get("image")):
        if layer is not None:
            image = layer.merged_over(image)
    return RunOptions(retries=retries or 0, cache=cache, image=image)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
