"""Opaque page cursors for listing executions: a keyset (created_at, exec_id), encoded.

A cursor names the last execution of a page; the next page holds the executions that
sort after it (newest first), so executions created meanwhile never shift or repeat
entries. Callers pass cursors back unchanged; their contents are not an interface.
"""

from __future__ import annotations

import base64
import binascii
import json
import math

from kitaru_core.errors import InvalidValueError

_MAX_LENGTH = 512


def encode(created_at: float, exec_id: str) -> str:
    """The cursor after the execution created at `created_at` with id `exec_id`."""
    raw = json.dumps([created_at, exec_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[float, str]:
    """The keyset a cursor from `encode` names; `InvalidValueError` for anything else."""
    bad = InvalidValueError(
        f"cursor {cursor[:40]!r} is not one this server gave; pass a page's `next_cursor` "
        "unchanged, or leave it out for the first page")
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_LENGTH:
        raise bad
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if (not isinstance(value, list) or len(value) != 2 or isinstance(value[0], bool)
            or not isinstance(value[0], int | float) or not isinstance(value[1], str)
            or not math.isfinite(value[0])):
        raise bad
    return float(value[0]), value[1]
