"""The plugin contract: hook markers, the flavor registrar and the plugin manager.

A plugin module does::

    from kitaru_core.plugins import Flavor, hookimpl

    @hookimpl
    def kitaru_register_flavors(registrar):
        registrar.add(Flavor(name="s3", type="artifact_store", config=S3Config,
                             implementation="kitaru_aws.s3:S3ArtifactStore"))
"""

from __future__ import annotations

from .flavor import COMPONENT_TYPES, Flavor
from .markers import hookimpl, hookspec
from .registrar import FlavorRegistrar

__all__ = ["COMPONENT_TYPES", "Flavor", "FlavorRegistrar", "hookimpl", "hookspec"]
