"""Model aliases for `kitaru.llm`: short names for Pydantic AI model strings.

    kitaru model register fast --model openai:gpt-5-mini --default
    kitaru.llm("Summarize ...", model="fast")

Aliases live in `models.yaml` in the kitaru home; `KITARU_MODEL_<ALIAS>`
environment variables add aliases (the alias is the lower-cased rest of the
name) and win over the file. The default model is `KITARU_DEFAULT_MODEL` (an
alias or a model string), else the alias registered with `--default`.

A model string is Pydantic AI's `provider:name` (`openai:gpt-5-mini`,
`anthropic:claude-sonnet-4-5`, ...); `provider/name` is accepted and read as
`provider:name`, and `test` is Pydantic AI's offline TestModel. Only names are
stored here. Credentials come from the provider's own environment variables, or
from the secret an alias names (`--secret openai-creds`, whose keys are those
variables: `OPENAI_API_KEY`, ...), resolved when the model is called and only for
the keys the environment does not set. This module imports no LLM library.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kitaru_core.errors import ConfigError, UnknownModelError
from kitaru_core.home import home_dir

__all__ = ["ENV_DEFAULT", "ENV_PREFIX", "ModelAlias", "default_model", "list", "normalize_model",
           "register", "remove", "resolve"]

ENV_PREFIX = "KITARU_MODEL_"
ENV_DEFAULT = "KITARU_DEFAULT_MODEL"
TEST_MODEL = "test"  # Pydantic AI's TestModel: no provider, no network
_ALIAS = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_PART = re.compile(r"^[^\s:]+$")


@dataclass(frozen=True)
class ModelAlias:
    """A registered alias: its model string, where it comes from ("file" or "env"), default or not."""

    alias: str
    model: str
    source: str
    default: bool = False
    #: The secret whose keys become the provider's credentials at call time (a name only).
    secret: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def register(alias: str, model: str, *, default: bool = False, secret: str | None = None) -> ModelAlias:
    """Store `alias` -> `model` in the kitaru home (replacing an earlier one); `default`
    also makes it the default model; `secret` names the secret holding the provider's
    credentials (checked for its name only: it may be set later, or live elsewhere).
    Returns the stored alias."""
    name = _check_alias(alias)
    if secret is not None:
        from kitaru_core.secrets import check_name

        check_name(secret)
    target = normalize_model(model)
    if target is None:
        raise ConfigError(
            f"model {model!r} for alias {name!r} is not a model string: use Pydantic AI's "
            "`provider:name` form, e.g. openai:gpt-5-mini or anthropic:claude-sonnet-4-5 "
            f"(or {TEST_MODEL!r} for the offline test model)"
        )
    data = _read()
    data["aliases"][name] = {"model": target, "secret": secret} if secret else target
    if default:
        data["default"] = name
    _write(data)
    return ModelAlias(name, target, "file", default=data.get("default") == name, secret=secret)


def remove(alias: str) -> ModelAlias:
    """Forget an alias registered in the kitaru home (and the default, if it was that one)."""
    name = alias.strip().lower()
    data = _read()
    if name not in data["aliases"]:
        if _env_aliases().get(name):
            raise UnknownModelError(
                f"model alias {name!r} comes from the environment variable "
                f"{ENV_PREFIX}{name.upper()}, not from the kitaru home; unset the variable to remove it"
            )
        raise UnknownModelError(f"no model alias {name!r} is registered. {_known_aliases()}")
    target, secret = _entry(data["aliases"].pop(name))
    was_default = data.get("default") == name
    if was_default:
        data.pop("default", None)
    _write(data)
    return ModelAlias(name, target, "file", default=was_default, secret=secret)


def list() -> list[ModelAlias]:  # shadows the builtin in this module on purpose: models.list()
    """Every alias, sorted by name: the file's and the environment's (the environment wins)."""
    data = _read()
    merged = {name: ModelAlias(name, _entry(entry)[0], "file", secret=_entry(entry)[1])
              for name, entry in data["aliases"].items()}
    merged.update({name: ModelAlias(name, model, "env") for name, model in _env_aliases().items()})
    default = _default_alias()
    return [
        ModelAlias(a.alias, a.model, a.source, default=a.alias == default, secret=a.secret)
        for _, a in sorted(merged.items())
    ]


def secret_of(alias: str | None) -> str | None:
    """The secret registered for `alias` in the kitaru home (None: none, or an env alias)."""
    if alias is None or alias in _env_aliases():
        return None
    entry = _read()["aliases"].get(alias)
    return None if entry is None else _entry(entry)[1]


def default_model() -> tuple[str, str] | None:
    """The default model as (what was set, where: "env" or "file"), or None when unset."""
    env = os.environ.get(ENV_DEFAULT, "").strip()
    if env:
        return env, "env"
    name = _read().get("default")
    return (name, "file") if name else None


def resolve(model: Any = None) -> Any:
    """The Pydantic AI model to use for `model`: a model string, or a `Model` object as given.

    `model` is an alias (environment, then file), a model string, a Pydantic AI
    `Model` object, or None for the default model. Raises UnknownModelError
    for an unknown name or when there is no default.
    """
    return resolve_with_alias(model)[0]


def resolve_with_alias(model: Any = None) -> tuple[Any, str | None]:
    """Like `resolve`, also returning the alias the model came through (None if none)."""
    if model is None:
        found = default_model()
        if found is None:
            raise UnknownModelError(
                "no model was given and no default model is set: pass model='provider:name' (or an "
                "alias), register a default with `kitaru model register fast --model "
                f"openai:gpt-5-mini --default`, or set {ENV_DEFAULT}"
            )
        model, source = found
        if source == "file" and model not in _read()["aliases"] and model not in _env_aliases():
            raise UnknownModelError(
                f"the default model alias {model!r} is not registered any more; register it again "
                "or choose another with `kitaru model register ALIAS --model M --default`"
            )
    if not isinstance(model, str):
        return model, None
    name = model.strip()
    aliases = _all_aliases()
    if name.lower() in aliases:
        return aliases[name.lower()], name.lower()
    normalized = normalize_model(name)
    if normalized is not None:
        return normalized, None
    raise UnknownModelError(
        f"unknown model {model!r}: not a registered alias and not a `provider:name` model string "
        f"(e.g. openai:gpt-5-mini). {_known_aliases()} Register it with `kitaru model register "
        f"{_suggest_alias(name)} --model provider:name` or set {ENV_PREFIX}{_suggest_alias(name).upper()}"
    )


def normalize_model(model: str) -> str | None:
    """`provider:name` for a model string (`provider/name` becomes `provider:name`), else None."""
    text = model.strip()
    if text == TEST_MODEL:
        return text
    if ":" not in text and "/" in text:
        provider, _, rest = text.partition("/")
        text = f"{provider}:{rest}"
    provider, sep, name = text.partition(":")
    if not sep or not _PART.match(provider) or not name or name != name.strip() or " " in name:
        return None
    return f"{provider.lower()}:{name}"


def models_path(home: Path | None = None) -> Path:
    return (home or home_dir()) / "models.yaml"


# -- helpers -------------------------------------------------------------------------------


def _check_alias(alias: str) -> str:
    name = alias.strip().lower()
    if not _ALIAS.match(name):
        raise ConfigError(
            f"model alias {alias!r} is not valid: use letters, digits, '_', '-' or '.', starting "
            "with a letter or digit (no ':' or '/', which belong to model strings)"
        )
    if name == TEST_MODEL:
        raise ConfigError(f"{TEST_MODEL!r} names Pydantic AI's test model; choose another alias")
    return name


def _all_aliases() -> dict[str, str]:
    return {**{k: _entry(v)[0] for k, v in _read()["aliases"].items()}, **_env_aliases()}


def _entry(entry: Any) -> tuple[str, str | None]:
    """(model, secret) of an alias as the file keeps it: a model string, or {model, secret}."""
    if isinstance(entry, dict):
        return str(entry.get("model")), (str(entry["secret"]) if entry.get("secret") else None)
    return str(entry), None


def _env_aliases() -> dict[str, str]:
    found = {}
    for key, value in os.environ.items():
        if not key.startswith(ENV_PREFIX) or not value.strip():
            continue
        alias = key[len(ENV_PREFIX):].lower()
        target = normalize_model(value)
        if target is None:
            raise ConfigError(
                f"environment variable {key}={value!r} is not a model string: use Pydantic AI's "
                "`provider:name` form, e.g. openai:gpt-5-mini"
            )
        found[alias] = target
    return found


def _default_alias() -> str | None:
    found = default_model()
    if found is None:
        return None
    name, source = found
    return name.strip().lower() if source == "env" else name


def _known_aliases() -> str:
    aliases = _all_aliases()
    if not aliases:
        return "No model aliases are registered."
    listed = ", ".join(f"{name} ({model})" for name, model in sorted(aliases.items()))
    return f"Registered aliases: {listed}."


def _suggest_alias(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_.-]", "_", name.lower()).strip("_")
    return cleaned if cleaned and _ALIAS.match(cleaned) and cleaned != TEST_MODEL else "fast"


def _read() -> dict[str, Any]:
    import yaml

    from kitaru_core import yamltext

    path = models_path()
    if not path.exists():
        return {"aliases": {}}
    try:
        data = yamltext.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix or delete the file") from exc
    aliases = data.get("aliases") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(aliases if aliases is not None else {}, dict):
        raise ConfigError(f"{path}: expected `aliases: {{name: provider:model}}`; fix or delete the file")
    data["aliases"] = {str(k).lower(): v if isinstance(v, dict) else str(v)
                       for k, v in (aliases or {}).items()}
    return data


def _write(data: dict[str, Any]) -> None:
    import yaml

    from kitaru_core.files import replace_file

    replace_file(models_path(), yaml.safe_dump(data, sort_keys=True))
