"""`FsspecArtifactStore`: the `ArtifactStore` interface on any fsspec filesystem.

Layout under the store's root URL (`path` in the config), the same as the
`local` folder store's:

    <root>/blobs/<first 2 hex digits>/<sha256>    content-addressed blobs
    <root>/<relative path>                        named files (task specs, results)

Writes are atomic where the backend allows: on an object store (S3, GCS, Azure
Blob) and in `memory://` one upload is atomic, so a reader sees the old object or
the new one, never a part; elsewhere (a local or network file system) a named
file is written under a temporary name and renamed.

`put_blob` is one request for a new blob: an exclusive create (`If-None-Match: *`
on S3 and Azure, `ifGenerationMatch=0` on GCS) that the backend refuses when the
key exists, which is then a no-op. A backend that ignores the precondition
overwrites the key with the same bytes, which is harmless. Blobs of at least
`check_before_put_bytes` are looked up first, so a large value is never uploaded
twice.

Every put leaves the blob's modification time within the last minute, also when
it finds the blob in place (then an older blob is "touched": its metadata is
rewritten, which refreshes its time): `kitaru gc` removes only blobs untouched
for its grace period, so a blob a run just wrote or reused, and has not recorded
yet, is never removed. A key written or confirmed within the last minute is
remembered, and put again without a request. `put_stream` writes a large value
as it comes to `blobs/incoming/<random>` while hashing, then moves it under its
key (a copy on an object store); a leftover of a killed writer there is listed by
`list_blobs` and removed by `kitaru gc` like any unreferenced blob.

A cloud flavor subclasses this and overrides `storage_options()` (credentials,
endpoint, region from its config); the filesystem is built on first use, so
building a store touches no network. Its SDK is imported there, never at import
time of this module, which imports no fsspec either.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from ..errors import ArtifactNotFoundError, ArtifactStoreError, ConfigError, KitaruError
from ..interfaces import ArtifactStore, BlobInfo, ComponentContext, FlavorConfig, is_local_url

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

#: Protocols on which one write is atomic and `pipe_file(mode="create")` is an exclusive create.
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
_KNOWN_KEYS_MAX = 65536
#: A put that finds its blob in place refreshes the blob's time only when it is older than
#: this (seconds); a key confirmed this recently is put again without a request.
REFRESH_AFTER_SECONDS = 60.0
_INCOMING = "incoming"


class FsspecStoreConfig(FlavorConfig):
    """Base config of an fsspec-backed store: the root URL, checked against `schemes`."""

    #: URL schemes `path` may use (empty: any). A subclass narrows it, e.g. `("s3",)`.
    schemes: ClassVar[tuple[str, ...]] = ()

    path: str = Field(description="Root URL of the store, e.g. s3://bucket/prefix")

    @field_validator("path")
    @classmethod
    def _check_scheme(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        if cls.schemes and scheme not in cls.schemes:
            allowed = " or ".join(f"{s}://" for s in cls.schemes)
            raise ValueError(f"must be a {allowed} URL like {cls.schemes[0]}://bucket/prefix")
        if cls.schemes and not value.partition("://")[2]:
            raise ValueError(f"names no bucket or container after {scheme}://")
        if not scheme and not value.startswith(("/", "~")):
            raise ValueError("a relative path depends on the folder kitaru runs from; write an "
                             "absolute path or a URL such as file:///srv/artifacts")
        return value


class GenericFsspecStoreConfig(FsspecStoreConfig):
    """Any fsspec URL with the filesystem's own keyword arguments."""

    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the fsspec filesystem (use ${env:NAME} for secrets)",
    )


class FsspecArtifactStore(ArtifactStore):
    """Content-addressed blobs and named files under a root URL on an fsspec filesystem."""

    #: Blobs at least this large are looked up before uploading, so a value that is already
    #: stored is not sent again; smaller ones go straight to an exclusive create.
    check_before_put_bytes: ClassVar[int] = 8 * 2**20

    config: FsspecStoreConfig

    def __init__(self, config: FsspecStoreConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.root_url = config.path
        self.protocol = config.path.partition("://")[0].lower() if "://" in config.path else "file"
        self._fs: AbstractFileSystem | None = None
        self._root = ""
        self._lock = threading.Lock()
        self._known: dict[str, float] = {}  # key -> its blob's modification time (bounded)

    # -- what a flavor provides ------------------------------------------------
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments of the fsspec filesystem: credentials, endpoint, region."""
        return dict(getattr(self.config, "storage_options", None) or {})

    def make_filesystem(self) -> tuple[AbstractFileSystem, str]:
        """The filesystem and the root path on it (without the protocol)."""
        from fsspec.core import url_to_fs

        try:
            fs, root = url_to_fs(self.root_url, **self.storage_options())
        except (ImportError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"artifact store {self.root_url}: no fsspec filesystem could be built ({exc}); "
                "install the package that provides the protocol and check the config"
            ) from None
        return fs, root.rstrip("/")

    @property
    def process_local(self) -> bool:
        return is_local_url(self.root_url)

    @classmethod
    def reach(cls, config: FlavorConfig) -> str:
        """`memory://` only this process, a path or `file://` this machine, the rest the network."""
        path = str(getattr(config, "path", ""))
        if not is_local_url(path):
            return "network"
        return "process" if path.split("::")[-1].lower().startswith("memory://") else "machine"

    @property
    def fs(self) -> AbstractFileSystem:
        """The filesystem, built on first use."""
        if self._fs is None:
            with self._lock:
                if self._fs is None:
                    self._fs, self._root = self.make_filesystem()
        return self._fs

    @property
    def atomic_put(self) -> bool:
        """True if one write is atomic and `mode="create"` is an exclusive create."""
        return self.protocol in ATOMIC_PUT_PROTOCOLS

    # -- the ArtifactStore interface ------------------------------------------------
    def put_blob(self, data: bytes, key: str) -> None:
        seen = self._known.get(key)
        if seen is not None and seen > time.time() - REFRESH_AFTER_SECONDS:
            return
        path = self._blob_path(key)
        with self._backend_errors(f"write blob {key}"):
            found = None
            if seen is not None or len(data) >= self.check_before_put_bytes:
                found = self._modified_if_size(path, len(data))
            if found is None and self.atomic_put:
                try:
                    self.fs.pipe_file(path, data, mode="create")
                except FileExistsError:
                    found = self._modified_if_size(path, len(data))
                    if found is None:  # an object of another size under the key: not this blob
                        self.fs.pipe_file(path, data)
            elif found is None:
                found = self._modified_if_size(path, len(data))
                if found is None:  # absent, or short from a killed writer
                    self._replace(path, data)
            modified = time.time() if found is None else self._refresh(path, found)
        self._remember(key, modified)

    def put_stream(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        digest, head, size = hashlib.sha256(), bytearray(), 0
        rest = iter(chunks)
        for chunk in rest:
            digest.update(chunk)
            head += chunk
            size += len(chunk)
            if len(head) >= self.check_before_put_bytes:
                break
        else:  # small: the whole value is in memory already
            key = digest.hexdigest()
            self.put_blob(bytes(head), key)
            return key, size
        incoming = self._path(f"blobs/{_INCOMING}/{uuid.uuid4().hex}")
        with self._backend_errors("write a streamed blob"):
            if not self.atomic_put:
                self.fs.makedirs(incoming.rpartition("/")[0], exist_ok=True)
            with self.fs.open(incoming, "wb") as fh:
                fh.write(bytes(head))
                del head
                for chunk in rest:
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            key = digest.hexdigest()
            path = self._blob_path(key)
            found = self._modified_if_size(path, size)
            if found is None:
                if not self.atomic_put:
                    self.fs.makedirs(path.rpartition("/")[0], exist_ok=True)
                self.fs.mv(incoming, path)
                modified = time.time()
            else:
                self.fs.rm_file(incoming)
                modified = self._refresh(path, found)
        self._remember(key, modified)
        return key, size

    def get_blob(self, key: str) -> bytes:
        try:
            with self._backend_errors(f"read blob {key}"):
                return self.fs.cat_file(self._blob_path(key))
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact blob {key} is missing from {self.root_url}; the artifact store was "
                "moved or cleaned"
            ) from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            with self._backend_errors(f"read blob {key}"):
                return self.fs.cat_file(self._blob_path(key), start=start, end=end)
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact blob {key} is missing from {self.root_url}; the artifact store was "
                "moved or cleaned"
            ) from None

    def write_file(self, path: str, data: bytes) -> None:
        with self._backend_errors(f"write {path}"):
            if self.atomic_put:
                self.fs.pipe_file(self._path(path), data)
            else:
                self._replace(self._path(path), data)

    def read_file(self, path: str) -> bytes | None:
        try:
            with self._backend_errors(f"read {path}"):
                return self.fs.cat_file(self._path(path))
        except FileNotFoundError:
            return None

    # -- housekeeping (kitaru gc) ------------------------------------------------------------
    def list_blobs(self) -> Iterator[BlobInfo]:
        blobs = self._path("blobs")
        with self._backend_errors("list blobs"):
            try:
                found = self.fs.find(blobs, detail=True)
            except FileNotFoundError:
                return
        for path, info in sorted(found.items()):
            if info.get("type", "file") != "file":
                continue
            key = path[len(blobs) + 1:]
            folder, _, name = key.partition("/")
            yield BlobInfo(key if folder == _INCOMING else name, int(info.get("size") or 0),
                           _modified(info))

    def delete_blob(self, key: str) -> bool:
        name = key.rpartition("/")[2]
        if not name or name.startswith(".") or key not in (name, f"{_INCOMING}/{name}"):
            raise ValueError(f"not a blob key of this store: {key!r}")
        path = self._path(f"blobs/{key}") if "/" in key else self._blob_path(key)
        self._known.pop(key, None)
        with self._backend_errors(f"delete blob {key}"):
            try:
                self.fs.info(path)  # deleting a missing object is no error on S3
                self.fs.rm_file(path)
            except FileNotFoundError:
                return False
        return True

    def delete_files(self, prefix: str) -> None:
        relative = prefix.strip("/")
        if not relative or relative.split("/")[0] in ("blobs", "..") or ".." in relative.split("/"):
            raise ValueError(f"not a folder of named files in {self.root_url}: {prefix!r}")
        with self._backend_errors(f"delete {relative}"), contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(relative), recursive=True)

    def touch(self, path: str) -> None:
        """Refresh an existing object's modification time without changing its bytes.

        The default asks the filesystem (a local file's mtime); an object store rewrites
        the object's metadata instead (see the cloud flavors).
        """
        try:
            self.fs.touch(path, truncate=False)
        except NotImplementedError:  # e.g. memory://: write the same bytes again
            self.fs.pipe_file(path, self.fs.cat_file(path))

    def url(self, path: str) -> str:
        self.fs  # noqa: B018 - the root path comes with the filesystem
        return f"{self.protocol}://{self._path(path)}"

    def close(self) -> None:
        self._known.clear()

    # -- helpers ------------------------------------------------------------------
    def _path(self, relative: str) -> str:
        self.fs  # noqa: B018
        return f"{self._root}/{relative.lstrip('/')}"

    def _blob_path(self, key: str) -> str:
        return self._path(f"blobs/{key[:2]}/{key}")

    def _modified_if_size(self, path: str, size: int) -> float | None:
        """The modification time of the object at `path` if it holds `size` bytes, else None."""
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        return _modified(info) if info.get("size") == size else None

    def _refresh(self, path: str, modified: float) -> float:
        """Touch a blob found in place if its time is older than a minute; its time after."""
        now = time.time()
        if modified >= now - REFRESH_AFTER_SECONDS:
            return modified
        self.touch(path)
        return now

    def _remember(self, key: str, modified: float) -> None:
        if len(self._known) >= _KNOWN_KEYS_MAX:
            self._known.clear()
        self._known[key] = modified

    def _replace(self, path: str, data: bytes) -> None:
        """Write under a temporary name, then rename: for filesystems without atomic writes."""
        fs = self.fs
        parent = path.rpartition("/")[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            fs.pipe_file(tmp, data)
            fs.mv(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.rm_file(tmp)
            raise

    @contextlib.contextmanager
    def _backend_errors(self, action: str) -> Iterator[None]:
        """Backend failures as `ArtifactStoreError`s naming the store and the fix.

        `FileNotFoundError` passes through on reads (the caller decides what a missing key
        means); on a write it means the bucket or container is missing.
        """
        try:
            yield
        except (KitaruError, FileExistsError):
            raise
        except FileNotFoundError as exc:
            if action.startswith("read"):
                raise
            raise ArtifactStoreError(
                f"artifact store {self.root_url}: could not {action}: {_first_line(exc)}; "
                "check that the bucket or container exists"
            ) from exc
        except PermissionError as exc:
            raise ArtifactStoreError(
                f"artifact store {self.root_url}: access denied to {action}: {_first_line(exc)}; "
                "grant the permissions listed in docs/stores.md"
            ) from exc
        except Exception as exc:
            raise ArtifactStoreError(
                f"artifact store {self.root_url}: could not {action}: "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from exc


def _modified(info: dict[str, Any]) -> float:
    """A listing entry's modification time as unix seconds, whichever way the backend says it."""
    for name in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, dt.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
        if isinstance(value, str):
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()
        return float(value)
    return 0.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
