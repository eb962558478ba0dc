"""Secrets: sealed in the registry, or read from the environment or a secret manager plugin.

The contract for plugins is `SecretBackend` (return instances from the
`kitaru_secret_backends` hook); `resolve` is what a process calls where it uses a value.
"""

from __future__ import annotations

from .backends import (
    ENV_PREFIX,
    EnvSecretBackend,
    SecretBackend,
    backends,
    env_variable,
    resolve,
    resolve_key,
)
from .crypto import KEY_ENV, Keyring, generate_key, key_id, keyring
from .store import KIND, SecretInfo, SecretStore, check_key, check_name

__all__ = [
    "ENV_PREFIX", "KEY_ENV", "KIND", "EnvSecretBackend", "Keyring", "SecretBackend", "SecretInfo",
    "SecretStore", "backends", "check_key", "check_name", "env_variable", "generate_key", "key_id",
    "keyring", "resolve", "resolve_key",
]
