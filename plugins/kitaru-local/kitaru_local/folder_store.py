"""The `local` artifact store: content-addressed files in a folder.

Blobs live at `<root>/blobs/<2 hex>/<sha256>`, written to a temporary name and
renamed, so a killed writer never leaves a partial blob under a real key. In
strict mode each new file and its folder entry are fsynced before the
registry records them.
"""

from __future__ import annotations

import os
from pathlib import Path

from kitaru_core.errors import ArtifactNotFoundError
from kitaru_core.interfaces import ArtifactStore, ComponentContext

from .configs import LocalArtifactStoreConfig


class LocalArtifactStore(ArtifactStore):
    """Artifacts in a local folder (default `<kitaru home>/artifacts`)."""

    def __init__(self, config: LocalArtifactStoreConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.root = Path(config.root).expanduser() if config.root else context.home / "artifacts"
        self.root.mkdir(parents=True, exist_ok=True)
        self._blobs = str(self.root / "blobs")
        self._dirs: set[str] = set()
        self._strict = context.strict
        self._tmp_suffix = f".tmp{os.getpid()}"

    def _blob_path(self, key: str) -> tuple[str, str]:
        folder = f"{self._blobs}/{key[:2]}"
        return folder, f"{folder}/{key}"

    def put_blob(self, data: bytes, key: str) -> None:
        folder, path = self._blob_path(key)
        if os.path.exists(path):
            return
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        self._atomic_write(path, data, folder)

    def get_blob(self, key: str) -> bytes:
        try:
            with open(self._blob_path(key)[1], "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact blob {key} is missing from {self.root}; the artifact store was "
                "moved or cleaned"
            ) from None

    def write_file(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(str(target), data, str(target.parent))

    def read_file(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None

    def url(self, path: str) -> str:
        return str((self.root / path).resolve())

    def _atomic_write(self, path: str, data: bytes, folder: str) -> None:
        tmp = path + self._tmp_suffix + str(id(data))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if os.write(fd, data) != len(data):  # short write: large data or a signal
                os.lseek(fd, 0, os.SEEK_SET)
                _write_all(fd, data)
            if self._strict:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if self._strict:
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
