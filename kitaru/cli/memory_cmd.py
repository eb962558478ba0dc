"""`kitaru memory ...`: read and write memory scopes (the same memory as `kitaru.memory`)."""

from __future__ import annotations

import json
from typing import Any

import typer

from .output import Format, OutputOption, print_json, table, when

app = typer.Typer(
    help="Read and write durable memory: versioned values per key, in scopes.",
    no_args_is_help=True,
)

ScopeOption = typer.Option(
    ..., "--scope", "-s",
    help="NAME (a namespace), namespace:NAME, flow:FLOW_NAME or execution:EXEC_ID.",
)
_PREVIEW = 60


def _memory() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient().memory


@app.command("get")
def get(
    key: str = typer.Argument(..., help="The memory key."),
    scope: str = ScopeOption,
    version: int = typer.Option(None, "--version", help="This version instead of the latest."),
    output: Format = OutputOption,
) -> None:
    """Print the value of a key (as JSON), the latest version or --version."""
    from kitaru_core.errors import MemoryNotFoundError

    memory = _memory()
    name = memory.resolve_scope(scope)
    entry = memory.entry(key, scope=name, version=version)
    if entry is None:
        keys = [e.key for e in memory.list(scope=name)]
        raise MemoryNotFoundError(
            f"no memory key {key!r} in scope {name!r}; "
            + (f"its keys: {', '.join(keys)}" if keys else _no_keys_hint(memory, name))
        )
    if entry.deleted:
        raise MemoryNotFoundError(
            f"memory key {key!r} in scope {name!r} was deleted (version {entry.version}); see the "
            f"earlier versions with `kitaru memory history {key} --scope {name}` and read one "
            "with --version N"
        )
    value = entry.load()
    if output == Format.json:
        print_json({**entry.to_dict(), "value": value})
        return
    typer.echo(_render(value))


@app.command("set")
def set_value(
    key: str = typer.Argument(..., help="The memory key."),
    value: str = typer.Argument(
        ..., help="The value as JSON (3, true, '{\"a\": 1}'); text that is not JSON is a string."
    ),
    scope: str = ScopeOption,
    output: Format = OutputOption,
) -> None:
    """Store a value as the next version of a key (JSON; text that is not JSON is a string)."""
    from .values import parse_value

    entry = _memory().set(key, parse_value(value), scope=scope)
    if output == Format.json:
        print_json(entry.to_dict())
        return
    typer.echo(f"{entry.scope} {entry.key}: version {entry.version}")


@app.command("list")
def list_keys(scope: str = ScopeOption, output: Format = OutputOption) -> None:
    """List the keys of a scope that hold a value, with their latest version."""
    memory = _memory()
    name = memory.resolve_scope(scope)
    entries = memory.list(scope=name)
    if not entries:
        _require_known_scope(memory, name)
    if output == Format.json:
        print_json([e.to_dict() for e in entries])
        return
    table(["key", "version", "updated", "writer"],
          [[e.key, e.version, when(e.created_at), _writer(e)] for e in entries],
          title=name, no_wrap=("version", "updated"))


@app.command("history")
def history(
    key: str = typer.Argument(..., help="The memory key."),
    scope: str = ScopeOption,
    output: Format = OutputOption,
) -> None:
    """Show every version of a key, oldest first, deletes included."""
    from kitaru_core.errors import MemoryNotFoundError

    memory = _memory()
    name = memory.resolve_scope(scope)
    entries = memory.history(key, scope=name)
    if not entries:
        _require_known_scope(memory, name)
        raise MemoryNotFoundError(f"no memory key {key!r} in scope {name!r}; list its keys with "
                                  f"`kitaru memory list --scope {name}`")
    if output == Format.json:
        print_json([{**e.to_dict(), "value": _value(e)} for e in entries])
        return
    rows = []
    for e in entries:
        shown = "(deleted)" if e.deleted else _render(_value(e), indent=None)
        rows.append([e.version, when(e.created_at), _writer(e),
                     shown if len(shown) <= _PREVIEW else shown[:_PREVIEW - 3] + "..."])
    table(["version", "written", "writer", "value"], rows, title=f"{name} {key}",
          no_wrap=("version", "written"))


@app.command("delete")
def delete(
    key: str = typer.Argument(..., help="The memory key."),
    scope: str = ScopeOption,
    output: Format = OutputOption,
) -> None:
    """Delete a key: a tombstone version is written, the history stays."""
    entry = _memory().delete(key, scope=scope)
    if output == Format.json:
        print_json(entry.to_dict())
        return
    typer.echo(f"{entry.scope} {entry.key}: deleted (version {entry.version})")


@app.command("scopes")
def scopes(output: Format = OutputOption) -> None:
    """List the scopes that hold memory."""
    memory = _memory()
    rows = []
    for name in memory.scopes():
        kind, _, rest = name.partition(":")
        rows.append({"scope": name, "kind": kind, "name": rest,
                     "keys": len(memory.list(scope=name))})
    if output == Format.json:
        print_json(rows)
        return
    table(["scope", "kind", "keys"], [[r["scope"], r["kind"], r["keys"]] for r in rows],
          no_wrap=("kind", "keys"))


def _require_known_scope(memory: Any, name: str) -> None:
    from kitaru_core.errors import MemoryNotFoundError

    if name not in memory.scopes():
        raise MemoryNotFoundError(f"scope {name!r} holds no memory; {_no_keys_hint(memory, name)}")


def _no_keys_hint(memory: Any, name: str) -> str:
    if name in memory.scopes():
        return "it holds no keys now (see deleted ones with `kitaru memory history KEY`)"
    known = memory.scopes()
    return f"scopes with memory: {', '.join(known)}" if known else "no scope holds memory yet"


def _value(entry: Any) -> Any:
    """An entry's value; a value that cannot be loaded here is described instead."""
    from kitaru_core.errors import KitaruError

    if entry.deleted:
        return None
    try:
        return entry.load()
    except KitaruError as exc:
        return f"<cannot load: {exc}>"


def _render(value: Any, indent: int | None = 2) -> str:
    try:
        return json.dumps(value, indent=indent, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _writer(entry: Any) -> str:
    return f"execution {entry.exec_id[:12]}" if entry.exec_id else ""
