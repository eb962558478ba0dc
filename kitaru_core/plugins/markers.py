"""pluggy markers of the `kitaru` project name."""

from __future__ import annotations

import pluggy

PROJECT = "kitaru"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
