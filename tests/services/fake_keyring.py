"""A keyring backend for tests (`PYTHON_KEYRING_BACKEND=services.fake_keyring.FileKeyring`):
a usable keyring whose passwords go to the JSON file `FAKE_KEYRING_FILE` names."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def _path(self) -> Path:
        return Path(os.environ["FAKE_KEYRING_FILE"])

    def _all(self) -> dict[str, str]:
        path = self._path()
        return json.loads(path.read_text()) if path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._all().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        found = self._all()
        found[f"{service}/{username}"] = password
        self._path().write_text(json.dumps(found))

    def delete_password(self, service: str, username: str) -> None:
        found = self._all()
        found.pop(f"{service}/{username}", None)
        self._path().write_text(json.dumps(found))
