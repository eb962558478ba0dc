"""Artifact store building blocks that flavors share (part of the plugin contract).

`FsspecArtifactStore` implements `ArtifactStore` on any fsspec filesystem; a
cloud flavor subclasses it and only says how to build its filesystem. Importing
this package imports no fsspec and no SDK.
"""

from __future__ import annotations

from .fsspec_store import FsspecArtifactStore, FsspecStoreConfig, GenericFsspecStoreConfig

__all__ = ["FsspecArtifactStore", "FsspecStoreConfig", "GenericFsspecStoreConfig"]
