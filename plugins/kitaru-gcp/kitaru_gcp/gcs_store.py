"""The `gcs` artifact store: `FsspecArtifactStore` on gcsfs.

One upload is atomic on GCS, and a new blob is one conditional upload
(`ifGenerationMatch=0`). gcsfs is imported when the store is first used.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kitaru_core.stores import FsspecArtifactStore

from .configs import GcsStoreConfig

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


class GcsArtifactStore(FsspecArtifactStore):
    """Artifacts under `gs://bucket/prefix`."""

    config: GcsStoreConfig

    def storage_options(self) -> dict[str, Any]:
        config = self.config
        # no listing cache: the store never lists, and a stale listing must not hide a new key
        options: dict[str, Any] = {"use_listings_cache": False}
        for name in ("project", "endpoint_url", "token"):
            value = getattr(config, name)
            if value:
                options[name] = value
        return options

    def make_filesystem(self) -> tuple[AbstractFileSystem, str]:
        if not self.config.endpoint_url:
            return super().make_filesystem()
        # An emulator or GCS-compatible endpoint speaks the JSON API only: use gcsfs's core
        # filesystem, not the variant for zonal and hierarchical buckets (gRPC, Storage Control).
        from gcsfs.core import GCSFileSystem

        fs = GCSFileSystem(**self.storage_options())
        return fs, fs._strip_protocol(self.root_url).rstrip("/")

    def touch(self, path: str) -> None:
        """Refresh the object's modification time: a metadata patch, which sets the object's
        `updated` time on GCS (the bytes stay)."""
        self.fs.setxattrs(path, kitaru_touched=str(int(time.time())))
