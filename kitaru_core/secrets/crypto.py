"""The secrets key: where it comes from, and sealing and opening secret values with it.

Values are sealed with AES-256-GCM (`cryptography`), bound to the secret's name (the
name is the associated data: a ciphertext copied onto another secret does not open).
The key is never stored in the registry. It comes from:

- `KITARU_SECRETS_KEY`: one or more keys, comma-separated, each 32 random bytes in
  URL-safe base64 (`kitaru secrets generate-key` makes one). The first seals new
  values; the others only open values sealed with them (a rotation in progress).
  A team sharing one registry shares this key (from its own secret manager).
- otherwise the key file `<kitaru home>/secrets.key` (mode 0600; the same format, one
  key a line), created with a new key the first time a secret is written.

Each sealed value names its key by a key id (a hash of the key, which says nothing
about the key itself), so opening it with the wrong key is a clear error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets as _random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SecretKeyError
from ..files import replace_file
from ..home import home_dir

KEY_ENV = "KITARU_SECRETS_KEY"
KEY_FILE = "secrets.key"
ALGORITHM = "A256GCM"
_KEY_BYTES = 32
_NONCE_BYTES = 12


def generate_key() -> str:
    """A new random key in the form `KITARU_SECRETS_KEY` and the key file take."""
    return base64.urlsafe_b64encode(_random.token_bytes(_KEY_BYTES)).decode()


def key_id(key: bytes) -> str:
    """A short, stable name of a key that reveals nothing about it."""
    return hashlib.sha256(b"kitaru-secrets-key\0" + key).hexdigest()[:16]


def key_path(home: Path | None = None) -> Path:
    return (home or home_dir()) / KEY_FILE


@dataclass(frozen=True)
class Keyring:
    """The keys this process has: `keys[0]` seals, every one opens what it sealed."""

    keys: tuple[bytes, ...]
    source: str  # "KITARU_SECRETS_KEY" or the key file's path

    @property
    def ids(self) -> list[str]:
        return [key_id(k) for k in self.keys]

    def seal(self, name: str, values: dict[str, str]) -> dict[str, Any]:
        """`values` encrypted for secret `name`: the fields a secret document keeps."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self.keys[0]
        nonce = _random.token_bytes(_NONCE_BYTES)
        plain = json.dumps(values, sort_keys=True).encode()
        sealed = AESGCM(key).encrypt(nonce, plain, _aad(name))
        return {"alg": ALGORITHM, "kid": key_id(key), "nonce": _b64(nonce), "ciphertext": _b64(sealed)}

    def open(self, name: str, body: dict[str, Any]) -> dict[str, str]:
        """The values sealed in a secret document's `body`."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        kid = body.get("kid")
        if body.get("alg") != ALGORITHM:
            raise SecretKeyError(
                f"secret {name!r} is sealed with {body.get('alg')!r}, which this kitaru does not "
                f"know ({ALGORITHM} only); upgrade kitaru"
            )
        key = next((k for k in self.keys if key_id(k) == kid), None)
        if key is None:
            raise SecretKeyError(
                f"secret {name!r} was sealed with key {kid}, which this process does not have "
                f"(its keys, from {self.source}: {', '.join(self.ids)}); set {KEY_ENV} to the "
                "key the secrets were written with (a team shares one key)"
            )
        try:
            plain = AESGCM(key).decrypt(_unb64(body["nonce"]), _unb64(body["ciphertext"]), _aad(name))
        except (InvalidTag, KeyError, ValueError, binascii.Error):
            raise SecretKeyError(
                f"secret {name!r} does not open with key {kid}: its stored value was altered or "
                "copied from another secret; set it again with `kitaru secrets set`"
            ) from None
        values = json.loads(plain)
        return {str(k): str(v) for k, v in values.items()}


def keyring(home: Path | None = None, *, create: bool = False) -> Keyring:
    """This process's keys: `KITARU_SECRETS_KEY`, else the key file (made when `create`)."""
    env = os.environ.get(KEY_ENV, "").strip()
    if env:
        return Keyring(_parse(env.split(","), KEY_ENV), KEY_ENV)
    path = key_path(home)
    if not path.exists():
        if not create:
            raise SecretKeyError(
                f"no secrets key: set {KEY_ENV} (the key the secrets were written with), or "
                f"write a secret first (`kitaru secrets set`) to create {path}"
            )
        write_key_file([generate_key()], path)
    return Keyring(_parse(path.read_text().splitlines(), str(path)), str(path))


def write_key_file(keys: list[str], path: Path | None = None) -> Path:
    """Write the key file (0600, replaced atomically): `keys[0]` seals, the rest only open."""
    path = path or key_path()
    replace_file(path, "\n".join(keys) + "\n", mode=0o600)
    return path


def _parse(lines: list[str], source: str) -> tuple[bytes, ...]:
    keys = []
    for i, line in enumerate(x.strip() for x in lines):
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.urlsafe_b64decode(line + "=" * (-len(line) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != _KEY_BYTES:
            raise ConfigError(
                f"{source}: key {i + 1} is not {_KEY_BYTES} bytes in URL-safe base64; make one "
                "with `kitaru secrets generate-key`"
            )
        keys.append(key)
    if not keys:
        raise ConfigError(f"{source} holds no key; make one with `kitaru secrets generate-key`")
    return tuple(keys)


def _aad(name: str) -> bytes:
    return b"kitaru-secret\0" + name.encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
