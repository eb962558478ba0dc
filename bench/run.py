"""Run every kitaru benchmark, print a table and write `bench/results.json`.

    .venv/bin/python bench/run.py            # full run (more repeats)
    .venv/bin/python bench/run.py --quick    # fewer repeats, same workloads
    .venv/bin/python bench/run.py --only overhead,startup --repeat 9

Every figure is printed beside a baseline measured in the same run, as a
ratio; each measurement runs in a fresh process with its own temporary
KITARU_HOME, and the median of the repeats is reported. Nothing here asserts
a wall-clock threshold: the "target" column says whether this run met the
goal on this machine. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness
import adapter_overhead
import checkpoint_overhead
import managed_targets
import memory
import peers
import resume
import startup

#: Figures run by default; `peers` (DBOS and Prefect, installed from PyPI) only with --peers;
#: `managed` (the managed ML job targets against their doubles, minutes long) only with --only.
FIGURES = ("overhead", "resume", "startup", "memory", "adapter")
ALL_FIGURES = (*FIGURES, "peers", "managed")
#: Figures that need an optional extra: (module it needs, how to install it).
NEEDS = {"adapter": ("pydantic_ai", "pip install 'kitaru[pydantic-ai]'")}
#: Repeats per figure: (full, quick).
REPEATS = {"overhead": (9, 3), "resume": (5, 3), "startup": (15, 5), "memory": (5, 3),
           "adapter": (5, 3), "peers": (6, 3), "managed": (3, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (same workloads)")
    parser.add_argument("--repeat", type=int, help="repeats per figure (overrides the defaults)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(ALL_FIGURES)}")
    parser.add_argument("--peers", action="store_true",
                        help="also measure DBOS and Prefect on the same flow (installs them from PyPI "
                        "into --peers-venv on first use)")
    parser.add_argument("--peers-venv", default=str(peers.DEFAULT_VENV),
                        help="virtual environment for DBOS and Prefect (default: bench/.peers-venv)")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results.json")),
                        help="where to write the JSON results (default: bench/results.json)")
    parser.add_argument("--tmpdir", default=str(_harness.DEFAULT_TEMP_ROOT),
                        help="where the temporary kitaru homes are made (default: bench/.kitaru-home)")
    args = parser.parse_args(argv)
    _harness.set_temp_root(args.tmpdir)
    chosen = [f.strip() for f in args.only.split(",")] if args.only else list(FIGURES)
    if args.peers and "peers" not in chosen:
        chosen.append("peers")
    unknown = [f for f in chosen if f not in ALL_FIGURES]
    if unknown:
        parser.error(f"unknown figure {unknown[0]!r}; choose from {', '.join(ALL_FIGURES)}")

    def reps(fig: str) -> int:
        return args.repeat or REPEATS[fig][1 if args.quick else 0]

    results: dict[str, Any] = {"machine": _machine(), "quick": args.quick, "figures": {},
                               "homes_under": str(Path(args.tmpdir).resolve())}
    results["load_average_before"] = _load()
    started = time.perf_counter()
    runners = {
        "overhead": lambda: checkpoint_overhead.run(repeat=reps("overhead")),
        "resume": lambda: resume.run(repeat=reps("resume")),
        "startup": lambda: startup.run(repeat=reps("startup")),
        "memory": lambda: memory.run(repeat=reps("memory")),
        "adapter": lambda: adapter_overhead.run(repeat=reps("adapter")),
        "peers": lambda: peers.run(repeat=reps("peers"), venv=Path(args.peers_venv)),
        "managed": lambda: managed_targets.run(repeat=reps("managed")),
    }
    failed = False
    for fig in chosen:
        missing = _missing_extra(fig)
        if missing:
            print(f"skipping {fig}: {missing}", file=sys.stderr, flush=True)
            results["figures"][fig] = {"skipped": missing}
            continue
        print(f"running {fig} ({reps(fig)} repeats) ...", file=sys.stderr, flush=True)
        try:
            results["figures"][fig] = runners[fig]()
        except Exception as exc:  # one broken figure must not hide the others
            failed = True
            print(f"{fig} failed: {exc}", file=sys.stderr, flush=True)
            results["figures"][fig] = {"failed": str(exc).strip().splitlines()[0]}
    results["elapsed_s"] = time.perf_counter() - started
    results["load_average_after"] = _load()

    _harness.remove_homes()
    print(render(results))
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 1 if failed else 0


def peers_markdown(f: dict[str, Any]) -> str:
    """Figure (g) as the Markdown table the READMEs show."""
    names = {"kitaru": "kitaru", "dbos": "DBOS", "prefect": "Prefect"}
    store = {"kitaru": "local stack (SQLite WAL + folder)", "dbos": "SQLite system database",
             "prefect": "ephemeral local server, SQLite; `persist_result=True`"}
    lines = [
        f"| system | version | state | per step ({f['steps']} steps of {f['output_bytes']} B) "
        "| vs kitaru |",
        "|---|---|---|---|---|",
    ]
    for system in peers.SYSTEMS:
        lines.append(
            f"| {names[system]} | {f['versions'][system]} | {store[system]} | "
            f"{f['per_step_s'][system] * 1e3:.2f} ms | {f['ratio_to_kitaru'][system]:.1f}x |"
        )
    return "\n".join(lines)


def _missing_extra(fig: str) -> str | None:
    """Why `fig` can't run here (an optional extra is not installed), or None."""
    if fig not in NEEDS:
        return None
    module, install = NEEDS[fig]
    if importlib.util.find_spec(module) is not None:
        return None
    return f"needs {module}, which is not installed ({install})"


def render(results: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    rows: list[tuple[str, str, str, str, str]] = []
    figs = results["figures"]

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:.3f} ms"

    def ok(met: bool) -> str:
        return "met" if met else "MISSED"

    labels = {"overhead": "(a)", "resume": "(b)", "startup": "(c)", "memory": "(d)", "adapter": "(e)",
              "peers": "(g)", "managed": "(h)"}
    notes = [f"{labels[fig]} {fig} {state}: {f[state]}" for fig, f in figs.items()
             for state in ("skipped", "failed") if state in f]
    figs = {fig: f for fig, f in figs.items() if not ({"skipped", "failed"} & f.keys())}

    if "overhead" in figs:
        f = figs["overhead"]
        per, ratio, met = f["per_checkpoint_s"], f["ratio_to_floor"], f["met"]
        n = f["n"]
        rows.append((f"(a) {n}-checkpoint flow, plain loop (total)", ms(f["seconds"]["plain"]),
                     "", "", ""))
        rows.append(("(a) floor-normal: WAL insert+commit, synchronous=NORMAL", ms(per["floor-normal"]),
                     "1.00x", "", ""))
        rows.append(("(a) floor-full: WAL insert+commit, synchronous=FULL", ms(per["floor-full"]),
                     "1.00x", "", ""))
        for mode in ("kitaru-default", "kitaru-strict"):
            rows.append((f"(a) {mode} overhead per checkpoint", ms(per[mode]),
                         f"{ratio[mode]:.2f}x {f['floors'][mode]}", f["targets"][mode], ok(met[mode])))
        if "cpu" in f:
            cpu = f["cpu"]
            rows.append(("(a) CPU time: floor-normal, per step", ms(cpu["per_checkpoint_s"]["floor-normal"]),
                         "1.00x", "", ""))
            rows.append(("(a) CPU time: kitaru-default, per checkpoint",
                         ms(cpu["per_checkpoint_s"]["kitaru-default"]),
                         f"{cpu['ratio_to_floor']['kitaru-default']:.2f}x floor-normal", "reported", ""))
    if "resume" in figs:
        f = figs["resume"]
        per, n = f["per_checkpoint_s"], f["n"]
        rows.append((f"(b) live run of the {n}-checkpoint flow, per checkpoint", ms(per["live-run"]),
                     "", "", ""))
        rows.append((f"(b) resume, {n} recorded checkpoints (total)", ms(f["seconds"]["resume_s"]),
                     "", "", ""))
        rows.append(("(b) resume per recorded checkpoint", ms(per["resume"]),
                     f"{f['ratio_resume_to_live']:.3f}x live run", f["target"], ok(f["met"])))
    if "startup" in figs:
        f = figs["startup"]
        sec, over = f["seconds"], f["over_bare_python_s"]
        bare = sec["python -c pass"]
        rows.append(("(c) python -c pass", ms(sec["python -c pass"]), "1.00x", "", ""))
        for name in ("import kitaru", "kitaru --help"):
            rows.append((f"(c) {name} (+{over[name] * 1e3:.1f} ms over bare python)", ms(sec[name]),
                         f"{sec[name] / bare:.2f}x", f["targets"][name], ok(f["met"][name])))
        heavy = f["heavy_modules_after_import_kitaru"]
        rows.append(("(c) heavy modules loaded by `import kitaru`", ", ".join(heavy) or "none",
                     "", "none", ok(not heavy)))
    if "memory" in figs:
        f = figs["memory"]
        rss = f["peak_rss_mb"]
        bare = rss["python -c pass"]
        for name, value in rss.items():
            is_flow = name.endswith("flow")
            rows.append((f"(d) peak RSS, {name}", f"{value:.1f} MB", f"{value / bare:.2f}x",
                         f["target"] if is_flow else "", ok(f["met"]) if is_flow else ""))

    if "adapter" in figs:
        f = figs["adapter"]
        bare_req, bare_turn = f["bare_per_model_request_s"], f["bare_per_tool_turn_s"]
        rows.append(("(e) bare agent, per one-request run (FunctionModel)", ms(bare_req), "", "", ""))
        rows.append(("(e) KitaruAgent overhead per model request (and run)", ms(f["per_model_request_s"]),
                     f"{f['per_model_request_s'] / bare_req:.2f}x bare", "reported", ""))
        rows.append(("(e) bare agent, per extra tool-call turn", ms(bare_turn), "", "", ""))
        rows.append(("(e) KitaruAgent overhead per tool-call turn", ms(f["per_tool_call_s"]),
                     f"{f['per_tool_call_s'] / bare_turn:.2f}x bare", "reported", ""))
    if "peers" in figs:
        f = figs["peers"]
        per, ver = f["per_step_s"], f["versions"]
        what = {"kitaru": "local stack", "dbos": "SQLite", "prefect": "ephemeral server, SQLite"}
        for system in peers.SYSTEMS:
            rows.append((f"(g) {system} {ver[system]} ({what[system]}), per step of {f['steps']}",
                         ms(per[system]), f"{f['ratio_to_kitaru'][system]:.1f}x kitaru", "", ""))
    if "managed" in figs:
        f = figs["managed"]
        for name, t in f["targets"].items():
            rows.append((f"(h) {name}: per-call overhead of its client code (double)",
                         ms(t["added_per_call_s"]), f"{t['ratio_to_process']:.2f}x process", "reported", ""))
            if "long_call" in t:
                polls = t["long_call"]
                rows.append((f"(h) {name}: status requests per minute of a long job, after the first",
                             f"{polls['per_minute_after_first']:.1f}", "", "<= 12", ok(polls["met"])))
    header = ("figure", "value", "vs baseline", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += notes
    lines.append("")
    if "peers" in figs:
        lines.append("")
        lines.append(peers_markdown(figs["peers"]))
    m = results["machine"]
    lines.append("")
    lines.append(f"machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, "
                 f"SQLite {m['sqlite']}; run took {results.get('elapsed_s', 0):.0f} s; load average "
                 f"{results.get('load_average_before')} before, {results.get('load_average_after')} after")
    lines.append("Each value is the median of the repeats; every sample is in the JSON file.")
    return "\n".join(lines)


def _load() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "executable": sys.executable,
    }


if __name__ == "__main__":
    sys.exit(main())
