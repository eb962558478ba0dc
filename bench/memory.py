"""Figure (d): peak memory of a fresh process running a 100-checkpoint flow.

Peak memory is the process's peak resident set size, median of the repeats,
beside two baselines measured in the same run: a bare `python -c pass` and a
process that only imports kitaru. Each process prints its own `VmHWM` (from
/proc/self/status) as it ends: that is the `ru_maxrss` that `/usr/bin/time`
reports for it. The `ru_maxrss` that `wait4` returns to this Python parent
would also count the parent's own high-water mark, which Linux carries across
fork and exec; it is used only where /proc is missing.
"""

from __future__ import annotations

import os
import sys
from typing import Any

NAME = "memory"
TARGET_MB = 50.0


#: Appended to each command: print this process's peak RSS as it ends (no imports).
REPORT = "print(''.join(line for line in open('/proc/self/status') if line.startswith('VmHWM')))"


def commands(n: int) -> dict[str, list[str]]:
    from _harness import BENCH

    python = sys.executable
    return {
        "python -c pass": [python, "-c", f"pass; {REPORT}"],
        "import kitaru": [python, "-c", f"import kitaru; {REPORT}"],
        f"{n}-checkpoint flow": [python, str(BENCH / "memory.py"), "--child", "flow",
                                 f'{{"n": {n}}}'],
    }


def peak_rss_mb(argv: list[str]) -> float:
    """Peak RSS of a fresh process running `argv`, in MB (see the module docstring)."""
    from _harness import timed_process

    _, wait4_mb, out = timed_process(argv)
    for line in out.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return wait4_mb


def run(*, repeat: int, n: int = 100) -> dict[str, Any]:
    from _harness import median, repeat_interleaved

    cmds = commands(n)
    samples = repeat_interleaved(list(cmds), repeat, lambda name: peak_rss_mb(cmds[name]))
    med = {name: median(s) for name, s in samples.items()}
    flow = med[f"{n}-checkpoint flow"]
    return {
        "n": n,
        "repeat": repeat,
        "peak_rss_mb": med,
        "samples": samples,
        "target": f"< {TARGET_MB:.0f} MB",
        "met": flow < TARGET_MB,
    }


def _flow(params: dict[str, Any]) -> dict[str, Any]:
    from _flows import chain, expected_total

    n = params["n"]
    assert chain.run(n).wait() == expected_total(n)
    if os.path.exists("/proc/self/status"):
        exec(REPORT)
    return {"n": n}


if __name__ == "__main__":
    from _harness import child_main

    child_main({"flow": _flow})
