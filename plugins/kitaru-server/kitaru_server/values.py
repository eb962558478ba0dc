"""Values in JSON answers: as themselves when JSON can hold them, else a short text."""

from __future__ import annotations

import json
import math
from typing import Any

#: Characters of `repr(value)` shown for a value JSON cannot hold.
PREVIEW = 2000


def _plain(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def json_value(value: Any) -> dict[str, Any]:
    """{"value": value, "value_json": True} for a JSON value; otherwise the value's type and a
    cut `repr` ({"value": None, "value_json": False, "value_type": ..., "value_repr": ...})."""
    if _plain(value):
        return {"value": value, "value_json": True}
    text = repr(value)
    return {"value": None, "value_json": False,
            "value_type": f"{type(value).__module__}.{type(value).__qualname__}",
            "value_repr": text if len(text) <= PREVIEW else text[:PREVIEW] + "..."}
