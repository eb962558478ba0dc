"""kitaru: a durable runtime for Python agents.

    from kitaru import flow, checkpoint, wait

Importing kitaru is cheap: names are loaded on first use, and no stack,
plugin, cloud SDK or LLM library is touched until a flow runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "flow": "kitaru.flows",
    "Flow": "kitaru.flows",
    "FlowHandle": "kitaru.flows",
    "checkpoint": "kitaru.checkpoints",
    "Checkpoint": "kitaru.checkpoints",
    "wait": "kitaru.primitives",
    "save": "kitaru.primitives",
    "load": "kitaru.primitives",
    "log": "kitaru.primitives",
    "current_execution_id": "kitaru.primitives",
    "progress": "kitaru.events",
    "configure": "kitaru.settings",
    "ImageSettings": "kitaru.settings",
    "KitaruClient": "kitaru.client",
    "ExecutionStatus": "kitaru.client",
    "OutputHandle": "kitaru_core.runtime.handles",
    "KitaruError": "kitaru.errors",
    "KitaruDivergenceError": "kitaru.errors",
    # The function `llm` of the module `kitaru.llm` (which is callable too, see there).
    "llm": "kitaru.llm",
    "get_secret": "kitaru.secrets",
}

# Submodules reached as attributes (`kitaru.memory.get(...)`), imported on first use.
_SUBMODULES = ("events", "memory")

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from kitaru_core.runtime.handles import OutputHandle

    from . import events, memory
    from .checkpoints import Checkpoint, checkpoint
    from .client import ExecutionStatus, KitaruClient
    from .errors import KitaruDivergenceError, KitaruError
    from .events import progress
    from .flows import Flow, FlowHandle, flow
    from .llm import llm
    from .primitives import current_execution_id, load, log, save, wait
    from .secrets import get_secret
    from .settings import ImageSettings, configure


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _SUBMODULES:
            import importlib

            return importlib.import_module(f"kitaru.{name}")  # also sets the attribute
        raise AttributeError(f"module 'kitaru' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
