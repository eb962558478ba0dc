"""Short, one-line renderings of recorded values for tables (`executions get`)."""

from __future__ import annotations

from typing import Any

#: Characters of a value shown in a table cell; `--full` shows it whole.
PREVIEW_CHARS = 60
#: Artifacts larger than this are not loaded for a preview (`--full` loads them).
PREVIEW_MAX_BYTES = 1_000_000


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """`value` as one line of at most `limit` characters: JSON where it is JSON, else repr."""
    text = one_line(_text(value))
    return cut(text, limit)


def call_preview(data: Any, limit: int = PREVIEW_CHARS) -> str:
    """A flow's recorded inputs (`{"args": [...], "kwargs": {...}}`) as a call: `('a', n=2)`."""
    if not isinstance(data, dict):
        return preview(data, limit)
    parts = [_text(a) for a in data.get("args") or ()]
    parts += [f"{k}={_text(v)}" for k, v in (data.get("kwargs") or {}).items()]
    return cut(one_line("(" + ", ".join(parts) + ")"), limit)


def cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1] + f"… ({len(text):,} chars)"


def one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def _text(value: Any) -> str:
    import json

    try:
        return json.dumps(value, ensure_ascii=False, default=_not_json)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def _not_json(obj: Any) -> Any:
    raise TypeError
