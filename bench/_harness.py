"""Shared plumbing for the benchmarks: fresh child processes, temporary homes, medians.

Every measurement runs in a new Python process with its own temporary
`KITARU_HOME`, so no figure inherits warm caches, open connections or
imported modules from another. A figure module runs itself as the child
(`python bench/<module>.py --child VARIANT PARAMS_JSON`), and the child prints
one JSON object as its last line of output.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable

#: Where the temporary homes are made by default (see `set_temp_root`); git-ignored.
DEFAULT_TEMP_ROOT = BENCH / ".kitaru-home"
_temp_root: Path | None = DEFAULT_TEMP_ROOT

#: Variables that would make a child unlike a user's process: the first four point it at
#: another stack or home; PYTHONDONTWRITEBYTECODE (set on the development VM) would make every
#: child compile kitaru's own modules again, ~30 ms per `kitaru --help` that a user's Python,
#: which caches bytecode, never pays (figure (c)'s warm-up run writes the cache once).
_DROPPED_ENV = (
    "KITARU_STACK", "KITARU_STACK_SPEC", "KITARU_HOME", "KITARU_STRICT_PLUGINS",
    "PYTHONDONTWRITEBYTECODE",
)


def child_env(home: str) -> dict[str, str]:
    """The environment of a child: a private kitaru home and no prompts."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["KITARU_HOME"] = home
    env["KITARU_INTERACTIVE"] = "0"
    return env


def set_temp_root(path: str | Path | None) -> None:
    """Make the temporary homes under `path` (None: the system's temp folder).

    The default is a folder beside the code, the way a user's ~/.kitaru is not
    in /tmp: where other processes churn files (test suites under /tmp), a new
    file there waits on their file-system journal commits. On the development
    VM, creating a small file took ~500 us under /tmp and ~17 us under /work or
    /root at the same moment. Every variant of a figure, baselines included,
    runs in the same place, so the choice weighs on all of them.
    """
    global _temp_root
    _temp_root = Path(path) if path else None


class TempHome:
    """A temporary kitaru home folder, removed by `remove_homes()` once the run is over.

    Not right after its measurement: removing thousands of files costs the file
    system work (on a disk mounted with `discard`, a TRIM per freed extent) that
    would land in the next measurement and pile up over the run.
    """

    def __enter__(self) -> str:
        if _temp_root is not None:
            _temp_root.mkdir(parents=True, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix="kitaru-bench-", dir=_temp_root)
        _homes.append(self.path)
        return self.path

    def __exit__(self, *exc: object) -> None:
        pass


_homes: list[str] = []


@atexit.register
def new_home(*, use: bool = True) -> Path:
    """A new empty kitaru home under bench/.kitaru-home (git-ignored), for the scripts that
    measure in their own process; `use` makes it this process's KITARU_HOME."""
    DEFAULT_TEMP_ROOT.mkdir(exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="kitaru-bench-", dir=DEFAULT_TEMP_ROOT))
    if use:
        os.environ["KITARU_HOME"] = str(home)
    return home


def remove_homes() -> None:
    """Remove every temporary home made so far."""
    while _homes:
        shutil.rmtree(_homes.pop(), ignore_errors=True)
    if _temp_root == DEFAULT_TEMP_ROOT:
        with contextlib.suppress(OSError):
            DEFAULT_TEMP_ROOT.rmdir()  # only if empty


def run_child(module: str, variant: str, params: dict[str, Any] | None = None,
              *, timeout: float = 600, python: str | None = None) -> dict[str, Any]:
    """Run `bench/<module>.py --child VARIANT PARAMS` in a fresh process and home; its JSON result.

    `python`: another interpreter (the peers' venv) instead of this one.
    """
    with TempHome() as home:
        settle_io()
        proc = subprocess.run(
            [python or PYTHON, str(BENCH / f"{module}.py"), "--child", variant,
             json.dumps(params or {})],
            capture_output=True, text=True, env=child_env(home), cwd=str(REPO), timeout=timeout,
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"benchmark child {module} {variant} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    # The last JSON line: a peer system may log to stdout after it (Prefect's shutdown).
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def settle_io() -> None:
    """Write back every dirty page first (`sync`), so a measurement doesn't pay for the
    write-back of files an earlier measurement left behind."""
    if hasattr(os, "sync"):
        os.sync()


def timed_process(argv: Sequence[str]) -> tuple[float, float, str]:
    """Run a command in a fresh process and home; (wall seconds, peak RSS in MB, stdout).

    The peak RSS is the `ru_maxrss` that `wait4` reports for exactly that
    process. On Linux it includes the high-water mark of this (larger) parent
    carried across fork/exec, so `memory.py` reads the child's own `VmHWM`.
    """
    with TempHome() as home, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=child_env(home), cwd=str(REPO))
        _, status, usage = os.wait4(proc.pid, 0)  # reap it ourselves to get its rusage
        wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {code}):\n{stderr[-4000:]}")
    return wall, usage.ru_maxrss / 1024, stdout  # Linux reports KiB


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def repeat_interleaved(
    variants: Sequence[str], repeat: int, measure: Callable[[str], float], *, discard: int = 0
) -> dict[str, list[float]]:
    """Measure every variant `repeat` times, round-robin, so drift hits all of them alike.

    The first `discard` rounds are run and thrown away: they absorb whatever the
    machine was still busy with (the previous run's clean-up, say).
    """
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for round_ in range(discard + repeat):
        for variant in variants:
            value = measure(variant)
            if round_ >= discard:
                samples[variant].append(value)
    return samples


def child_main(handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """Entry point of a figure module run as a child: dispatch the variant, print its JSON."""
    if len(sys.argv) < 3 or sys.argv[1] != "--child":
        raise SystemExit(
            f"usage: python {sys.argv[0]} --child VARIANT [PARAMS_JSON]  "
            "(run `python bench/run.py` for the whole suite)"
        )
    variant = sys.argv[2]
    params = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    result = handlers[variant](params)
    sys.stdout.flush()
    print(json.dumps(result), flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"
