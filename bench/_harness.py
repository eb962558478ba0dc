"""Shared plumbing for the benchmarks: fresh child processes, temporary homes, medians.

Every measurement runs in a new Python process with its own temporary
`KITARU_HOME`, so no figure inherits warm caches, open connections or
imported modules from another. A figure module runs itself as the child
(`python bench/<module>.py --child VARIANT PARAMS_JSON`), and the child prints
one JSON object as its last line of output.
"""

from __future__ import annotations

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

#: Variables a user may have set that would point a child at another stack or home.
_DROPPED_ENV = ("KITARU_STACK", "KITARU_STACK_SPEC", "KITARU_HOME", "KITARU_STRICT_PLUGINS")


def child_env(home: str) -> dict[str, str]:
    """The environment of a child: a private kitaru home and no prompts."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["KITARU_HOME"] = home
    env["KITARU_INTERACTIVE"] = "0"
    return env


class TempHome:
    """A temporary kitaru home folder, removed afterwards."""

    def __enter__(self) -> str:
        self.path = tempfile.mkdtemp(prefix="kitaru-bench-")
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def run_child(module: str, variant: str, params: dict[str, Any] | None = None,
              *, timeout: float = 600) -> dict[str, Any]:
    """Run `bench/<module>.py --child VARIANT PARAMS` in a fresh process and home; its JSON result."""
    with TempHome() as home:
        proc = subprocess.run(
            [PYTHON, str(BENCH / f"{module}.py"), "--child", variant, json.dumps(params or {})],
            capture_output=True, text=True, env=child_env(home), cwd=str(REPO), timeout=timeout,
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"benchmark child {module} {variant} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


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
    variants: Sequence[str], repeat: int, measure: Callable[[str], float]
) -> dict[str, list[float]]:
    """Measure every variant `repeat` times, round-robin, so drift hits all of them alike."""
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeat):
        for variant in variants:
            samples[variant].append(measure(variant))
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
