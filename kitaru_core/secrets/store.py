"""Secrets kept in the registry: documents of kind "secret", their values sealed.

A document's body holds the secret's key names in the clear (so listing needs no key)
and its values sealed together (`crypto.Keyring.seal`); never a value in the clear.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DocumentConflictError, SecretNotFoundError
from ..ids import quoted
from .crypto import keyring

KIND = "secret"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Writes retried when another writer changed the same secret in between.
_ATTEMPTS = 5


@dataclass
class SecretInfo:
    """What may be shown of a secret: its name and key names, never a value."""

    name: str
    keys: list[str]
    id: str | None = None
    #: Where it is kept: "registry", or the secret backend's name ("env", ...).
    source: str = "registry"
    version: int | None = None
    created_at: float | None = None
    updated_at: float | None = None
    #: The id of the key its values are sealed with (registry secrets).
    key_id: str | None = None


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(
            f"secret name {quoted(str(name))} is not valid: letters, digits, '_' and '-', starting "
            "with a letter or digit, at most 128 characters (e.g. openai-creds)"
        )
    return name


def check_key(name: str, key: str) -> str:
    if not isinstance(key, str) or not KEY.match(key):
        raise ConfigError(
            f"key {quoted(str(key))} of secret {name!r} is not valid: letters, digits and '_', not "
            "starting with a digit, like an environment variable (e.g. OPENAI_API_KEY)"
        )
    return key


class SecretStore:
    """Set, read, list and delete the secrets of one registry."""

    def __init__(self, registry: Any, home: Path | None = None) -> None:
        self.registry = registry
        self.home = home

    def set(self, name: str, values: dict[str, str], *, replace: bool = False) -> SecretInfo:
        """Add or change keys of secret `name` (created if missing); `replace`: only these keys."""
        check_name(name)
        if not values:
            raise ConfigError(f"secret {name!r}: give at least one key, e.g. --API_KEY=value")
        for key, value in values.items():
            check_key(name, key)
            if not isinstance(value, str):
                raise ConfigError(f"secret {name!r}: the value of {key} is not a string")
        ring = keyring(self.home, create=True)
        for _ in range(_ATTEMPTS):
            doc = self.registry.get_document(KIND, name)
            merged = dict(values)
            if doc is not None and not replace:
                merged = {**ring.open(name, doc.body), **values}
            body = {
                "id": doc.body.get("id") if doc is not None else uuid.uuid4().hex,
                "keys": sorted(merged),
                **ring.seal(name, merged),
            }
            try:
                saved = self.registry.put_document(
                    KIND, name, body, expected_version=doc.version if doc is not None else 0
                )
            except DocumentConflictError:
                continue  # another writer changed it in between: merge with theirs
            return info(saved)
        raise DocumentConflictError(f"secret {name!r} kept changing while it was written; try again")

    def get(self, name: str) -> SecretInfo:
        return info(self._doc(name))

    def values(self, name: str) -> dict[str, str] | None:
        """The secret's keys and values (None if there is no such secret)."""
        doc = self.registry.get_document(KIND, name)
        if doc is None:
            return None
        return keyring(self.home).open(name, doc.body)

    def list(self) -> list[SecretInfo]:
        return [info(d) for d in self.registry.list_documents(KIND)]

    def delete(self, name: str) -> SecretInfo:
        doc = self._doc(name)
        self.registry.delete_document(KIND, name)
        return info(doc)

    def reencrypt(self) -> list[SecretInfo]:
        """Seal every secret again with the first key (after a new key was put first)."""
        ring = keyring(self.home, create=True)
        done = []
        for doc in self.registry.list_documents(KIND):
            if doc.body.get("kid") == ring.ids[0]:
                done.append(info(doc))
                continue
            values = ring.open(doc.name, doc.body)
            body = {**doc.body, **ring.seal(doc.name, values)}
            done.append(info(self.registry.put_document(KIND, doc.name, body,
                                                        expected_version=doc.version)))
        return done

    def _doc(self, name: str) -> Any:
        doc = self.registry.get_document(KIND, check_name(name))
        if doc is None:
            known = [d.name for d in self.registry.list_documents(KIND)]
            listed = ", ".join(known[:20]) if known else "none"
            raise SecretNotFoundError(
                f"no secret {name!r} in the registry (secrets: {listed}); set it with "
                f"`kitaru secrets set {name} --KEY=value`"
            )
        return doc


def info(doc: Any) -> SecretInfo:
    body = doc.body
    return SecretInfo(
        name=doc.name, keys=list(body.get("keys") or []), id=body.get("id"), source="registry",
        version=doc.version, created_at=doc.created_at, updated_at=doc.updated_at,
        key_id=body.get("kid"),
    )
