"""`kitaru executions diff A B` and `kitaru executions diff-matrix A B C...`."""

from __future__ import annotations

from typing import Any

import typer

from .output import Format, OutputOption, console, print_json, short_id, table

_MARK = {"same": "=", "changed": "changed", "only_in_a": "only in A", "only_in_b": "only in B"}
_CELL = {"base": "base", "same": "=", "changed": "changed", "missing": "-", "added": "added"}


def diff(
    a: str = typer.Argument(..., help="Execution A (id or unique prefix), e.g. the original."),
    b: str = typer.Argument(..., help="Execution B, e.g. a replay of A."),
    stat: bool = typer.Option(False, "--stat", help="Only the status per checkpoint, no diffs."),
    all_calls: bool = typer.Option(False, "--all", help="Also list the checkpoints that are the same."),
    context: int = typer.Option(3, "--context", "-U", min=0, help="Lines of context around changes."),
    max_lines: int = typer.Option(500, "--max-lines", min=1, help="Lines kept of each artifact's diff."),
    output: Format = OutputOption,
) -> None:
    """Which checkpoints of A and B differ, with a unified diff of each changed artifact."""
    from kitaru.client import KitaruClient

    result = KitaruClient().executions.diff(a, b, context=context, max_lines=max_lines)
    if output == Format.json:
        print_json(result.to_dict())
        return
    _print_diff(result, stat=stat, all_calls=all_calls)


def _print_diff(d: Any, *, stat: bool, all_calls: bool) -> None:
    out = console()
    replay = " (B replays A)" if d.replay else ""
    typer.echo(f"A {short_id(d.a)}  {d.a_flow}  {d.a_status}")
    typer.echo(f"B {short_id(d.b)}  {d.b_flow}  {d.b_status}{replay}")
    shown = [c for c in d.checkpoints if all_calls or c.status != "same"]
    if shown:
        table(["checkpoint", "status", "A", "B", "artifacts that differ"],
              [[c.call_id, _MARK[c.status], c.a_status or "", c.b_status or "",
                ", ".join(x.label for x in c.artifacts if x.status != "same")] for c in shown],
              no_wrap=("status",))
    for what in (d.inputs, d.result, *d.waits):
        if what is not None and what.status != "same":
            typer.echo(f"flow {what.label}: {_MARK[what.status]}")
    if not stat:
        for art in [x for c in shown for x in c.artifacts] + [d.inputs, d.result, *d.waits]:
            if art is not None and art.diff:
                out.print(art.diff, markup=False, highlight=False)
                if art.truncated:
                    typer.echo("(diff cut: --max-lines shows more)")
            elif art is not None and art.status == "changed" and art.kind in ("binary", "too_large"):
                typer.echo(f"{art.label}: {art.kind} content differs ({art.a_size} -> {art.b_size} bytes)")
    s = d.summary
    first = f"; first difference: {d.first_difference}" if d.first_difference else ""
    typer.echo(f"{s['same']} same, {s['changed']} changed, {s['only_in_a']} only in A, "
               f"{s['only_in_b']} only in B{first}" + (" (identical)" if d.identical else ""))
    usage = _usage_line(d.usage)
    if usage:
        typer.echo(usage)


def _usage_line(u: dict[str, Any]) -> str:
    parts = []
    if u.get("token_delta") is not None:
        parts.append(f"tokens {u['token_delta']:+d}")
    if u.get("cost_delta_usd") is not None:
        parts.append(f"cost {u['cost_delta_usd']:+.6f} USD")
    return "B - A: " + ", ".join(parts) if parts else ""


def diff_matrix(
    exec_ids: list[str] = typer.Argument(
        ..., help="Executions; the first is the baseline. One id alone: it and its replays."),
    output: Format = OutputOption,
) -> None:
    """Several executions against the first, checkpoint by checkpoint (= same, changed, - missing)."""
    from kitaru.client import KitaruClient

    result = KitaruClient().executions.diff_matrix(exec_ids)
    if output == Format.json:
        print_json(result.to_dict())
        return
    ids = result.exec_ids
    table(["checkpoint", *(short_id(i) for i in ids)],
          [[r.call_id, *(_CELL[r.cells[i]] for i in ids)] for r in result.rows])
    for p in result.pairs:
        typer.echo(f"{short_id(p['a'])} vs {short_id(p['b'])}: {p['same']} same, {p['changed']} "
                   f"changed, {p['only_in_a']} only in the first, {p['only_in_b']} only in the second")
