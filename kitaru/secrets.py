"""Secrets: `KitaruClient().secrets` and `kitaru.get_secret(name)`.

    kitaru secrets set openai-creds --OPENAI_API_KEY=sk-...
    kitaru model register fast --model openai:gpt-5-mini --secret openai-creds

A secret is a name with string keys and values, kept sealed in the stack's registry
(`kitaru_core.secrets`), or read from the environment (`KITARU_SECRET_<NAME>`) or a
secret manager plugin. Only names and key names are ever shown; a value is resolved in
the process that uses it: `kitaru.get_secret`, a model alias's `--secret`, or a
`${secret:NAME.KEY}` in a stack's config. See docs/secrets.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import ConfigError, SecretNotFoundError
from kitaru_core.secrets import SecretInfo, SecretStore, backends, env_variable, resolve

if TYPE_CHECKING:
    from .client import KitaruClient

__all__ = ["Secret", "SecretsAPI", "get_secret", "secret_environment"]


@dataclass
class Secret:
    """A secret's name and key names (never its values), and where it is kept."""

    name: str
    keys: list[str]
    #: "registry", or the secret backend it comes from ("env", ...).
    source: str
    id: str | None = None
    version: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: The id of the key its values are sealed with (registry secrets).
    key_id: str | None = None

    @classmethod
    def of(cls, info: SecretInfo) -> Secret:
        from .client import _dt

        return cls(name=info.name, keys=list(info.keys), source=info.source, id=info.id,
                   version=info.version, created_at=_dt(info.created_at),
                   updated_at=_dt(info.updated_at), key_id=info.key_id)

    def to_dict(self) -> dict[str, Any]:
        from .client import _jsonable

        return _jsonable(self)


class SecretsAPI:
    """`KitaruClient().secrets`: set, list, show and delete; values are never returned."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    @property
    def _store(self) -> SecretStore:
        return SecretStore(self._client._stack.registry)

    def set(self, name: str, values: Mapping[str, str] | None = None, *, replace: bool = False,
            **keys: str) -> Secret:
        """Create secret `name` or change the keys given (`replace`: keep only these keys)."""
        merged = {**(values or {}), **keys}
        return Secret.of(self._store.set(name, merged, replace=replace))

    def get(self, name: str) -> Secret:
        """A secret's name and keys: from the registry, else from the first backend that has it."""
        store = self._store
        try:
            return Secret.of(store.get(name))
        except SecretNotFoundError:
            for backend in backends():
                found = backend.get(name)
                if found is not None:
                    return Secret(name=name, keys=sorted(found), source=backend.name)
            raise

    def list(self, *, backends_too: bool = True) -> list[Secret]:
        """Every secret of the registry, then those secret backends can list (the environment's)."""
        found = [Secret.of(i) for i in self._store.list()]
        if backends_too:
            for backend in backends():
                found += [Secret.of(i) for i in backend.list()]
        return found

    def delete(self, name: str) -> Secret:
        """Remove a secret from the registry (one from the environment is unset there)."""
        store = self._store
        try:
            return Secret.of(store.delete(name))
        except SecretNotFoundError:
            variable = env_variable(name)
            if variable in os.environ:
                raise ConfigError(
                    f"secret {name!r} comes from the environment variable {variable}, not from the "
                    "registry; unset the variable to remove it"
                ) from None
            raise

    def reencrypt(self) -> list[Secret]:
        """Seal every registry secret again with the first key (see docs/secrets.md, rotation)."""
        return [Secret.of(i) for i in self._store.reencrypt()]


def get_secret(name: str) -> dict[str, str]:
    """The keys and values of secret `name`, resolved in this process.

    Looked up in the environment (`KITARU_SECRET_<NAME>`), then in secret backend plugins,
    then in the registry: the running execution's inside a flow or an inline checkpoint,
    the active stack's outside any flow. An isolated checkpoint's worker has no registry:
    there the secret must come from its environment or a backend.
    """
    return resolve(name, registry=registry_here())


def registry_here() -> Any:
    """The registry a value is resolved from in this process, or None (a worker)."""
    from kitaru_core.runtime.state import current_call, current_execution

    ctx = current_execution.get()
    if ctx is not None:
        return ctx.registry
    if current_call.get() is not None:  # an isolated checkpoint's worker: no registry
        return None
    from .client import KitaruClient

    return KitaruClient()._stack.registry


_ENVIRON = threading.Lock()


@contextmanager
def secret_environment(name: str) -> Iterator[None]:
    """While the block runs: secret `name`'s keys as environment variables, for those the
    environment does not set (the environment wins), removed again after it.

    For a provider SDK that reads its credentials from the environment when its client is
    built (Pydantic AI's providers do): the block builds the client and nothing else, so
    the values stay in the environment for no longer than that, under a lock.
    """
    values = get_secret(name)
    with _ENVIRON:
        added = {k: v for k, v in values.items() if k not in os.environ}
        os.environ.update(added)
        try:
            yield
        finally:
            for key in added:
                os.environ.pop(key, None)
