"""The `local` artifact store: content-addressed files in a folder.

Blobs live at `<root>/blobs/<2 hex>/<sha256>`. `put_blob` returns only once
the whole blob is in place, and the registry records a key only after that,
so a recorded key never names a partial blob:

- default mode (survives a kill of the process): the blob is created under its
  key with O_EXCL and written. A writer killed mid-write can leave a short
  file there, which no record names; the next `put_blob` of that content sees
  the wrong size and replaces the file atomically. This costs one file
  creation per new blob, instead of a temporary file plus a rename.
- strict mode (survives a power loss): the same, and the file and then its
  folder are fsynced before `put_blob` returns. A file found under the key
  (say, left by a power loss mid-write) is trusted only if it holds exactly
  the bytes being put, and is then fsynced too (its writer may not have done
  so yet); otherwise it is replaced atomically (temporary file, fsync, rename,
  folder fsync). Creating under the key saves a journal commit per blob over
  writing a temporary file and renaming it.

Keys this store wrote or found in this process are remembered, so an output
passed on as another call's input costs no file-system call.
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
        self._known: set[str] = set()  # keys whose complete blob exists (bounded, see put_blob)
        self._strict = context.strict
        self._tmp_suffix = f".tmp{os.getpid()}"

    def _blob_path(self, key: str) -> tuple[str, str]:
        folder = f"{self._blobs}/{key[:2]}"
        return folder, f"{folder}/{key}"

    def put_blob(self, data: bytes, key: str) -> None:
        if key in self._known:
            return
        folder, path = self._blob_path(key)
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        if self._strict:
            if self._create(path, data, sync=True) or _holds(path, data, sync=True):
                _fsync_folder(folder)
            else:
                self._atomic_write(path, data, folder)
        elif not self._create(path, data) and not _has_size(path, len(data)):
            self._atomic_write(path, data, folder)  # a short file left by a killed writer
        if len(self._known) >= _KNOWN_KEYS_MAX:
            self._known.clear()
        self._known.add(key)

    @staticmethod
    def _create(path: str, data: bytes, sync: bool = False) -> bool:
        """Create `path` holding `data` (fsynced if `sync`); False if it exists already."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            if os.write(fd, data) != len(data):  # short write: large data or a signal
                os.lseek(fd, 0, os.SEEK_SET)
                _write_all(fd, data)
            if sync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return True

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
            _fsync_folder(folder)


_KNOWN_KEYS_MAX = 65536


def _fsync_folder(folder: str) -> None:
    """Make the folder's entries (a new or renamed file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _holds(path: str, data: bytes, sync: bool = False) -> bool:
    """True if the file at `path` holds exactly `data`; then fsynced if `sync` (another
    process may have written it a moment ago and not fsynced it yet)."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size != len(data) or fh.read() != data:
                return False
            if sync:
                os.fsync(fh.fileno())
            return True
    except FileNotFoundError:
        return False


def _has_size(path: str, size: int) -> bool:
    try:
        return os.stat(path).st_size == size
    except FileNotFoundError:
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
