"""`kitaru plugins list`: installed plugins, their flavors and config fields."""

from __future__ import annotations

import typer

from .output import Format, OutputOption, print_json

app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)


@app.command("list")
def list_plugins(output: Format = OutputOption) -> None:
    """Each plugin with its version and flavors; a plugin that failed to load shows its error."""
    from kitaru_core.plugins.manager import default_manager

    infos = default_manager().plugins()
    data = [
        {
            "name": i.name,
            "distribution": i.distribution,
            "version": i.version,
            "module": i.module,
            "error": i.error,
            "flavors": [
                {"type": f.type, "name": f.name, "description": f.description,
                 "config": f.config_fields()}
                for f in i.flavors
            ],
        }
        for i in infos
    ]
    if output == Format.json:
        print_json(data)
        return
    from rich.markup import escape
    from rich.tree import Tree

    from .output import console

    root = Tree("plugins")
    for p in data:
        label = f"[bold]{escape(p['distribution'] or p['name'])}[/bold] {escape(p['version'] or '')}"
        if p["error"]:
            label += f"  [red]failed to load: {escape(p['error'])}[/red]"
        node = root.add(label)
        for f in p["flavors"]:
            about = f"  [dim]{escape(f['description'])}[/dim]" if f["description"] else ""
            flavor = node.add(f"{f['type']} [cyan]{escape(f['name'])}[/cyan]{about}")
            for key, field in f["config"].items():  # one line per config field
                default = "required" if field["required"] else f"= {field['default']!r}"
                flavor.add(escape(f"{key}: {field['type']} {default}"))
    console().print(root)
