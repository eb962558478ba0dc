"""Secret backends, and resolving a secret where it is used.

A secret backend is a read-only source of secrets besides the registry: the process's
environment (`EnvSecretBackend`, registered by kitaru-local) or a cloud secret manager
a plugin brings. A plugin returns its backends from the `kitaru_secret_backends` hook:

    class VaultSecrets(SecretBackend):
        name = "vault"

        def get(self, name: str) -> dict[str, str] | None:
            ...  # the secret's keys and values, or None if the vault has no such secret

    @hookimpl
    def kitaru_secret_backends() -> list[SecretBackend]:
        return [VaultSecrets()]

`resolve` asks the backends in `order` (the environment first), then the registry the
caller passes (the stack's). Values are resolved in the process that uses them and
are never written anywhere by kitaru.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError, SecretNotFoundError

if TYPE_CHECKING:
    from ..plugins.manager import PluginManager
    from .store import SecretInfo

ENV_PREFIX = "KITARU_SECRET_"


class SecretBackend:
    """A read-only source of secrets; subclass it and return instances from the hook."""

    #: Shown in `kitaru secrets list` as the secret's source.
    name: ClassVar[str] = "backend"
    #: Backends are asked in ascending order; the environment is 0. Ties: by name.
    order: ClassVar[int] = 100

    def get(self, name: str) -> dict[str, str] | None:
        """The keys and values of secret `name`, or None when this backend has no such secret."""
        raise NotImplementedError

    def list(self) -> list[SecretInfo]:
        """The secrets this backend can name (names and key names only); [] if it cannot list."""
        return []


def env_variable(name: str) -> str:
    """The environment variable that holds secret `name`: `KITARU_SECRET_<NAME>`, upper-cased,
    `-` as `_`."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


class EnvSecretBackend(SecretBackend):
    """Secrets from the environment: `KITARU_SECRET_OPENAI_CREDS='{"OPENAI_API_KEY": "sk-..."}'`
    is secret `openai-creds` (a JSON object of string keys and values), e.g. from a
    Kubernetes Secret in a pod's environment."""

    name = "env"
    order = 0

    def get(self, name: str) -> dict[str, str] | None:
        variable = env_variable(name)
        raw = os.environ.get(variable)
        return None if raw is None else _parse(variable, raw)

    def list(self) -> list[SecretInfo]:
        from .store import SecretInfo

        out = []
        for variable, raw in sorted(os.environ.items()):
            if variable.startswith(ENV_PREFIX) and len(variable) > len(ENV_PREFIX):
                name = variable[len(ENV_PREFIX):].lower().replace("_", "-")
                out.append(SecretInfo(name=name, keys=sorted(_parse(variable, raw)), source=self.name))
        return out


def _parse(variable: str, raw: str) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(
            f"environment variable {variable} is not a JSON object of strings, e.g. "
            '{"API_KEY": "..."}; fix it or unset it'
        )
    return {str(k): v for k, v in data.items()}


def backends(manager: PluginManager | None = None) -> list[SecretBackend]:
    """Every installed secret backend, in the order they are asked."""
    from ..plugins.manager import default_manager

    return (manager or default_manager()).secret_backends()


def resolve(name: str, *, registry: Any = None, manager: PluginManager | None = None,
            where: str = "") -> dict[str, str]:
    """The keys and values of secret `name`: from the first backend that has it, else from
    `registry` (None: a process without a registry, such as an isolated checkpoint's worker)."""
    for backend in backends(manager):
        found = backend.get(name)
        if found is not None:
            return found
    if registry is not None:
        from .store import SecretStore

        found = SecretStore(registry).values(name)
        if found is not None:
            return found
    sources = [f"the environment ({env_variable(name)})"] + [
        f"backend {b.name!r}" for b in backends(manager) if not isinstance(b, EnvSecretBackend)]
    if registry is not None:
        sources.append("the registry")
    else:
        sources.append("no registry (this process has none: pass the secret in its environment)")
    raise SecretNotFoundError(
        f"{where + ': ' if where else ''}no secret {name!r} in {', '.join(sources)}; set it with "
        f"`kitaru secrets set {name} --KEY=value`"
    )


def resolve_key(name: str, key: str, *, registry: Any = None, manager: PluginManager | None = None,
                where: str = "") -> str:
    """One key of a secret (`${secret:NAME.KEY}`)."""
    values = resolve(name, registry=registry, manager=manager, where=where)
    if key not in values:
        raise SecretNotFoundError(
            f"{where + ': ' if where else ''}secret {name!r} has no key {key!r} (its keys: "
            f"{', '.join(sorted(values)) or 'none'})"
        )
    return values[key]
