"""`kitaru model ...`: register, list and remove model aliases for `kitaru.llm`."""

from __future__ import annotations

from typing import Any

import typer

from .output import Format, OutputOption, print_json, table

app = typer.Typer(help="Manage model aliases for kitaru.llm (short names for provider models).",
                  no_args_is_help=True)


@app.command("register")
def register(
    alias: str = typer.Argument(..., help="The alias, e.g. fast."),
    model: str = typer.Option(..., "--model", "-m",
                              help="A Pydantic AI model string, e.g. openai:gpt-5-mini."),
    default: bool = typer.Option(False, "--default", help="Also make it the default model."),
    secret: str = typer.Option(None, "--secret", help="A secret whose keys (e.g. OPENAI_API_KEY) are "
                               "the provider's credentials, resolved when the model is called."),
    output: Format = OutputOption,
) -> None:
    """Store an alias in the kitaru home (replacing an earlier one of that name)."""
    from kitaru import models

    entry = models.register(alias, model, default=default, secret=secret)
    if output == Format.json:
        print_json({"registered": entry.to_dict()})
        return
    typer.echo(f"registered model alias {entry.alias!r} -> {entry.model}"
               + (f" with the credentials of secret {entry.secret!r}" if entry.secret else "")
               + (" (default)" if entry.default else ""))


@app.command("list")
def list_models(output: Format = OutputOption) -> None:
    """List aliases from the kitaru home and from KITARU_MODEL_<ALIAS>; the default is marked."""
    from kitaru import models

    entries = models.list()
    default = _default(models)
    if output == Format.json:
        print_json({"default": default, "aliases": [e.to_dict() for e in entries]})
        return
    if entries:
        table(["", "alias", "model", "secret", "source"],
              [["*" if e.default else "", e.alias, e.model, e.secret or "",
                f"env {models.ENV_PREFIX}{e.alias.upper()}" if e.source == "env" else e.source]
               for e in entries])
    else:
        typer.echo("no model aliases; register one with "
                   "`kitaru model register fast --model openai:gpt-5-mini`")
    if default is None:
        typer.echo("no default model (set one with `--default` or KITARU_DEFAULT_MODEL)")
    elif default["source"] == "env":
        typer.echo(f"default model: {default['name']} (from {models.ENV_DEFAULT})")


@app.command("remove")
def remove(alias: str = typer.Argument(..., help="A registered alias."),
           output: Format = OutputOption) -> None:
    """Forget an alias registered in the kitaru home."""
    from kitaru import models

    entry = models.remove(alias)
    if output == Format.json:
        print_json({"removed": entry.to_dict()})
        return
    typer.echo(f"removed model alias {entry.alias!r}"
               + (" (it was the default; no default model now)" if entry.default else ""))


def _default(models: Any) -> dict[str, Any] | None:
    """The default model: what was set, where, and the model string it resolves to."""
    from kitaru_core.errors import KitaruError

    found = models.default_model()
    if found is None:
        return None
    name, source = found
    try:
        resolved = models.resolve(None)
    except KitaruError:
        resolved = None
    return {"name": name, "source": source, "model": resolved}
