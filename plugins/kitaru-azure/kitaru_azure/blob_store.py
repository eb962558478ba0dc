"""The `azure` artifact store: `FsspecArtifactStore` on adlfs (Azure Blob Storage).

One upload is atomic on Blob Storage, and a new blob is one conditional upload
(`If-None-Match: *`). adlfs and the Azure SDK are imported when the store is first used.

adlfs makes fsspec's event loop (which runs in a thread of its own) the current event
loop of the calling thread when it opens a file or reconnects. Afterwards
`asyncio.get_event_loop()` in that thread returns a loop that is already running, and
code that runs coroutines with it (Pydantic AI's `run_sync`, for one) fails in a flow
that used the store. The store puts back the thread's own loop after such calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from kitaru_core.stores import FsspecArtifactStore

from .configs import AzureStoreConfig

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

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

    def make_filesystem(self) -> tuple[AbstractFileSystem, str]:
        with _thread_event_loop_kept():
            return super().make_filesystem()

    def put_stream(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        with _thread_event_loop_kept():
            return super().put_stream(chunks)

    def touch(self, path: str) -> None:
        """Refresh the object's modification time: a metadata update (the bytes stay)."""
        self.fs.setxattrs(path, kitaru_touched=str(int(time.time())))


@contextlib.contextmanager
def _thread_event_loop_kept() -> Iterator[None]:
    """Put back the calling thread's current event loop if adlfs replaced it (module doc)."""
    policy = asyncio.get_event_loop_policy()
    local = getattr(policy, "_local", None)  # where the default policies keep it (3.11-3.13)
    before = getattr(local, "_loop", None)
    try:
        yield
    finally:
        if local is not None and getattr(local, "_loop", None) is not before:
            policy.set_event_loop(before)
