"""Service accounts and their API keys, kept as registry documents.

A key is shown once, as `kitaru_<key id>_<secret>`; the registry keeps only the key id and
the SHA-256 of the secret (32 random bytes, so a plain hash is as strong as a slow one),
the key's scope and its optional expiry. Verifying a key is one document read and a
constant-time comparison; nothing is written per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from kitaru_core.errors import DocumentConflictError, InvalidStateError, InvalidValueError, KitaruError
from kitaru_core.interfaces import Registry

from .scopes import Scope, check_scope

ACCOUNT_KIND = "service-account"
KEY_KIND = "api-key"
TOKEN_PREFIX = "kitaru_"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
_TOKEN = re.compile(r"^kitaru_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})$")


class AuthError(KitaruError):
    """A request's credentials are missing, unknown, expired or revoked (HTTP 401)."""


class NotFoundError(KitaruError):
    """No service account or API key by that name or id."""


@dataclass(frozen=True)
class ServiceAccount:
    name: str
    description: str
    active: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    account: str
    scope: Scope
    description: str
    expires_at: float | None
    created_at: float
    rotated_at: float | None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= time.time()


@dataclass(frozen=True)
class Principal:
    """Who made a request: the key's account and scope (`local` in single-user mode)."""

    account: str
    scope: Scope
    key_id: str | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidValueError(
            f"service account name {name!r} is not valid; use 1-64 lowercase letters, digits, "
            "'.', '_' or '-', starting and ending with a letter or digit"
        )
    return name


class KeyStore:
    """Service accounts and API keys in a registry's documents."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # -- service accounts ---------------------------------------------------------------
    def create_account(self, name: str, *, description: str = "") -> ServiceAccount:
        _check_name(name)
        try:
            doc = self.registry.put_document(
                ACCOUNT_KIND, name, {"description": description, "active": True}, expected_version=0
            )
        except DocumentConflictError:
            raise InvalidStateError(
                f"service account {name!r} exists; pick another name or `kitaru auth "
                f"service-accounts update {name}`"
            ) from None
        return self._account(doc)

    def get_account(self, name: str) -> ServiceAccount:
        doc = self.registry.get_document(ACCOUNT_KIND, name)
        if doc is None:
            raise NotFoundError(
                f"no service account {name!r}; `kitaru auth service-accounts list` shows them"
            )
        return self._account(doc)

    def list_accounts(self) -> list[ServiceAccount]:
        return [self._account(d) for d in self.registry.list_documents(ACCOUNT_KIND)]

    def update_account(
        self, name: str, *, description: str | None = None, active: bool | None = None
    ) -> ServiceAccount:
        while True:
            doc = self.registry.get_document(ACCOUNT_KIND, name)
            if doc is None:
                self.get_account(name)  # raises NotFoundError
            assert doc is not None
            body = dict(doc.body)
            if description is not None:
                body["description"] = description
            if active is not None:
                body["active"] = active
            try:
                return self._account(self.registry.put_document(
                    ACCOUNT_KIND, name, body, expected_version=doc.version))
            except DocumentConflictError:
                continue

    def delete_account(self, name: str) -> int:
        """Delete an account and every key of it; returns how many keys went with it."""
        self.get_account(name)
        keys = [k for k in self.list_keys() if k.account == name]
        for key in keys:
            self.registry.delete_document(KEY_KIND, key.key_id)
        self.registry.delete_document(ACCOUNT_KIND, name)
        return len(keys)

    @staticmethod
    def _account(doc: Any) -> ServiceAccount:
        return ServiceAccount(doc.name, doc.body.get("description", ""), bool(doc.body.get("active")),
                              doc.created_at, doc.updated_at)

    # -- API keys -----------------------------------------------------------------------
    def create_key(
        self, account: str, *, scope: str = "read", description: str = "",
        expires_at: float | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key for `account`; returns it with its token (shown once, never stored)."""
        acct = self.get_account(account)
        if not acct.active:
            raise InvalidStateError(
                f"service account {account!r} is deactivated; `kitaru auth service-accounts update "
                f"{account} --active` first"
            )
        scope = check_scope(scope)
        if expires_at is not None and expires_at <= time.time():
            raise InvalidValueError("the key's expiry is in the past; give a later time or none")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        body = {"account": account, "scope": scope, "description": description,
                "expires_at": expires_at, "hash": _digest(secret), "rotated_at": None}
        doc = self.registry.put_document(KEY_KIND, key_id, body, expected_version=0)
        return self._key(doc), f"{TOKEN_PREFIX}{key_id}_{secret}"

    def get_key(self, key_id: str) -> ApiKey:
        doc = self.registry.get_document(KEY_KIND, key_id)
        if doc is None:
            raise NotFoundError(f"no API key {key_id!r}; `kitaru auth api-keys list` shows them")
        return self._key(doc)

    def list_keys(self, account: str | None = None) -> list[ApiKey]:
        keys = [self._key(d) for d in self.registry.list_documents(KEY_KIND)]
        return [k for k in keys if account is None or k.account == account]

    def rotate_key(self, key_id: str) -> tuple[ApiKey, str]:
        """A new secret for the key (same id, scope and expiry); the old token stops working."""
        doc = self.registry.get_document(KEY_KIND, key_id)
        if doc is None:
            self.get_key(key_id)  # raises NotFoundError
        assert doc is not None
        secret = secrets.token_urlsafe(32)
        body = dict(doc.body, hash=_digest(secret), rotated_at=time.time())
        new = self.registry.put_document(KEY_KIND, key_id, body, expected_version=doc.version)
        return self._key(new), f"{TOKEN_PREFIX}{key_id}_{secret}"

    def delete_key(self, key_id: str) -> None:
        if not self.registry.delete_document(KEY_KIND, key_id):
            self.get_key(key_id)  # raises NotFoundError

    def verify(self, token: str) -> Principal:
        """The principal a bearer token stands for; `AuthError` when it stands for none."""
        match = _TOKEN.match(token or "")
        if not match:
            raise AuthError("the API key is malformed; give the whole `kitaru_...` key")
        key_id, secret = match.groups()
        doc = self.registry.get_document(KEY_KIND, key_id)
        if doc is None or not hmac.compare_digest(doc.body.get("hash", ""), _digest(secret)):
            raise AuthError("the API key is unknown or was rotated; create or rotate one")
        key = self._key(doc)
        if key.expired:
            raise AuthError(f"the API key {key_id} has expired; create a new one")
        account = self.registry.get_document(ACCOUNT_KIND, key.account)
        if account is None or not account.body.get("active"):
            raise AuthError(f"the service account of API key {key_id} is deactivated or deleted")
        return Principal(key.account, key.scope, key_id)

    @staticmethod
    def _key(doc: Any) -> ApiKey:
        b = doc.body
        return ApiKey(doc.name, b["account"], b["scope"], b.get("description", ""),
                      b.get("expires_at"), doc.created_at, b.get("rotated_at"))
