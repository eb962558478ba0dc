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
twice. Keys written or found in this process are remembered.

A cloud flavor subclasses this and overrides `storage_options()` (credentials,
endpoint, region from its config); the filesystem is built on first use, so
building a store touches no network. Its SDK is imported there, never at import
time of this module, which imports no fsspec either.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from ..errors import ArtifactNotFoundError, ArtifactStoreError, ConfigError, KitaruError
from ..interfaces import ArtifactStore, ComponentContext, FlavorConfig, is_local_url

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

#: Protocols on which one write is atomic and `pipe_file(mode="create")` is an exclusive create.
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
_KNOWN_KEYS_MAX = 65536


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
        self._known: set[str] = set()  # keys whose blob exists (bounded)

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
        if key in self._known:
            return
        path = self._blob_path(key)
        with self._backend_errors(f"write blob {key}"):
            if len(data) >= self.check_before_put_bytes and self._has_size(path, len(data)):
                pass
            elif self.atomic_put:
                with contextlib.suppress(FileExistsError):
                    self.fs.pipe_file(path, data, mode="create")
            elif not self._has_size(path, len(data)):  # absent, or short from a killed writer
                self._replace(path, data)
        if len(self._known) >= _KNOWN_KEYS_MAX:
            self._known.clear()
        self._known.add(key)

    def get_blob(self, key: str) -> bytes:
        try:
            with self._backend_errors(f"read blob {key}"):
                return self.fs.cat_file(self._blob_path(key))
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

    def _has_size(self, path: str, size: int) -> bool:
        try:
            return self.fs.size(path) == size
        except FileNotFoundError:
            return False

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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
