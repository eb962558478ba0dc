"""Figure (c): start-up wall time of `import kitaru` and `kitaru --help`.

Each command runs in a fresh process (fresh home), timed from spawn to exit
by the parent; the median of the repeats is reported beside the baseline
`python -c pass` measured in the same run. A child also reports which heavy
modules `import kitaru` pulled in (none is the goal: pydantic, yaml, typer and
rich load only when a stack or the CLI needs them).
"""

from __future__ import annotations

import os
import sys
from typing import Any

NAME = "startup"
TARGETS_S = {"import kitaru": 0.150, "kitaru --help": 0.300}
HEAVY = ("pydantic", "yaml", "typer", "rich", "click", "sqlite3", "pluggy")


def commands() -> dict[str, list[str]]:
    """The timed commands; the `kitaru` console script if installed, else `-m`."""
    python = sys.executable
    script = os.path.join(os.path.dirname(python), "kitaru")
    cli = [script] if os.path.exists(script) else [python, "-m", "kitaru.cli.main"]
    return {
        "python -c pass": [python, "-c", "pass"],
        "import kitaru": [python, "-c", "import kitaru"],
        "kitaru --help": [*cli, "--help"],
    }


def run(*, repeat: int) -> dict[str, Any]:
    from _harness import median, repeat_interleaved, run_child, timed_process

    cmds = commands()
    for argv in cmds.values():  # warm the OS file cache and write .pyc files once
        timed_process(argv)
    samples = repeat_interleaved(list(cmds), repeat, lambda name: timed_process(cmds[name])[0]
    )
    med = {name: median(s) for name, s in samples.items()}
    heavy = run_child(NAME, "modules")["heavy_modules"]
    return {
        "repeat": repeat,
        "seconds": med,
        "samples": samples,
        "over_bare_python_s": {
            name: med[name] - med["python -c pass"] for name in TARGETS_S
        },
        "heavy_modules_after_import_kitaru": heavy,
        "targets": {name: f"< {t * 1e3:.0f} ms" for name, t in TARGETS_S.items()},
        "met": {name: med[name] < t for name, t in TARGETS_S.items()},
    }


def _modules(params: dict[str, Any]) -> dict[str, Any]:
    import kitaru  # noqa: F401

    return {"heavy_modules": [m for m in HEAVY if m in sys.modules]}


if __name__ == "__main__":
    from _harness import child_main

    child_main({"modules": _modules})
