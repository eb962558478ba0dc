"""Command groups other distributions add to `kitaru` (entry point group `kitaru.cli`).

`kitaru server ...`, `kitaru auth ...`, `kitaru login` and `kitaru logout` come from
kitaru-server. Their names are listed here so `kitaru --help` shows them and start-up reads
no package metadata; the entry point is looked up only when such a command runs, and a
missing distribution is a one-line error saying what to install.
"""

from __future__ import annotations

from typing import Any

import typer

from kitaru_core.errors import ConfigError

GROUP = "kitaru.cli"
#: command -> (help line, what to install when it is missing)
KNOWN: dict[str, tuple[str, str]] = {
    "server": ("Run the kitaru server (REST API over this stack's registry).", "kitaru[server]"),
    "auth": ("Service accounts and API keys of a kitaru server.", "kitaru[server]"),
    "login": ("Log in to a kitaru server: keep an API key, register its stack.", "kitaru[server]"),
    "logout": ("Forget the API key of a kitaru server.", "kitaru[server]"),
}


def load(name: str) -> Any:
    """The typer app the entry point `name` of group `kitaru.cli` names."""
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        need = KNOWN.get(name, ("", f"the distribution that provides `kitaru {name}`"))[1]
        raise ConfigError(f"`kitaru {name}` is not installed; pip install '{need}'")
    return found[0].load()


def add_extensions(app: typer.Typer) -> None:
    """Register a forwarding command for every known extension group."""
    for name, (help_line, _) in KNOWN.items():
        app.command(
            name, help=help_line, add_help_option=False,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(_forwarder(name))


def _forwarder(name: str) -> Any:
    def forward(ctx: typer.Context) -> Any:
        command = typer.main.get_command(load(name))
        return command.main(args=list(ctx.args), prog_name=f"kitaru {name}", standalone_mode=False)

    forward.__name__ = f"{name}_extension"
    return forward
