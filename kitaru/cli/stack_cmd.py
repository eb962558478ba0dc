"""`kitaru stack ...`: register, activate, inspect and delete stacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .output import Format, OutputOption, print_json, table

app = typer.Typer(help="Manage stacks (where flows run and where their state lives).",
                  no_args_is_help=True)

_COMPONENTS = ("registry", "artifact_store", "orchestrator", "execution_target")


def _store():
    from kitaru_core.stack import StackStore

    return StackStore()


@app.command("register")
def register(
    file: Path = typer.Argument(..., help="A stack YAML file."),
    activate: bool = typer.Option(False, "--activate", help="Also make it the active stack."),
    force: bool = typer.Option(False, "--force",
                               help="Replace a stack of the same name (the built-in `local` included)."),
    output: Format = OutputOption,
) -> None:
    """Validate a stack file and store it under the kitaru home."""
    spec = _store().register(file, activate=activate, force=force)
    if output == Format.json:
        print_json({"registered": spec["name"], "active": activate, "stack": spec})
        return
    typer.echo(f"registered stack {spec['name']!r}" + (" (active)" if activate else ""))


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="A stack YAML file."),
    connect: bool = typer.Option(
        False, "--connect",
        help="Also build each component here (environment variables read, connections opened).",
    ),
    output: Format = OutputOption,
) -> None:
    """Check a stack file (keys, flavors, config types) without registering it."""
    from kitaru_core.home import home_dir
    from kitaru_core.plugins.manager import default_manager
    from kitaru_core.stack import Stack, load_stack_file, validate_stack

    spec = validate_stack(load_stack_file(file), source=str(file))
    if connect:
        Stack(spec=spec, home=home_dir(), manager=default_manager()).connect()
    if output == Format.json:
        print_json({"valid": True, "connected": connect, "stack": spec})
        return
    built = " and every component was built" if connect else ""
    typer.echo(f"{file}: stack {spec['name']!r} is valid{built}")


@app.command("set")
def set_active(name: str = typer.Argument(..., help="A registered stack."),
               output: Format = OutputOption) -> None:
    """Make a registered stack the active one."""
    _store().set_active(name)
    if output == Format.json:
        print_json({"active": name})
        return
    typer.echo(f"active stack: {name}")


@app.command("list")
def list_stacks(output: Format = OutputOption) -> None:
    """List registered stacks; the active one is marked."""
    from kitaru_core.errors import KitaruError
    from kitaru_core.stack import resolve_stack_name

    store = _store()
    active = resolve_stack_name()
    rows: list[dict[str, Any]] = []
    for name in store.names():
        row: dict[str, Any] = {"name": name, "active": name == active, "error": None}
        try:
            spec = store.get(name)
        except KitaruError as exc:  # e.g. its plugin was uninstalled: list the others anyway
            row.update({c: None for c in _COMPONENTS}, error=str(exc))
        else:
            row.update({c: spec[c]["flavor"] for c in _COMPONENTS})
        rows.append(row)
    if output == Format.json:
        print_json(rows)
        return
    table(["", "name", *_COMPONENTS],
          [["*" if r["active"] else "", r["name"],
            *([r[c] for c in _COMPONENTS] if r["error"] is None else [f"invalid: {r['error']}"])]
           for r in rows])


@app.command("show")
def show(name: str = typer.Argument(None, help="A stack name (default: the active one)."),
         output: Format = OutputOption) -> None:
    """Show a stack's components and their config."""
    import yaml

    from kitaru_core.stack import resolve_stack_name

    spec = _store().get(name or resolve_stack_name())
    if output == Format.json:
        print_json(spec)
        return
    typer.echo(yaml.safe_dump(spec, sort_keys=False).rstrip())


@app.command("delete")
def delete(name: str = typer.Argument(..., help="A registered stack."),
           output: Format = OutputOption) -> None:
    """Forget a registered stack (its recorded data is left in place)."""
    _store().delete(name)
    if output == Format.json:
        print_json({"deleted": name})
        return
    typer.echo(f"deleted stack {name!r}")
