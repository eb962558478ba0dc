"""The `azure` artifact store: `FsspecArtifactStore` on adlfs (Azure Blob Storage).

One upload is atomic on Blob Storage, and a new blob is one conditional upload
(`If-None-Match: *`). adlfs and the Azure SDK are imported when the store is first used.
"""

from __future__ import annotations

import time
from typing import Any

from kitaru_core.stores import FsspecArtifactStore

from .configs import AzureStoreConfig

_PASSED_ON = ("account_name", "connection_string", "account_key", "sas_token", "tenant_id",
              "client_id", "client_secret")


class AzureBlobArtifactStore(FsspecArtifactStore):
    """Artifacts under `az://container/prefix`."""

    config: AzureStoreConfig

    def storage_options(self) -> dict[str, Any]:
        config = self.config
        # no listing cache: the store never lists, and a stale listing must not hide a new key
        options: dict[str, Any] = {"use_listings_cache": False, "anon": config.anon}
        for name in _PASSED_ON:
            value = getattr(config, name)
            if value:
                options[name] = value
        return options

    def touch(self, path: str) -> None:
        """Refresh the object's modification time: a metadata update (the bytes stay)."""
        self.fs.setxattrs(path, kitaru_touched=str(int(time.time())))
