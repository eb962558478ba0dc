"""API keys `kitaru login` stored, by server URL: in the OS keyring when it has a usable
backend, else in `<kitaru home>/credentials.json` (mode 0600).

The file always lists the servers logged in to; an entry says where its key is
(`{"store": "keyring"}`, or `{"store": "file", "api_key": ...}`), so a lookup reads one
small file and touches the keyring only for a key that is there.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from kitaru_core.errors import ConfigError

#: The keyring service name keys are stored under (the username is the server URL).
KEYRING_SERVICE = "kitaru"
FILE_NAME = "credentials.json"


def credentials_path(home: Path) -> Path:
    return home / FILE_NAME


def usable_keyring() -> Any:
    """The `keyring` module if it is installed and has a backend that stores secrets, else None.

    `PYTHON_KEYRING_BACKEND=keyring.backends.fail.Keyring` turns it off (keyring's own switch).
    """
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken backend configuration: no keyring
        return None
    if isinstance(backend, fail.Keyring) or float(getattr(backend, "priority", 0) or 0) <= 0:
        return None
    return keyring


def _read(home: Path) -> dict[str, Any]:
    path = credentials_path(home)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable credentials ({exc}); delete it and run "
                          "`kitaru login URL` again") from None
    servers = data.get("servers") if isinstance(data, dict) else None
    return servers if isinstance(servers, dict) else {}


def _write(home: Path, servers: dict[str, Any]) -> Path:
    """Replace the file atomically; it is created 0600 and never exists with wider modes."""
    path = credentials_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".credentials.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"servers": servers}, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def store_key(home: Path, url: str, api_key: str, *, use_keyring: bool = True) -> str:
    """Keep `api_key` for `url`; returns where: "keyring" or the file's path."""
    servers = _read(home)
    keyring = usable_keyring() if use_keyring else None
    if keyring is not None:
        try:
            keyring.set_password(KEYRING_SERVICE, url, api_key)
        except Exception:  # a locked or refusing keyring: the file instead
            keyring = None
    entry: dict[str, Any] = {"stored_at": time.time()}
    entry.update({"store": "keyring"} if keyring is not None else {"store": "file", "api_key": api_key})
    servers[url] = entry
    path = _write(home, servers)
    return "keyring" if keyring is not None else str(path)


def stored_key(home: Path, url: str) -> str | None:
    """The key stored for `url`, or None if `kitaru login` stored none (or the keyring has lost it)."""
    entry = _read(home).get(url)
    if not isinstance(entry, dict):
        return None
    if entry.get("store") == "file":
        key = entry.get("api_key")
        return key if isinstance(key, str) and key else None
    keyring = usable_keyring()
    if keyring is None:
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, url)
    except Exception:
        return None


def forget_key(home: Path, url: str) -> str | None:
    """Remove the key stored for `url`; returns where it was ("keyring", the file), None if none."""
    servers = _read(home)
    entry = servers.pop(url, None)
    if entry is None:
        return None
    where = str(credentials_path(home))
    if isinstance(entry, dict) and entry.get("store") == "keyring":
        where = "keyring"
        keyring = usable_keyring()
        if keyring is not None:
            try:
                keyring.delete_password(KEYRING_SERVICE, url)
            except Exception:  # already gone from the keyring
                pass
    _write(home, servers)
    return where


def logged_in_servers(home: Path) -> list[str]:
    """The URLs `kitaru login` stored a key for."""
    return sorted(_read(home))
