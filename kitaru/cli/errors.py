"""How the command line reports an error: one line on stderr, and a documented exit code.

Exit codes (README, "Command line"):

- 0: done.
- 1: the operation failed or was refused: an id that matches nothing, a value the
  command cannot take, an execution that failed, an unexpected error.
- 2: bad usage: the command line does not parse (an unknown command or option, a
  missing argument, a value of the wrong type or not among the choices), or it names
  an invalid configuration (a stack file, a setting: `ConfigError`).

Our own errors (`KitaruError`) print their message, which names the fix; any other
exception prints its type and message with a pointer to `--debug`, which prints the
traceback first. Commands register nothing for this: `main.run` sends every error here.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

# typer's click exceptions (typer 0.2x ships its own copy of click), found through a public name.
_click = sys.modules[typer.BadParameter.__module__]
_UsageError: type[Exception] = _click.UsageError
_ClickException: type[Exception] = _click.ClickException
_NoArgsIsHelp: type[Exception] | None = getattr(_click, "NoArgsIsHelpError", None)
#: Longer messages are cut here (an id of 100 KB must not become a 100 KB line).
MAX_MESSAGE = 1000
_debug = False


def debug_on() -> None:
    """`kitaru --debug ...`: errors print their traceback too."""
    global _debug
    _debug = True


def debug_off() -> None:
    global _debug
    _debug = False


def debugging() -> bool:
    return _debug or os.environ.get("KITARU_DEBUG", "").lower() in ("1", "true", "yes")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` on one line (line breaks folded into spaces), at most `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def report(exc: BaseException) -> int:
    """Print `exc` as one line on stderr (after its traceback with --debug); its exit code."""
    from kitaru_core.errors import KitaruError

    if isinstance(exc, SystemExit):  # typer.Exit(n) inside a command, or a library's sys.exit
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(exc, typer.Exit):
        return exc.exit_code
    if _NoArgsIsHelp is not None and isinstance(exc, _NoArgsIsHelp):  # `kitaru stack`: its help
        text = exc.format_message()  # type: ignore[attr-defined]
        if text.strip():  # the lean help renderer has printed the page already
            _echo(text.rstrip("\n"))
        return 2
    if isinstance(exc, KeyboardInterrupt | typer.Abort):
        _echo("kitaru: interrupted")
        return 130
    if debugging() and not isinstance(exc, _UsageError):
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, _UsageError):
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "kitaru"
        _echo(f"kitaru: error: {one_line(exc.format_message())} (see `{where} --help`)")  # type: ignore[attr-defined]
        return 2
    if isinstance(exc, _ClickException):
        _echo(f"kitaru: error: {one_line(exc.format_message())}")  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 1))
    if isinstance(exc, KitaruError):
        _echo(f"kitaru: error: {one_line(str(exc))}")
        return exc.exit_code
    hint = "" if debugging() else "; `kitaru --debug ...` shows the traceback"
    _echo(f"kitaru: error: {type(exc).__name__}: {one_line(str(exc), 300)} "
          f"(an unexpected error{hint})")
    return 1


def _echo(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: nothing more to say
        pass
