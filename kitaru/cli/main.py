"""The `kitaru` command line (typer). Every command takes `-o json` for scripts."""

from __future__ import annotations

import os
import sys

import typer

from . import (
    delete_cmd,
    diff_cmd,
    doctor_cmd,
    errors,
    executions_cmd,
    extensions,
    flow_cmd,
    gc_cmd,
    image_cmd,
    memory_cmd,
    model_cmd,
    plugins_cmd,
    secrets_cmd,
    stack_cmd,
)
from .help import LeanHelpGroup, use_lean_help
from .output import Format, OutputOption, print_json

app = typer.Typer(
    name="kitaru",
    cls=LeanHelpGroup,  # help pages without typer's heavier renderer: see help.py
    help="kitaru: durable runs for Python agents. Flows, checkpoints, waits, replay, stacks.\n\n"
         "An error is one line on stderr; exit code 1: the operation failed or was refused, "
         "2: bad usage. `kitaru --debug ...` adds the traceback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(stack_cmd.app, name="stack")
app.add_typer(executions_cmd.app, name="executions")
app.add_typer(plugins_cmd.app, name="plugins")
app.add_typer(memory_cmd.app, name="memory")
app.add_typer(model_cmd.app, name="model")
app.add_typer(secrets_cmd.app, name="secrets")
app.add_typer(image_cmd.app, name="image")
app.add_typer(flow_cmd.app, name="flow")
app.command("deploy")(flow_cmd.deploy)  # Kitaru 0.21's top-level names for `flow deploy/invoke`
app.command("invoke")(flow_cmd.invoke)
app.command("build")(flow_cmd.build)
executions_cmd.app.command("delete")(delete_cmd.delete)
executions_cmd.app.command("diff")(diff_cmd.diff)
executions_cmd.app.command("diff-matrix")(diff_cmd.diff_matrix)
app.command("gc")(gc_cmd.gc)
app.command("doctor")(doctor_cmd.doctor)
extensions.add_extensions(app)


@app.callback()
def main(
    stack: str = typer.Option(
        None, "--stack", help="Use this stack instead of the active one (same as KITARU_STACK)."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="On an error, print the traceback too (same as KITARU_DEBUG=1)."
    ),
) -> None:
    if stack:
        os.environ["KITARU_STACK"] = stack
    if debug:
        errors.debug_on()


@app.command()
def init(output: Format = OutputOption) -> None:
    """Create the kitaru home and the `local` stack's data; `local` is active unless another is."""
    from kitaru_core.home import home_dir, read_settings, write_settings
    from kitaru_core.stack import DEFAULT_STACK, StackStore, get_stack

    home = home_dir()
    (home / "stacks").mkdir(parents=True, exist_ok=True)
    settings = read_settings(home)
    settings.setdefault("active_stack", DEFAULT_STACK)
    write_settings(settings, home)
    stack = get_stack(DEFAULT_STACK)  # the built-in one, or a registered `local` that replaces it
    stack.registry  # noqa: B018 - creates the SQLite file and schema
    stack.artifact_store  # noqa: B018
    active = StackStore(home).active_name()
    if output == Format.json:
        print_json({"home": str(home), "active_stack": active})
        return
    typer.echo(f"kitaru home: {home}\nactive stack: {active}")


@app.command()
def status(output: Format = OutputOption) -> None:
    """Show the kitaru home, the active stack and its components, and what waits for input."""
    from kitaru_core.home import home_dir
    from kitaru_core.stack import StackStore, resolve_stack_name

    home = home_dir()
    name = resolve_stack_name()
    spec = StackStore(home).get(name)
    data = {
        "home": str(home),
        "active_stack": name,
        "durability": spec.get("durability", "default"),
        "components": {k: spec[k]["flavor"] for k in
                       ("registry", "artifact_store", "orchestrator", "execution_target")},
    }
    check = doctor_cmd.registry_check(name)  # a quick integrity check of the record
    data["registry_check"] = check
    data["waiting_executions"] = _waiting_count(name) if check["ok"] is not False else None
    if output == Format.json:
        print_json(data)
    else:
        typer.echo(f"kitaru home:  {home}\nactive stack: {name} ({data['durability']} durability)")
        for comp, flavor in data["components"].items():
            typer.echo(f"  {comp:17} {flavor}")
        if check["ok"]:
            typer.echo("registry:     ok (quick check; `kitaru doctor --check` for the full one)")
        elif check["ok"] is None:
            typer.echo(f"registry:     not checked: {check['problems'][0]}")
        else:
            typer.echo(f"registry:     DAMAGED: {check['problems'][0]}")
        waiting = data["waiting_executions"]
        if waiting:
            verb = "execution waits" if waiting == 1 else "executions wait"
            typer.echo(f"waiting:      {waiting} {verb} for input "
                       "(`kitaru executions list --status waiting`)")
    if check["ok"] is False:
        raise typer.Exit(1)


def _waiting_count(stack_name: str) -> int | None:
    """How many executions wait for input (None when the record cannot be read)."""
    from kitaru.client import KitaruClient
    from kitaru_core.errors import KitaruError

    try:
        return len(KitaruClient(stack_name).executions.list(status="waiting"))
    except KitaruError:
        return None


use_lean_help(app)  # after every command and group is registered


def run(args: list[str] | None = None) -> None:
    """Console entry point; always ends in `SystemExit` with the exit code.

    Every error is one line on stderr (see `errors.report`): exit 2 for bad usage,
    1 for a failed operation; `--debug` adds the traceback.
    """
    errors.debug_off()
    try:
        # Not standalone: click's usage errors come back here instead of being drawn in a box.
        code = app(args=args, prog_name="kitaru", standalone_mode=False)
    except BaseException as exc:  # every error leaves through one door
        sys.exit(errors.report(exc))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
