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

Keys this store wrote or found in this process are remembered, so putting the
same value again costs one `utime` (no open, no write).

`put_stream` (large values, written as they are serialized) writes to
`<root>/blobs/incoming/` while hashing and renames the finished file to its
key, so a streamed blob is never partial under its key.

Every put leaves the blob's modification time within the last minute, also
when it finds the blob in place (it refreshes an older one): `kitaru gc` removes
only blobs untouched for its grace period, so a blob a run just wrote or reused,
and has not recorded yet, is never removed.
Leftovers of killed writers (temporary files, partial blobs) are listed by
`list_blobs` and removed by `kitaru gc` like any unreferenced blob.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from kitaru_core.errors import ArtifactNotFoundError, StorageError
from kitaru_core.interfaces import ArtifactStore, BlobInfo, ComponentContext, FlavorConfig

from .configs import LocalArtifactStoreConfig

_INCOMING = "incoming"


class LocalArtifactStore(ArtifactStore):
    """Artifacts in a local folder (default `<kitaru home>/artifacts`)."""

    @classmethod
    def reach(cls, config: FlavorConfig) -> str:
        """A folder on this machine: its other processes can use it, nothing elsewhere."""
        return "machine"

    def __init__(self, config: LocalArtifactStoreConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.root = Path(config.root).expanduser() if config.root else context.home / "artifacts"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # A read-only home can still be read: complain on the first write instead.
            if not self.root.is_dir():
                raise _storage_error(exc, self.root) from exc
        self._blobs = str(self.root / "blobs")
        self._dirs: set[str] = set()
        self._known: set[str] = set()  # keys whose complete blob exists (bounded, see put_blob)
        self._strict = context.strict

    def _blob_path(self, key: str) -> tuple[str, str]:
        folder = f"{self._blobs}/{key[:2]}"
        return folder, f"{folder}/{key}"

    def put_blob(self, data: bytes, key: str) -> None:
        folder, path = self._blob_path(key)
        if key in self._known:
            if _touch(path):
                return
            self._known.discard(key)  # removed meanwhile (kitaru gc): write it again
        try:
            if folder not in self._dirs:
                os.makedirs(folder, exist_ok=True)
                self._dirs.add(folder)
            if self._strict:
                if self._create(path, data, sync=True):
                    _fsync_folder(folder)
                elif _holds(path, data, sync=True):
                    _touch(path)
                    _fsync_folder(folder)
                else:
                    self._atomic_write(path, data, folder)
            elif not self._create(path, data):
                if _has_size(path, len(data)):
                    _touch(path)
                else:
                    self._atomic_write(path, data, folder)  # a short file left by a killed writer
        except OSError as exc:
            raise _storage_error(exc, self.root) from exc
        if len(self._known) >= _KNOWN_KEYS_MAX:
            self._known.clear()
        self._known.add(key)

    def put_stream(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        incoming = f"{self._blobs}/{_INCOMING}"
        tmp = f"{incoming}/{os.getpid()}-{os.urandom(8).hex()}"
        digest = hashlib.sha256()
        size = 0
        try:
            os.makedirs(incoming, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    _write_all(fd, chunk)
                if self._strict:
                    os.fsync(fd)
            finally:
                os.close(fd)
            key = digest.hexdigest()
            folder, path = self._blob_path(key)
            if folder not in self._dirs:
                os.makedirs(folder, exist_ok=True)
                self._dirs.add(folder)
            if not self._strict and _has_size(path, size):
                os.unlink(tmp)
                _touch(path)
            else:
                os.replace(tmp, path)
                if self._strict:
                    _fsync_folder(folder)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise _storage_error(exc, self.root) from exc
            raise
        self._known.add(key)
        return key, size

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
            mine = os.fstat(fd).st_ino
            os.close(fd)
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == mine:  # not a complete copy another put renamed in
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

    def get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            with open(self._blob_path(key)[1], "rb") as fh:
                fh.seek(start)
                return fh.read(max(0, end - start))
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact blob {key} is missing from {self.root}; the artifact store was "
                "moved or cleaned"
            ) from None

    def write_file(self, path: str, data: bytes) -> None:
        target = self.root / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._atomic_write(str(target), data, str(target.parent))
        except OSError as exc:
            raise _storage_error(exc, self.root) from exc

    def read_file(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None

    def url(self, path: str) -> str:
        return str((self.root / path).resolve())

    # -- housekeeping -------------------------------------------------------------------
    def list_blobs(self) -> Iterator[BlobInfo]:
        try:
            folders = sorted(os.scandir(self._blobs), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for folder in folders:
            if not folder.is_dir(follow_symlinks=False):
                continue
            prefix = f"{_INCOMING}/" if folder.name == _INCOMING else ""
            for entry in os.scandir(folder.path):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed meanwhile
                yield BlobInfo(prefix + entry.name, st.st_size, st.st_mtime)

    def delete_blob(self, key: str) -> bool:
        name = key.rpartition("/")[2]
        if not name or name.startswith(".") or key not in (name, f"{_INCOMING}/{name}"):
            raise ValueError(f"not a blob key of this store: {key!r}")
        path = f"{self._blobs}/{key}" if "/" in key else self._blob_path(key)[1]
        self._known.discard(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def delete_files(self, prefix: str) -> None:
        target = (self.root / prefix).resolve()
        root = self.root.resolve()
        if target == root or root not in target.parents or target.is_relative_to(root / "blobs"):
            raise ValueError(f"not a folder of named files in {root}: {prefix!r}")
        shutil.rmtree(target, ignore_errors=True)

    def _atomic_write(self, path: str, data: bytes, folder: str) -> None:
        # Unique per call, as in put_stream: two threads (or a forked child) putting one value
        # may both replace a short blob.
        tmp = f"{path}.tmp{os.getpid()}-{os.urandom(8).hex()}"
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


#: A put that finds its blob in place refreshes the blob's time only when it is older than
#: this (seconds), so a hot blob costs one `stat`, not a write of its inode, per put.
REFRESH_AFTER_SECONDS = 60.0


def _touch(path: str) -> bool:
    """Refresh a blob's modification time if it is stale (see the module doc); False if gone."""
    try:
        if os.stat(path).st_mtime < time.time() - REFRESH_AFTER_SECONDS:
            os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _storage_error(exc: OSError, root: Path) -> OSError | StorageError:
    """A read-only or full disk as a one-line error; other OS errors unchanged."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(
            f"the artifact store at {root} is read-only ({exc.strerror}): kitaru can read it but "
            "not store anything; make the kitaru home writable, or set KITARU_HOME to a "
            "writable folder"
        )
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(
            f"the disk holding the artifact store at {root} is full; free space (for example "
            "`kitaru executions delete --older-than 30d`, then `kitaru gc --yes`) and try again"
        )
    return exc


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
