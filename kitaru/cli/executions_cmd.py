"""`kitaru executions ...`: list, inspect, answer, resume, retry, replay and cancel."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from .execution_view import DEFAULT_CALLS
from .output import (
    Format,
    OutputOption,
    duration,
    print_json,
    short_id,
    table,
    when,
)
from .values import parse_assignments, parse_value

app = typer.Typer(help="Inspect and operate executions.", no_args_is_help=True)


def _client() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient()


@app.command("list")
def list_executions(
    flow: str = typer.Option(None, "--flow", help="Only executions of this flow."),
    status: str = typer.Option(
        None, "--status", help="running, waiting, completed, failed or cancelled."
    ),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many (newest first)."),
    output: Format = OutputOption,
) -> None:
    """List executions, newest first."""
    from kitaru_core.errors import ConfigError, InvalidValueError
    from kitaru_core.status import ExecutionStatus

    if limit < 1:
        raise InvalidValueError(f"--limit {limit} is not a count; give 1 or more")
    if status is not None and status not in {s.value for s in ExecutionStatus}:
        raise ConfigError(
            f"--status {status!r} is not a status; use one of "
            + ", ".join(s.value for s in ExecutionStatus)
        )
    found = _client().executions.list(flow=flow, status=status, limit=limit)
    if output == Format.json:
        print_json([e.to_summary_dict() for e in found])
        return
    table(
        ["id", "flow", "status", "started", "took", "note"],
        [[short_id(e.exec_id), e.flow_name, e.status.value, when(e.started_at), _took(e), _note(e)]
         for e in found],
        no_wrap=("id", "status", "started", "took"),
    )


def _took(e: Any) -> str:
    if e.started_at is None or e.ended_at is None:
        return ""
    return duration((e.ended_at - e.started_at).total_seconds())


def _note(e: Any) -> str:
    if e.pending_wait is not None:
        from kitaru_core.ids import quoted

        return f"wait {quoted(e.pending_wait.name)}"
    if e.resumable and e.status.value == "running":
        return "owner gone: resumable"
    if e.original_exec_id:
        return f"replay of {short_id(e.original_exec_id)}"
    if e.failure and e.failure.get("resume_failed"):
        return "resume failed: see `executions get`"
    if e.failure:
        return (e.failure.get("type") or "").rsplit(".", 1)[-1]
    return ""


@app.command("get")
def get(
    exec_id: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    calls: str = typer.Option(
        str(DEFAULT_CALLS), "--calls",
        help="Rows of the checkpoint calls table: a number, or `all`. Calls that did not "
             "complete come first, then the first and last ones; a summary counts them all.",
    ),
    full: bool = typer.Option(False, "--full",
                              help="Whole values (inputs, result, metadata) instead of previews."),
    output: Format = OutputOption,
) -> None:
    """Show an execution: inputs, result, checkpoint calls, metadata, pending wait, failure."""
    from . import execution_view

    limit = execution_view.parse_calls(calls)
    e = _client().executions.get(exec_id)
    if output == Format.json:
        print_json(execution_view.as_json(e, full=full))
        return
    execution_view.render(e, calls=limit, full=full)


@app.command("logs")
def logs(
    exec_id: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    checkpoint: str = typer.Option(None, "--checkpoint", "-c",
                                   help="Only this checkpoint (a name or a call id)."),
    follow: bool = typer.Option(False, "--follow", "-f",
                                help="Keep printing new output and events until the execution ends."),
    output: Format = OutputOption,
) -> None:
    """Print captured stdout, stderr and logging output of an execution's checkpoints, and
    their events (`kitaru.progress`, `kitaru.events.publish`, model and tool calls)."""
    from kitaru.event_feed import EventFeed, matching

    client = _client()
    entries = client.executions.logs(exec_id, checkpoint=checkpoint)
    if output == Format.json and not follow:
        print_json([e.to_dict() for e in entries])
        return
    full_id = client._stack.registry.get_execution(exec_id).exec_id
    feed = EventFeed(client._stack, full_id)
    _print_logs(entries, matching(feed.poll(), checkpoint=checkpoint), output)
    if not follow:
        return
    from kitaru_core.status import ExecutionStatus

    last = entries[-1].seq if entries else 0
    while True:
        status = client._stack.registry.get_execution(full_id).status
        new = client.executions.logs(full_id, checkpoint=checkpoint, after=last)
        events = matching(feed.poll(), checkpoint=checkpoint)
        _print_logs(new, events, output)
        if new:
            last = new[-1].seq
        elif not events and (ExecutionStatus(status).is_finished
                             or status == ExecutionStatus.WAITING.value):
            break
        time.sleep(0.5)


def _print_logs(entries: list[Any], events: list[Any], output: Format) -> None:
    """Output chunks and events in time order (an event as one line, or `{"event": ...}`)."""
    import json

    from kitaru.event_feed import event_line

    stamped = [(e.created_at.timestamp() if e.created_at else 0.0, 0, e) for e in entries]
    stamped += [(ev.at.timestamp() if ev.at else 0.0, 1, ev) for ev in events]
    for _, is_event, item in sorted(stamped, key=lambda t: (t[0], t[1])):
        if output == Format.json:
            line = {"event": item.to_dict()} if is_event else item.to_dict()
            sys.stdout.write(json.dumps(line, default=str) + "\n")
            continue
        if is_event:
            sys.stdout.write(f"[{item.checkpoint_id or 'flow'}] * {event_line(item)}\n")
            continue
        prefix = f"[{item.call_id or 'flow'}] "
        for line in item.text.splitlines():
            sys.stdout.write(prefix + line + "\n")
    sys.stdout.flush()


@app.command("input")
def give_input(
    exec_id: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    wait: str = typer.Option(None, "--wait", "-w", help="The wait's name (optional if only one)."),
    value: str = typer.Option(
        None, "--value", "-v",
        help="The input as JSON (true, 3, '{\"a\": 1}'); text that is not JSON is a string.",
    ),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="Resume the execution in the background (default)."),
    output: Format = OutputOption,
) -> None:
    """Answer a pending wait; the value is validated against the wait's schema.

    The execution then continues: the process polling the wait takes the input, or,
    if none does (it suspended, or died), a resume is launched in the background.
    """
    from kitaru_core.runtime import service

    client = _client()
    parsed = None if value is None else parse_value(value, "--value")
    name, done = service.give_input(client._stack, exec_id, wait, parsed, resume=resume)
    record = done.record
    if output == Format.json:
        print_json({"exec_id": record.exec_id, "wait": name, "value": parsed,
                    "resumed": done.launched, "continued": done.outcome, "status": record.status,
                    "owner": record.owner, "log": done.log,
                    "resume_error": (done.failure or {}).get("message")})
        return
    typer.echo(f"recorded input for wait {name!r} of {record.exec_id}")
    follow = f"follow with `kitaru executions logs {record.exec_id} --follow`"
    if done.outcome == "runner" and record.status in ("completed", "failed", "cancelled"):
        typer.echo(f"the runner holding it ({done.owner}) took it; the execution is {record.status}")
    elif done.outcome == "runner":
        typer.echo(f"the runner holding it ({done.owner}) took it and continues by itself; {follow}")
    elif done.outcome == "resumed":
        typer.echo(f"resuming in the background; {follow}")
    elif done.outcome == "launched":
        typer.echo(f"resume launched in the background (not started yet); {follow}"
                   + (f"; its output: {done.log}" if done.log else ""))
    elif done.outcome == "failed":
        typer.echo(str(service.resume_failed_error(record.exec_id, done.failure or {}, done.log))
                   + ". The input stays recorded.", err=True)
    elif done.outcome == "held":
        until = time.strftime("%H:%M:%S", time.localtime(record.lease_expires or 0))
        typer.echo(f"the runner holding it ({done.owner}) takes it if it is alive; if it is gone, "
                   f"run `kitaru executions resume {record.exec_id}` after its lease ends ({until})")
    elif done.outcome == "ended":
        typer.echo(f"the execution is {record.status}")
    else:
        typer.echo(f"continue later with `kitaru executions resume {record.exec_id}`")


def _continue(exec_id: str, mode: str, background: bool, output: Format) -> None:
    from kitaru_core.runtime import service

    client = _client()
    stack = client._stack
    if mode == "resume":
        current = stack.registry.get_execution(exec_id)
        note = service.continued_after_input(stack, current)
        if note is not None:
            if output == Format.json:
                print_json({"exec_id": current.exec_id, "status": current.status,
                            "launched": False, "note": note})
            else:
                typer.echo(note)
            return
    if background:
        done = service.launch_resume(stack, exec_id, mode=mode)
        record = done.record
        if output == Format.json:
            print_json({"exec_id": record.exec_id, "launched": True,
                        "started": done.outcome == "resumed", "status": record.status,
                        "log": done.log})
        elif done.outcome == "resumed":
            typer.echo(f"{mode} of {record.exec_id} started in the background; follow with "
                       f"`kitaru executions logs {record.exec_id} --follow`")
        else:
            typer.echo(f"{mode} of {record.exec_id} launched in the background, not started yet"
                       + (f"; its output: {done.log}" if done.log else ""))
        return
    record = service.resume_here(stack, exec_id, mode=mode)
    if output == Format.json:
        print_json({"exec_id": record.exec_id, "status": record.status,
                    "failure": record.failure})
    else:
        typer.echo(f"execution {record.exec_id} is {record.status}")
        if record.failure:
            f = record.failure
            typer.echo(f"failure in {f.get('call_id') or 'the flow body'}: "
                       f"{(f.get('type') or '').rsplit('.', 1)[-1]}: {f.get('message')}", err=True)
    if record.status == "failed":
        raise typer.Exit(1)


@app.command("abort-wait")
def abort_wait(
    exec_id: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    wait: str = typer.Option(..., "--wait", "-w", help="The pending wait's name."),
    output: Format = OutputOption,
) -> None:
    """Abort a pending wait without an input (the execution is not cancelled).

    The flow's `wait()` raises `kitaru.errors.WaitAbortedError`: a flow that catches it goes
    on without the input, else the execution fails. It continues as after an input.
    """
    from kitaru_core.runtime import service

    name, done = service.give_input(_client()._stack, exec_id, wait, None, abort=True)
    record = done.record
    if output == Format.json:
        print_json({"exec_id": record.exec_id, "wait": name, "aborted": True,
                    "continued": done.outcome, "status": record.status})
        return
    typer.echo(f"aborted wait {name!r} of {record.exec_id}; the execution continues "
               f"({done.outcome}); follow with `kitaru executions logs {record.exec_id} --follow`")

@app.command("resume")
def resume(
    exec_id: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    background: bool = typer.Option(False, "--background", "-b",
                                    help="Launch through the orchestrator and return."),
    output: Format = OutputOption,
) -> None:
    """Continue a waiting execution, or one whose process died; completed calls are reused."""
    _continue(exec_id, "resume", background, output)


@app.command("retry")
def retry(
    exec_id: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    background: bool = typer.Option(False, "--background", "-b",
                                    help="Launch through the orchestrator and return."),
    output: Format = OutputOption,
) -> None:
    """Continue a failed execution in place; completed calls are reused."""
    _continue(exec_id, "retry", background, output)


@app.command("replay")
def replay(
    exec_id: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    at: str = typer.Option(..., "--at", "--from",
                           help="Checkpoint name or call id where live execution starts."),
    checkpoint_override: list[str] = typer.Option(
        None, "--checkpoint-override",
        help="NAME=VALUE: this checkpoint's output, e.g. research='\"fixed notes\"' "
             "(VALUE as for --value; {\"output\": VALUE} means the same).",
    ),
    flow_override: list[str] = typer.Option(
        None, "--flow-override", help="ARG=VALUE: replace this flow input (VALUE as for --value)."
    ),
    background: bool = typer.Option(False, "--background", "-b",
                                    help="Launch through the orchestrator and return."),
    output: Format = OutputOption,
) -> None:
    """Start a new execution linked to this one: calls before --at reuse its outputs.

    Each VALUE is JSON; text that is not JSON is a string (see `kitaru executions input`).
    """
    from kitaru_core.runtime import service

    client = _client()
    overrides = {k: _override(v) for k, v in
                 parse_assignments(checkpoint_override, "--checkpoint-override").items()}
    record, run = service.replay(
        client._stack, exec_id, at=at, checkpoint_overrides=overrides or None,
        flow_overrides=parse_assignments(flow_override, "--flow-override") or None,
        background=background,
    )
    if run is not None:
        run.join()
    final = client._stack.registry.get_execution(record.exec_id)
    if output == Format.json:
        print_json({"original_exec_id": final.original_exec_id, "replay_exec_id": final.exec_id,
                    "status": final.status, "failure": final.failure})
    else:
        typer.echo(f"replay {final.exec_id} of {final.original_exec_id}: {final.status}")
    if final.status == "failed":
        raise typer.Exit(1)


def _override(value: Any) -> dict[str, Any]:
    """`--checkpoint-override NAME=VALUE` in the Python API's form, `{"output": VALUE}`.

    VALUE already in that form (`{"output": ...}`, nothing else) is taken as the wrapper,
    never stored literally; an output that is itself such a dict is wrapped once more.
    """
    if isinstance(value, dict) and set(value) == {"output"}:
        return value
    return {"output": value}


@app.command("cancel")
def cancel(exec_id: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
           output: Format = OutputOption) -> None:
    """Cancel a running or waiting execution.

    Its isolated tasks and a runner the orchestrator launched are stopped at once (a
    background runner on this machine is signalled and records the cancel); a process
    you started yourself (`flow.run()`) stops at its next step.
    """
    e = _client().executions.cancel(exec_id)
    if output == Format.json:
        print_json({"exec_id": e.exec_id, "status": e.status.value})
        return
    typer.echo(f"execution {e.exec_id} cancelled")


@app.command("recover")
def recover(
    exec_id: str = typer.Argument(None, help="Execution id (or a unique prefix)."),
    every: bool = typer.Option(False, "--all", help="Every running or waiting execution."),
    output: Format = OutputOption,
) -> None:
    """Relaunch executions whose launched runner is gone; fail them after a few tries.

    An execution that is running, or waiting with its input given, whose runner the
    orchestrator reports ended or lost (or not started within KITARU_RUNNER_START_GRACE
    seconds) while no live process holds it, is relaunched; after
    KITARU_RUNNER_RELAUNCHES relaunches (default 3) it is marked failed with the reason
    and the runner's log. `executions list` and `get` do the same for what they show.
    """
    from kitaru_core.errors import InvalidValueError

    if (exec_id is None) == (not every):
        raise InvalidValueError("name one execution, or give --all (not both)")
    found = _client().executions.recover(exec_id)
    if output == Format.json:
        print_json([c.to_dict() for c in found])
    elif not found:
        typer.echo("no running or waiting execution has a launched runner that is gone")
    else:
        for c in found:
            typer.echo(f"{c.exec_id}: {_recovery_line(c)}")
    if any(c.action == "error" for c in found):
        raise typer.Exit(1)


def _recovery_line(c: Any) -> str:
    if c.action == "relaunched":
        return (f"{c.reason}; relaunched (relaunch {c.relaunches})"
                + (f"; its output: {c.log}" if c.log else ""))
    if c.action == "failed":
        return f"marked failed: {c.reason}"
    if c.action == "error":
        return f"could not act: {c.reason}"
    return f"nothing to do: {c.reason}"
