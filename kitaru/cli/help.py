"""`--help` pages drawn with rich, without importing typer's `rich_utils`.

typer renders help through its `rich_utils` module, which first imports
rich's Markdown (and markdown-it), traceback and syntax modules: about half
of the time `kitaru --help` took. kitaru's help texts use rich markup only,
so this renderer needs just rich's console, padding, panel, table and text.
The layout is typer's: usage, the help text, then the Arguments, Options and
Commands panels. Parameter rows come from click's public `get_help_record`,
and if a page cannot be built here (an unexpected typer version, say) typer
draws it instead. Errors are still reported by typer.

`use_lean_help(app)` gives every command of a typer app, and of the apps
added to it, these pages.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

# What click appends to an option's help: "  [default: 50]", "  [env var: X]", "  [required]".
_ANNOTATION = re.compile(r"\s*(\[(?:default|env var|required)\b[^\]]*\])")


class LeanHelpCommand(TyperCommand):
    """A typer command whose `--help` page is drawn by `render_help`."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        if not render_help(self, ctx):
            super().format_help(ctx, formatter)


class LeanHelpGroup(TyperGroup):
    """A typer group whose `--help` page is drawn by `render_help`."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        if not render_help(self, ctx):
            super().format_help(ctx, formatter)


def use_lean_help(app: typer.Typer) -> None:
    """Give the commands and groups registered on `app` so far, recursively, the lean help.

    Call it once every command is registered; one that chose its own class keeps it.
    """
    for info in app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:
            info.cls = LeanHelpCommand
    for group in app.registered_groups:
        sub = group.typer_instance
        if _unset(group.cls) and (sub is None or _unset(sub.info.cls)):
            group.cls = LeanHelpGroup
        if isinstance(sub, typer.Typer):
            use_lean_help(sub)


def _unset(cls: Any) -> bool:
    return cls is None or cls is TyperGroup or isinstance(cls, DefaultPlaceholder)


def render_help(command: Any, ctx: Any) -> bool:
    """Print the help page of a command or group to stdout; False if it could not be built."""
    try:
        page = _page(command, ctx)
    except Exception:  # an unexpected typer/click version: let typer draw the page
        return False
    from rich.console import Console

    console = Console(highlight=False)
    for part in page:
        console.print(part)
    return True


def _page(command: Any, ctx: Any) -> list[RenderableType]:
    from rich.padding import Padding

    page: list[RenderableType] = [Padding(_usage(command.get_usage(ctx)), 1)]
    help_text = (command.help or "").split("\f")[0].strip()
    if help_text:
        page.append(Padding(_paragraphs(help_text), (0, 1, 1, 1)))
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    for title, kind in (("Arguments", "argument"), ("Options", "option")):
        rows = [_param_row(p, ctx) for p in params if p.param_type_name == kind]
        if rows:
            page.append(_panel(title, rows, required=[p.required for p in params
                                                      if p.param_type_name == kind]))
    if hasattr(command, "list_commands"):
        rows = []
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                rows.append(_command_row(name, sub))
        if rows:
            page.append(_panel("Commands", rows))
    return page


def _usage(usage: str) -> Text:
    from rich.text import Text

    prefix, _, rest = usage.partition(" ")
    return Text.assemble((prefix + " ", "yellow"), (rest, "bold"))


def _paragraphs(text: str) -> Text:
    """Help text: each paragraph's lines joined; the first paragraph plain, the rest dim."""
    from rich.text import Text

    out = Text()
    for i, para in enumerate(text.split("\n\n")):
        if i:
            out.append("\n\n")
        joined = para.strip("\b\n") if para.startswith("\b") else " ".join(para.split())
        out.append_text(Text.from_markup(joined, style="dim" if i else ""))
    return out


def _param_row(param: Any, ctx: Any) -> tuple[Text, Text]:
    """(names and value type, help with its [default]/[required] notes) of one parameter."""
    from rich.text import Text

    record = param.get_help_record(ctx)
    decl, help_text = record if record else (param.human_readable_name, "")
    names = Text()
    for i, token in enumerate(decl.split(" ")):
        if i:
            names.append(" ")
        names.append(token, style="bold cyan" if token.startswith("-") else "bold yellow")
    notes = _ANNOTATION.findall(help_text)
    prose = " ".join(_ANNOTATION.sub("", help_text).split())
    helps = [Text.from_markup(prose)] if prose else []
    helps += [Text(note, style="dim red" if note == "[required]" else "dim") for note in notes]
    return names, Text(" ").join(helps)


def _command_row(name: str, command: Any) -> tuple[Text, Text]:
    from rich.text import Text

    text = (command.short_help or command.help or "").split("\f")[0].strip()
    first = Text.from_markup(" ".join(text.split("\n\n")[0].split()))
    if getattr(command, "deprecated", False):
        first = Text.assemble(("(deprecated) ", "red"), first)
    return Text(name, style="bold cyan"), first


def _panel(title: str, rows: list[tuple[Text, Text]], required: list[bool] | None = None) -> Any:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, expand=True, box=None, padding=(0, 1), pad_edge=False)
    marks = required if required and any(required) else None
    if marks:
        table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    for i, row in enumerate(rows):
        cells: list[Any] = list(row)
        if marks:
            cells.insert(0, Text("*" if marks[i] else "", style="red"))
        table.add_row(*cells)
    return Panel(table, border_style="dim", title=title, title_align="left")
