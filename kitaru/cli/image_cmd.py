"""`kitaru image dockerfile`: the container image a remote stack's runners and workers need."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import Format, OutputOption, print_json

app = typer.Typer(help="Container images for remote stacks.", no_args_is_help=True)


@app.command("dockerfile")
def dockerfile(
    stack: str = typer.Option(None, "--stack", help="The stack the image is for; default the active one."),
    out: Path = typer.Option(
        None, "--out", help="Write the build context (Dockerfile, project/, vendor/) to this new folder.",
    ),
    project: Path = typer.Option(
        None, "--project",
        help="The project folder: the one your flows' modules are imported from; default the current one.",
    ),
    base: str = typer.Option(None, "--base", help="Base image; default python:<this Python>-slim."),
    output: Format = OutputOption,
) -> None:
    """Print the Dockerfile of an image with the project, kitaru and the stack's plugins at this
    machine's versions; with --out, write the whole build context to build and push."""
    from kitaru.images import plan_image, render, write_context
    from kitaru_core.plugins.manager import default_manager
    from kitaru_core.stack import StackStore, resolve_stack_name

    store = StackStore(manager=default_manager())
    spec = store.get(resolve_stack_name(stack))
    plan = plan_image(spec, project or Path.cwd(), default_manager(), base=base)
    written = write_context(plan, spec, out) if out is not None else None
    if output == Format.json:
        print_json({
            "stack": plan.stack, "base": plan.base, "code_path": plan.code_path, "digest": plan.digest,
            "context": str(written) if written else None, "dockerfile": render(plan, spec),
            "pins": [{"name": p.name, "version": p.version, "source": str(p.source) if p.source else None}
                     for p in plan.pins],
        })
        return
    if written is None:
        typer.echo(render(plan, spec), nl=False)
        typer.echo("kitaru: this Dockerfile builds from the context that `kitaru image dockerfile --out DIR` "
                   "writes (project/ and vendor/)", err=True)
        return
    typer.echo(f"wrote the build context of stack {plan.stack!r} to {written} "
               f"(code digest {plan.digest[:16]}, at {plan.code_path} in the image)\n"
               f"build and push it:\n  docker build -t REGISTRY/IMAGE:TAG {written}\n"
               "  docker push REGISTRY/IMAGE:TAG\n"
               "then set `image: REGISTRY/IMAGE:TAG` in the stack's kubernetes config")
