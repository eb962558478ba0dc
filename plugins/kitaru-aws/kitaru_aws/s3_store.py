"""The `s3` artifact store: `FsspecArtifactStore` on s3fs.

One PUT is atomic on S3, and a new blob is one conditional PUT (`If-None-Match: *`).
s3fs (and boto) are imported when the store is first used.
"""

from __future__ import annotations

import time
from typing import Any

from kitaru_core.stores import FsspecArtifactStore

from .configs import S3StoreConfig


class S3ArtifactStore(FsspecArtifactStore):
    """Artifacts under `s3://bucket/prefix`."""

    config: S3StoreConfig

    def storage_options(self) -> dict[str, Any]:
        config = self.config
        # no listing cache: the store never lists, and a stale listing must not hide a new key
        options: dict[str, Any] = {"use_listings_cache": False}
        if config.region:
            options["client_kwargs"] = {"region_name": config.region}
        if config.endpoint_url:
            options["endpoint_url"] = config.endpoint_url
        if config.profile:
            options["profile"] = config.profile
        return options

    def touch(self, path: str) -> None:
        """Refresh the object's modification time: a copy onto itself with new metadata."""
        self.fs.setxattr(path, kitaru_touched=str(int(time.time())))
