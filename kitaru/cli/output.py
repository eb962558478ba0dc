"""Printing for the command line: rich tables for people, JSON (`-o json`) for scripts."""

from __future__ import annotations

import enum
import json
import sys
from datetime import datetime
from typing import Any

import typer


class Format(enum.StrEnum):
    table = "table"
    json = "json"


OutputOption = typer.Option(Format.table, "--output", "-o", help="Output format: table or json.")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_default) + "\n")


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, enum.Enum):
        return obj.value
    return str(obj)


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def table(
    columns: list[str], rows: list[list[Any]], title: str | None = None,
    no_wrap: tuple[str, ...] = (),
) -> None:
    """A rich table; columns named in `no_wrap` (ids, times) are never broken across lines."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold", no_wrap=col in no_wrap)
    for row in rows:  # cells are text, never rich markup: a value may hold "[bold]"
        t.add_row(*[Text("" if v is None else str(v)) for v in row])
    console().print(t)


SHORT_ID_LENGTH = 12


def short_id(exec_id: str) -> str:
    """The first 12 characters of an id: what tables show; commands accept any unique prefix."""
    return exec_id[:SHORT_ID_LENGTH]


def when(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S") if dt else ""


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    return f"{seconds / 60:.1f}m"
