"""`kitaru executions get` for people: the header, the checkpoint calls table, events, waits.

An execution may have tens of thousands of calls. The table shows at most `--calls N`
rows (default `DEFAULT_CALLS`): the calls that did not complete, then the first and the
last ones, with a line where rows are left out, under a summary of every call by status
and checkpoint. `--calls all` shows every row. Above `RICH_MAX_ROWS` rows the table is
printed as aligned plain text: rich measures every cell of a table (about a millisecond a
row), which made 10,000 rows take seconds.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .output import console, duration, table, when
from .previews import call_preview, cut, preview

DEFAULT_CALLS = 50
RICH_MAX_ROWS = 200
_METADATA_CHARS = 60
#: Metadata keys shown elsewhere: model usage (the "model use" line) and child events.
_SHOWN_ELSEWHERE = ("llm_usage",)
_EVENT_PREFIX = "event:"
_OPTIONAL = ("type", "saved")


def parse_calls(text: str) -> int | None:
    """`--calls`: a count of rows, or `all` (None)."""
    from kitaru_core.errors import InvalidValueError

    if text.strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise InvalidValueError(f"--calls {cut(text, 40)!r} is not a count; give a number of rows "
                                "(1 or more) or `all`")
    return count


def render(e: Any, *, calls: int | None, full: bool) -> None:
    """Print execution `e` (a client `Execution`)."""
    out = console()
    out.print(f"[bold]execution[/bold] {e.exec_id}")
    _field(out, "flow", e.flow_name)
    status = e.status.value + ("  (owner gone: resumable with `kitaru executions resume`)"
                               if e.resumable and e.status.value == "running" else "")
    _field(out, "status", status)
    _field(out, "stack", e.stack_name)
    _field(out, "started", when(e.started_at))
    if e.ended_at:
        _field(out, "ended", when(e.ended_at))
    if e.owner:
        _field(out, "owner", e.owner)
    runner = getattr(e, "runner", None)
    if runner and not e.status.is_finished:
        _field(out, "runner", _runner_line(runner))
    if e.original_exec_id:
        _field(out, "replay of", e.original_exec_id)
    if getattr(e, "deployment", None):
        _field(out, "deployed", f"{e.deployment['flow']} v{e.deployment['version']}")
    if getattr(e, "options", None):
        _field(out, "options", ", ".join(f"{k}={v}" for k, v in e.options.items()))
    _value(out, "inputs", e.inputs_artifact, full, as_call=True)
    if e.result_artifact is not None:
        _value(out, "result", e.result_artifact, full)
    flow_metadata = user_metadata(e.metadata)  # its events are listed with the calls' events
    if flow_metadata:
        _field(out, "metadata", _json(flow_metadata, indent=2) if full else preview(flow_metadata))
    if e.usage.get("model_calls"):
        _field(out, "model use", usage_line(e.usage))
    if e.checkpoints:
        _print_calls(out, e.checkpoints, calls, full, e.metadata)
    else:
        _print_events([], e.metadata)
    if e.pending_wait:
        w = e.pending_wait
        schema = (w.schema or {}).get("repr") or "any"
        out.print(f"[bold yellow]pending wait[/bold yellow] {w.name!r}: {w.question or ''} "
                  f"(schema: {schema})", markup=True)
        out.print(f"  answer it: kitaru executions input {e.exec_id} --wait {w.name} --value VALUE",
                  markup=False)
    if e.failure and e.failure.get("resume_failed"):
        _print_resume_failure(out, e.exec_id, e.failure)
    elif e.failure:
        f = e.failure
        out.print(f"[bold red]failure[/bold red] in {f.get('call_id') or 'the flow body'}: ", end="")
        out.print(f"{(f.get('type') or '').rsplit('.', 1)[-1]}: {f.get('message')}", markup=False)
        if f.get("fix"):
            out.print(f"  fix: {f['fix']}", markup=False, soft_wrap=True)


def _runner_line(runner: dict[str, Any]) -> str:
    """The launched runner in one line: which launch, whether it took over, where its log is."""
    parts = [f"launch {runner.get('launches') or 1} ({runner.get('mode') or 'resume'})"]
    if runner.get("relaunches"):
        parts.append(f"relaunched {runner['relaunches']}x by the watchdog")
    parts.append("took over" if runner.get("claimed_at") else "not started yet")
    log = (runner.get("handle") or {}).get("log")
    if log:
        parts.append(f"log: {log}")
    return ", ".join(parts)


def _print_resume_failure(out: Any, exec_id: str, f: dict[str, Any]) -> None:
    """A resume launched in the background could not start the flow: why, where, and the fix."""
    out.print("[bold red]resume failed[/bold red]: ", end="")
    out.print(f"{(f.get('type') or '').rsplit('.', 1)[-1]}: {f.get('message')}", markup=False,
              soft_wrap=True)
    if f.get("log"):
        out.print(f"  runner log: {f['log']}", markup=False, soft_wrap=True)
    fix = f.get("fix") or f"fix the cause, then run `kitaru executions resume {exec_id}`"
    out.print(f"  fix: {fix}", markup=False, soft_wrap=True)


def as_json(e: Any, *, full: bool) -> dict[str, Any]:
    """What `-o json` prints: the whole record, every call; inputs and result as
    `{artifact_id, type_name, size, preview}`, with `value` added by --full."""
    data = e.to_dict()
    for key, artifact, as_call in (("inputs", e.inputs_artifact, True),
                                   ("result", e.result_artifact, False)):
        data.pop(f"{key}_artifact", None)
        data[key] = None if artifact is None else _value_json(artifact, full, as_call)
    return data


def _value_json(artifact: Any, full: bool, as_call: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"artifact_id": artifact.artifact_id, "type_name": artifact.type_name,
                           "size": artifact.size}
    text, value, loaded = _load(artifact, full, as_call)
    out["preview"] = text
    if full and loaded:
        from pydantic_core import to_jsonable_python

        out["value"] = to_jsonable_python(value, fallback=repr)
    return out


def _load(artifact: Any, full: bool, as_call: bool) -> tuple[str, Any, bool]:
    """(preview, value, whether it loaded): large values are not loaded for a preview."""
    from .previews import PREVIEW_MAX_BYTES

    if not full and artifact.size > PREVIEW_MAX_BYTES:
        return f"<{artifact.type_name}, {artifact.size:,} bytes: see it with --full>", None, False
    try:
        value = artifact.load()
    except Exception as exc:  # a value this environment cannot load (its class is not importable)
        return f"<{artifact.type_name}, cannot load here: {type(exc).__name__}: {exc}>", None, False
    return (call_preview(value) if as_call else preview(value)), value, True


def select(calls: list[Any], limit: int | None) -> list[Any]:
    """The calls to show as rows: all of them, or at most `limit`, chosen as above."""
    if limit is None or len(calls) <= limit:
        return list(calls)
    notable = [i for i, c in enumerate(calls) if c.status != "completed"][: limit // 2]
    rest = limit - len(notable)
    head = list(range(rest // 2))
    tail = list(range(len(calls) - (rest - rest // 2), len(calls)))
    return [calls[i] for i in sorted(set(head) | set(notable) | set(tail))]


def summary(calls: list[Any]) -> str:
    """"10,000 checkpoint calls: 9,999 completed, 1 failed; by checkpoint: step 10,000"."""
    statuses = Counter(c.status for c in calls)
    names = Counter(c.name for c in calls)
    top = ", ".join(f"{name} {n:,}" for name, n in names.most_common(5))
    more = f" and {len(names) - 5:,} more" if len(names) > 5 else ""
    return (f"{len(calls):,} checkpoint call{'s' * (len(calls) != 1)}: "
            + ", ".join(f"{n:,} {s}" for s, n in statuses.most_common())
            + f"; by checkpoint: {top}{more}")


def usage_line(usage: dict[str, Any], calls: bool = True) -> str:
    """"3 model calls, 1,200 in / 310 out tokens, ~$0.0021" (a child event: no call count)."""
    parts = [f"{usage['model_calls']} model call{'s' * (usage['model_calls'] != 1)}"] if calls else []
    parts.append(f"{usage.get('input_tokens') or 0:,} in / {usage.get('output_tokens') or 0:,} out tokens")
    cost = usage.get("cost_usd")
    parts.append("cost unknown" if cost is None else f"~${cost:.4f}" if cost >= 0.01 else f"~${cost:.6f}")
    return ", ".join(parts)


def user_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A call's `kitaru.log` entries, without the ones shown elsewhere (usage, events)."""
    return {k: v for k, v in metadata.items()
            if k not in _SHOWN_ELSEWHERE and not k.startswith(_EVENT_PREFIX)}


# -- helpers ---------------------------------------------------------------------------------


def _field(out: Any, label: str, value: Any) -> None:
    text = "" if value is None else str(value)
    if "\n" in text:
        text = text.replace("\n", "\n" + " " * 12)
    out.print(f"  {label:<9} {text}", markup=False, highlight=False, soft_wrap=True)


def _value(out: Any, label: str, artifact: Any, full: bool, as_call: bool = False) -> None:
    """A recorded value: a one-line preview, or (--full) the whole value."""
    if artifact is None:
        return
    text, value, loaded = _load(artifact, full, as_call)
    _field(out, label, _json(value, indent=2) if full and loaded else text)


def _json(value: Any, indent: int | None = None) -> str:
    try:
        return json.dumps(value, indent=indent, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def _print_calls(
    out: Any, calls: list[Any], limit: int | None, full: bool, flow_metadata: dict[str, Any]
) -> None:
    shown = select(calls, limit)
    out.print(summary(calls), markup=False, highlight=False, soft_wrap=True)
    rows: list[list[Any]] = []
    previous = -1
    position = {id(c): i for i, c in enumerate(calls)} if len(shown) < len(calls) else None
    for c in shown:
        if position is not None:
            index = position[id(c)]
            if index > previous + 1:
                rows.append([f"… {index - previous - 1:,} more", "", "", "", "", "", ""])
            previous = index
        rows.append(_call_row(c))
    if position is not None and previous < len(calls) - 1:
        rows.append([f"… {len(calls) - 1 - previous:,} more", "", "", "", "", "", ""])
    columns = ["call", "type", "status", "attempts", "duration", "output", "saved"]
    # Optional columns that no shown row fills are left out: the table stays narrow.
    keep = [i for i, col in enumerate(columns)
            if col not in _OPTIONAL or any(row[i] for row in rows)]
    columns = [columns[i] for i in keep]
    rows = [[row[i] for i in keep] for row in rows]
    _rows(columns, rows, "checkpoint calls",
          no_wrap=("call", "status", "attempts", "duration", "output"))
    if len(shown) < len(calls):
        out.print(f"showing {len(shown):,} of {len(calls):,} calls; every row: --calls all",
                  markup=False, highlight=False)
    _print_metadata(shown, full)
    _print_events(shown, flow_metadata)


def _print_metadata(calls: list[Any], full: bool) -> None:
    """What the shown checkpoints logged with `kitaru.log(...)`: one row per key."""
    rows = [[c.call_id, key, _json(value, indent=2) if full else preview(value, _METADATA_CHARS)]
            for c in calls for key, value in user_metadata(c.metadata).items()]
    _rows(["call", "key", "value"], rows, "metadata logged in checkpoints", no_wrap=("call",))


def _rows(columns: list[str], rows: list[list[Any]], title: str, no_wrap: tuple[str, ...]) -> None:
    if not rows:
        return
    if len(rows) > RICH_MAX_ROWS:
        plain_table(columns, rows, title=title)
    else:
        table(columns, rows, title=title, no_wrap=no_wrap)


def _call_row(c: Any) -> list[Any]:
    outp = c.output
    art = f"{outp.type_name} ({outp.size} B) {outp.artifact_id[:12]}" if outp else ""
    event_parts = tuple(f"{event_id}." for event_id in c.events)  # shown as events below
    saved = [a.name for a in c.artifacts
             if a.direction == "saved" and not a.name.startswith(event_parts)]
    return [c.call_id, c.type or "", c.status, c.attempts, duration(c.duration_s), art,
            ", ".join(dict.fromkeys(saved))]  # a name saved by each attempt: once


def _print_events(calls: list[Any], flow_metadata: dict[str, Any]) -> None:
    """The events recorded inside the shown checkpoints (model and tool calls, progress and
    published events) and in the flow body."""
    from kitaru_core.runtime.events import child_events

    rows = []
    sources = [(c.call_id, c.events) for c in calls] + [("flow", child_events(flow_metadata))]
    for call_id, events in sources:
        for event_id, event in events.items():
            usage = event.get("usage") or {}
            what = event.get("model") or event.get("tool") or event.get("message") or ""
            rows.append([call_id, event_id, event.get("kind", ""), what,
                         usage_line(usage, calls=False) if usage else ""])
    _rows(["call", "event", "kind", "model / tool / message", "usage"], rows,
          "events inside checkpoints and the flow body", no_wrap=("call", "event", "kind"))


def plain_table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """Rows as aligned plain text (fast for any number of rows); cells on one line each."""
    import sys

    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    sys.stdout.write("\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\n", " ")
