"""Operations on executions: start, resume, retry, replay, input, cancel.

The public API, the client and the command line all go through these, so the
rules (who may resume, which states allow what) live in one place.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import (
    ExecutionCancelledError,
    ExecutionOwnedError,
    InvalidStateError,
    KitaruDivergenceError,
    KitaruError,
    ResumeFailedError,
    TaskError,
    WaitInputError,
)
from ..records import ArtifactRecord, ExecutionRecord
from ..status import CallStatus, ExecutionStatus
from .artifacts import new_id, read_value, write_value
from .execution import FlowSuspended, run_flow_body
from .loader import flow_reference, load_flow
from .owner import LEASE_SECONDS, describe_owner, owner_is_alive, self_owner

if TYPE_CHECKING:
    from ..stack import Stack
    from .handover import Handover
    from .specs import FlowSpec

RESUMABLE = (ExecutionStatus.RUNNING.value, ExecutionStatus.WAITING.value)
#: The artifact (direction "input", no call) holding a run's options, when not all default.
OPTIONS_ARTIFACT = "options"
#: Set in a launch's `env` when the run has an `image` option: its ImageSettings fields as JSON.
RUN_IMAGE_ENV = "KITARU_RUN_IMAGE"


def is_resumable(record: ExecutionRecord) -> bool:
    """Waiting, or running with an owner that is gone (dead process or expired lease)."""
    if record.status == ExecutionStatus.WAITING.value:
        return not owner_is_alive(record.owner, record.lease_expires)
    if record.status == ExecutionStatus.RUNNING.value:
        return not owner_is_alive(record.owner, record.lease_expires)
    return False


# -- starting -------------------------------------------------------------------------


def create_execution(
    flow: FlowSpec,
    stack: Stack,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    owner: str | None,
    original_exec_id: str | None = None,
    replay: dict[str, Any] | None = None,
    exec_id: str | None = None,
    flow_ref: dict[str, Any] | None = None,
    recorded: list[ArtifactRecord] | None = None,
) -> ExecutionRecord:
    """Record a new execution with its inputs; `owner` None leaves it for a launcher.

    `flow_ref` says where its code is when not where `flow.fn` was defined (a deployment's
    snapshot, see `kitaru.deploy_snapshot`). `recorded`, if given, receives the artifacts
    recorded with it, its inputs first (for a caller that runs it at once, without reading
    them back)."""
    registry = stack.registry
    exec_id = exec_id or new_id()
    inputs = write_value(
        stack.artifact_store, {"args": list(args), "kwargs": dict(kwargs)}, exec_id=exec_id,
        name="inputs", direction="input", what=f"inputs of flow {flow.name!r}",
        inline_limit=registry.inline_limit,
    )
    artifacts = [inputs]
    options = flow.options()
    if options:  # frozen like the stack: a resume or retry runs with the same options
        artifacts.append(write_value(
            stack.artifact_store, options, exec_id=exec_id, name=OPTIONS_ARTIFACT,
            direction="input", what=f"run options of flow {flow.name!r}",
            inline_limit=registry.inline_limit,
        ))
    now = time.time()
    record = ExecutionRecord(
        exec_id=exec_id, flow_name=flow.name, status=ExecutionStatus.RUNNING.value,
        flow_ref=flow_ref or _flow_ref(flow, stack), stack=stack.spec, inputs_artifact=inputs.artifact_id,
        original_exec_id=original_exec_id, replay=replay, owner=owner,
        lease_expires=now + LEASE_SECONDS if owner else None, created_at=now, started_at=now,
    )
    # One transaction: an execution recorded without its inputs could never be resumed.
    registry.create_execution(record, artifacts)
    if recorded is not None:
        recorded.extend(artifacts)
    return record


def _flow_ref(flow: FlowSpec, stack: Stack) -> dict[str, Any]:
    """Where the flow's code is; for a stack whose runners run elsewhere, also how they get it."""
    ref = flow_reference(flow.fn)
    if stack.orchestrator.locality == "network":
        from .remote_launch import with_code

        ref = with_code(ref, stack)
    return ref


def load_options(record: ExecutionRecord, stack: Stack) -> dict[str, Any]:
    """The run options an execution recorded (`retries`, `cache`, `image`); {} for defaults."""
    found = [a for a in stack.registry.list_artifacts(exec_id=record.exec_id, name=OPTIONS_ARTIFACT)
             if a.call_id is None and a.direction == "input"]
    return dict(read_value(stack.artifact_store, found[-1])) if found else {}


def flow_for_record(record: ExecutionRecord, stack: Stack, flow: FlowSpec | None = None) -> FlowSpec:
    """The flow an execution continues with: its code (imported unless given), with the
    run options the execution recorded rather than the decorator's current ones."""
    flow = flow or load_flow(record.flow_ref)
    return flow.with_options(load_options(record, stack))


def load_inputs(
    record: ExecutionRecord, stack: Stack, inputs: ArtifactRecord | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The flow's arguments as recorded; `inputs` is the record's inputs artifact when the
    caller has just written it (read from it as a resume would, without a registry read)."""
    if record.inputs_artifact is None:
        return (), {}
    art = inputs if inputs is not None else stack.registry.get_artifact(record.inputs_artifact)
    data = read_value(stack.artifact_store, art)
    return tuple(data.get("args", ())), dict(data.get("kwargs", {}))


class InProcessRun:
    """A flow body running in a thread of this process (the local orchestrator's way)."""

    def __init__(
        self, record: ExecutionRecord, stack: Stack, flow: FlowSpec,
        inputs: ArtifactRecord | None = None,
    ) -> None:
        self.record = record
        self.stack = stack
        self.flow = flow
        self.result: Any = None
        self.error: BaseException | None = None
        self.suspended = False
        # Just created here: its inputs are the artifact in hand, and it has no calls or
        # waits yet, so the body starts without reading the record back.
        self._fresh = inputs is not None
        args, kwargs = load_inputs(record, stack, inputs)
        self._thread = threading.Thread(
            target=self._run, args=(args, kwargs), name=f"kitaru-flow-{record.exec_id[:8]}"
        )

    def start(self) -> InProcessRun:
        self._thread.start()
        return self

    def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.result = run_flow_body(
                self.record, self.stack, self.flow, self.record.owner or self_owner(), args, kwargs,
                fresh=self._fresh,
            )
        except FlowSuspended:
            self.suspended = True
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def start_run(
    flow: FlowSpec, stack: Stack, args: tuple[Any, ...], kwargs: dict[str, Any], **extra: Any
) -> tuple[ExecutionRecord, InProcessRun | None]:
    """Create an execution and start its body, here (thread) or through the orchestrator."""
    from . import termination
    from .loader import not_importable_reason

    reason = not_importable_reason(flow.fn)
    if reason is not None:
        import warnings

        from ..errors import ResumeWarning

        warnings.warn(
            f"flow {flow.name!r} was defined {reason}, so another process cannot import it: "
            "this execution can't be resumed after its process ends (a wait that suspends, a "
            "crash). Define the flow in a .py file to make it resumable",
            ResumeWarning, stacklevel=3,
        )
    termination.install()
    orchestrator = stack.orchestrator
    if orchestrator.in_process:
        recorded: list[ArtifactRecord] = []
        record = create_execution(flow, stack, args, kwargs, owner=self_owner(), recorded=recorded,
                                  **extra)
        return record, InProcessRun(record, stack, flow, recorded[0]).start()
    record = create_execution(flow, stack, args, kwargs, owner=None, **extra)
    launch(record, stack, "resume")
    return record, None


# -- resuming ----------------------------------------------------------------------------


def claim(stack: Stack, exec_id: str, *, mode: str = "resume") -> ExecutionRecord:
    """Take ownership of an execution to resume (or retry) it; exactly one claimer wins.

    A claim that loses only to a write that did not take the execution (a launcher
    recording its runner's handle) is tried again on the fresh record.
    """
    from .runners import mark_claimed

    registry = stack.registry
    me = self_owner()
    record = registry.get_execution(exec_id)
    for _ in range(20):
        check_can_resume(record, mode)
        won = registry.claim_execution(
            record.exec_id, owner=me, lease_expires=time.time() + LEASE_SECONDS,
            expected_version=record.version,
        )
        if won:
            claimed = registry.get_execution(record.exec_id)
            if claimed.runner is not None:
                mark_claimed(stack, claimed, me)
                claimed = registry.get_execution(record.exec_id)
            return claimed
        now = registry.get_execution(record.exec_id)
        if now.owner != record.owner or now.status != record.status:
            raise ExecutionOwnedError(
                f"execution {record.exec_id} was claimed by {describe_owner(now.owner)} a moment "
                "ago; it is running there, follow it with `kitaru executions logs --follow`"
            )
        record = now
    raise ExecutionOwnedError(
        f"execution {record.exec_id} changes too often to be claimed; try "
        f"`kitaru executions resume {record.exec_id}` again"
    )


def check_can_resume(record: ExecutionRecord, mode: str) -> None:
    status = record.status
    eid = record.exec_id
    if status == ExecutionStatus.COMPLETED.value:
        raise InvalidStateError(f"execution {eid} is already completed; nothing to resume")
    if status == ExecutionStatus.CANCELLED.value:
        raise InvalidStateError(
            f"execution {eid} was cancelled; start a new run or `kitaru executions replay {eid}`"
        )
    if status == ExecutionStatus.FAILED.value and mode == "resume":
        raise InvalidStateError(
            f"execution {eid} failed; continue it in place with `kitaru executions retry {eid}`"
        )
    if mode == "retry" and status == ExecutionStatus.WAITING.value:
        raise InvalidStateError(
            f"execution {eid} is waiting for input, not failed; answer it with "
            f"`kitaru executions input {eid} ...` or continue with `kitaru executions resume {eid}`"
        )
    if owner_is_alive(record.owner, record.lease_expires):
        until = time.strftime("%H:%M:%S", time.localtime(record.lease_expires or 0))
        raise ExecutionOwnedError(
            f"execution {eid} is owned by {describe_owner(record.owner)} (lease until {until}); "
            "it is still running there. Cancel it with `kitaru executions cancel` first, or "
            "wait for it to finish"
        )


def resume_here(
    stack: Stack, exec_id: str, *, mode: str = "resume", flow: FlowSpec | None = None,
    record_failure: bool = False,
) -> ExecutionRecord:
    """Claim an execution and run its body in this process until it ends or suspends.

    Returns the record as it ended; the flow's own failures are in its `failure`.
    A `KitaruDivergenceError` (the code no longer matches the record) is raised
    after it is recorded: the caller must change the code, not wait for a result.
    The flow is imported before the execution is claimed: when that fails nothing
    changes (`record_failure`: the failure is noted on the execution, for a runner
    launched in the background) and the error is raised.
    """
    before = stack.registry.get_execution(exec_id)
    check_can_resume(before, mode)
    run_stack = stack_for_record(before, stack)
    try:
        flow = flow_for_record(before, run_stack, flow)
        args, kwargs = load_inputs(before, run_stack)
    except BaseException as exc:
        if record_failure:
            from .handover import record_resume_failure

            record_resume_failure(stack, before, exc)
        raise
    record = claim(stack, exec_id, mode=mode)
    try:
        run_flow_body(record, run_stack, flow, record.owner or self_owner(), args, kwargs)
    except FlowSuspended:
        pass
    except ExecutionCancelledError:
        pass
    except KitaruDivergenceError:
        raise
    except Exception:
        pass
    return stack.registry.get_execution(record.exec_id)


def stack_for_record(record: ExecutionRecord, found_in: Stack) -> Stack:
    """The stack an execution continues on: the one frozen into its record.

    Its registry is the one the record was found in (the caller's), so a record
    reached through another stack name sharing that registry still resumes with
    its own orchestrator, execution target, artifact store and durability.
    """
    frozen = record.stack
    if not frozen or frozen == found_in.spec:
        return found_in
    from ..stack import get_stack

    return get_stack(spec={**frozen, "registry": found_in.spec["registry"]},
                     manager=found_in.manager)


def launch(
    record: ExecutionRecord, stack: Stack, mode: str, *, launch_id: str | None = None,
    relaunch: bool = False, expected_version: int | None = None,
) -> dict[str, Any] | None:
    """Resume an execution in the background through its own stack's orchestrator.

    The launch is recorded on the execution (`runners.record_intent`, then the handle);
    a watchdog's `relaunch` passes the `expected_version` it read and launches only if
    that compare-and-set wins (None: another process relaunched it first).
    """
    from .runners import LAUNCH_ID_ENV, record_handle, record_intent

    stack = stack_for_record(record, stack)
    runner = record_intent(stack, record, mode, launch_id=launch_id, relaunch=relaunch,
                           expected_version=expected_version)
    if runner is None:
        return None
    remote = stack.orchestrator.locality == "network"
    if remote:  # no value of this machine: see `remote_launch`
        from .remote_launch import runner_command

        command = runner_command(record, stack, mode)
        env = {"KITARU_INTERACTIVE": "0"}
    else:
        command = [sys.executable, "-m", "kitaru_core.entrypoint", mode, record.exec_id]
        env = {
            "KITARU_HOME": str(stack.home),
            "KITARU_STACK_SPEC": json.dumps(stack.spec),
            "KITARU_INTERACTIVE": "0",
        }
    env[LAUNCH_ID_ENV] = runner["launch"]
    image = load_options(record, stack).get("image")
    if image:  # the run's `image` option, for an orchestrator that starts runners in containers
        env[RUN_IMAGE_ENV] = json.dumps(image)
    handle = stack.orchestrator.launch(
        record.exec_id, command=command, env=env, cwd=None if remote else record.flow_ref.get("cwd")
    ) or {}
    record_handle(stack, record.exec_id, runner["launch"], handle)
    return handle


def resume_background(stack: Stack, exec_id: str, *, mode: str = "resume") -> ExecutionRecord:
    """Launch the execution's runner in the background; the record once it took over.

    Raises `ResumeFailedError` when the runner could not continue it (its reason and
    log are recorded on the execution too).
    """
    return launch_resume(stack, exec_id, mode=mode).record


def launch_resume(stack: Stack, exec_id: str, *, mode: str = "resume") -> Handover:
    """Check the execution can be resumed, launch its runner, and see that it took over."""
    from .handover import launch_and_confirm

    record = stack.registry.get_execution(exec_id)
    check_can_resume(record, mode)
    done = launch_and_confirm(record, stack, mode, launch)
    if done.outcome == "failed":
        raise resume_failed_error(record.exec_id, done.failure or {}, done.log)
    return done


def resume_failed_error(exec_id: str, failure: dict[str, Any], log: str | None) -> ResumeFailedError:
    kind = (failure.get("type") or "").rsplit(".", 1)[-1]
    where = f"; runner log: {log}" if log else ""
    return ResumeFailedError(
        f"the background resume of execution {exec_id} failed: {kind}: {failure.get('message')}"
        f"{where}. Fix the cause, then run `kitaru executions resume {exec_id}`"
    )


def continued_after_input(stack: Stack, record: ExecutionRecord) -> str | None:
    """Why a `resume` has nothing to do because an input already continued the execution.

    Kitaru 0.21 documents `executions input` followed by `executions resume`; the input
    already resumes, so the second command must be harmless: it reports instead.
    """
    waits = stack.registry.get_waits(record.exec_id)
    if not waits or any(w.status == "pending" for w in waits):
        return None
    if record.status == ExecutionStatus.COMPLETED.value:
        return f"execution {record.exec_id} already completed after its input; nothing to resume"
    if record.status in RESUMABLE and owner_is_alive(record.owner, record.lease_expires):
        return (f"execution {record.exec_id} already continues after its input, in "
                f"{describe_owner(record.owner)}; follow it with "
                f"`kitaru executions logs {record.exec_id} --follow`")
    return None


# -- waits ---------------------------------------------------------------------------------


def answer(
    stack: Stack, exec_id: str, wait_name: str | None, value: Any, *, abort: bool = False
) -> tuple[ExecutionRecord, str]:
    """Validate and record an input for a pending wait; (record, the wait's full name).
    `abort` records the wait as aborted instead (its `wait()` raises `WaitAbortedError`)."""
    from .waits import ABORTED, validate_input

    registry = stack.registry
    record = registry.get_execution(exec_id)
    if record.status in (ExecutionStatus.CANCELLED.value, ExecutionStatus.COMPLETED.value):
        raise InvalidStateError(
            f"execution {record.exec_id} is {record.status}; its waits take no more input. "
            f"Start a new run or `kitaru executions replay {record.exec_id}`"
        )
    pending = [w for w in registry.get_waits(record.exec_id) if w.status == "pending"]
    if not pending:
        raise WaitInputError(f"execution {record.exec_id} has no pending wait")
    if wait_name is None:
        if len(pending) > 1:
            names = ", ".join(w.name for w in pending)
            raise WaitInputError(f"execution {record.exec_id} has several pending waits ({names}); "
                                 "name one with --wait")
        wait = pending[0]
    else:
        matches = [w for w in pending if w.name == wait_name] or [
            w for w in pending if w.name.split("#")[0] == wait_name
        ]
        if not matches:
            names = ", ".join(w.name for w in pending)
            raise WaitInputError(
                f"execution {record.exec_id} has no pending wait {wait_name!r}; pending: {names}"
            )
        wait = matches[0]
    stored = ABORTED if abort else validate_input(wait, value)
    if not registry.answer_wait(record.exec_id, wait.name, stored):
        raise WaitInputError(f"wait {wait.name!r} of execution {record.exec_id} was answered already")
    return record, wait.name


def give_input(
    stack: Stack, exec_id: str, wait_name: str | None, value: Any, *, resume: bool = True,
    abort: bool = False,
) -> tuple[str, Handover]:
    """Answer a pending wait and see that the execution continues (unless `resume` is False).

    The runner polling the wait takes the answer; if there is none (it suspended, or
    its process died), a resume is launched and confirmed (see `handover.after_input`).
    """
    from .handover import Handover, after_input

    record, name = answer(stack, exec_id, wait_name, value, abort=abort)
    if not resume:
        return name, Handover("left", stack.registry.get_execution(record.exec_id))
    return name, after_input(stack, record.exec_id)


def provide_input(
    stack: Stack, exec_id: str, wait_name: str | None, value: Any, *, resume: bool = True
) -> tuple[ExecutionRecord, str, bool]:
    """Answer a pending wait; returns (record, wait name, whether a resume was launched)."""
    name, done = give_input(stack, exec_id, wait_name, value, resume=resume)
    return done.record, name, done.launched


# -- replay -----------------------------------------------------------------------------------


def replay(
    stack: Stack,
    exec_id: str,
    *,
    at: str,
    flow: FlowSpec | None = None,
    checkpoint_overrides: dict[str, dict[str, Any]] | None = None,
    flow_overrides: dict[str, Any] | None = None,
    background: bool = False,
) -> tuple[ExecutionRecord, InProcessRun | None]:
    """A new execution linked to `exec_id`: steps before `at` reuse its outputs."""
    registry = stack.registry
    original = registry.get_execution(exec_id)
    # Given a flow, its (resolved) options; else the original's recorded ones.
    flow = flow or flow_for_record(original, stack)
    if flow.name != original.flow_name:
        raise KitaruError(
            f"execution {original.exec_id} is a run of flow {original.flow_name!r}, not "
            f"{flow.name!r}; replay it with that flow (or `kitaru executions replay`)"
        )
    calls = registry.get_calls(original.exec_id)
    waits = registry.get_waits(original.exec_id)
    at_seq = _resolve_at(original.exec_id, at, calls, waits)
    names = {c.name for c in calls} | {c.call_id for c in calls}
    # Check every argument before writing anything, so bad input leaves no trace.
    for target, spec in (checkpoint_overrides or {}).items():
        if target not in names:
            raise KitaruError(
                f"checkpoint override {target!r} names no checkpoint of execution "
                f"{original.exec_id}; its checkpoints: {', '.join(sorted({c.name for c in calls}))}"
            )
        if not isinstance(spec, dict) or set(spec) != {"output"}:
            raise KitaruError(
                f"checkpoint override for {target!r} must be {{'output': value}} (got {spec!r})"
            )
    args, kwargs = load_inputs(original, stack)
    if flow_overrides:
        args, kwargs = _apply_flow_overrides(flow, args, kwargs, flow_overrides)
    # Override values belong to the new execution (it is the one that uses them).
    new_exec_id = new_id()
    override_arts = {
        target: write_value(
            stack.artifact_store, spec["output"], exec_id=new_exec_id,
            name=f"override:{target}", direction="input", what=f"override of {target!r}",
            inline_limit=registry.inline_limit,
        )
        for target, spec in (checkpoint_overrides or {}).items()
    }
    if override_arts:
        registry.add_artifacts(list(override_arts.values()))
    overrides = {target: art.artifact_id for target, art in override_arts.items()}
    plan = {"source": original.exec_id, "at": at, "at_seq": at_seq,
            "checkpoint_overrides": overrides}
    if background or not stack.orchestrator.in_process:
        record = create_execution(flow, stack, args, kwargs, owner=None,
                                  original_exec_id=original.exec_id, replay=plan,
                                  exec_id=new_exec_id)
        launch(record, stack, "resume")
        return record, None
    return start_run(flow, stack, args, kwargs, original_exec_id=original.exec_id, replay=plan,
                     exec_id=new_exec_id)


def _resolve_at(exec_id: str, at: str, calls: list[Any], waits: list[Any]) -> int:
    for c in calls:
        if c.call_id == at:
            return c.seq
    by_name = sorted(c.seq for c in calls if c.name == at)
    if by_name:
        return by_name[0]
    for w in waits:
        if w.name == at:
            return w.seq
    known = ", ".join(dict.fromkeys(c.call_id for c in sorted(calls, key=lambda c: c.seq)))
    raise KitaruError(
        f"--at {at!r} names no checkpoint call of execution {exec_id}; its calls: {known or 'none'}"
    )


def _apply_flow_overrides(
    flow: FlowSpec, args: tuple[Any, ...], kwargs: dict[str, Any], overrides: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import inspect

    sig = inspect.signature(flow.fn)
    unknown = [k for k in overrides if k not in sig.parameters]
    if unknown:
        raise KitaruError(
            f"flow override {unknown[0]!r} is not a parameter of flow {flow.name!r}; its "
            f"parameters: {', '.join(sig.parameters)}"
        )
    bound = sig.bind_partial(*args, **kwargs)
    bound.arguments.update(overrides)
    return tuple(bound.args), dict(bound.kwargs)


# -- cancel ------------------------------------------------------------------------------------


def cancel(stack: Stack, exec_id: str) -> ExecutionRecord:
    """Mark a running or waiting execution cancelled; its runner stops at the next step."""
    registry = stack.registry
    record = registry.get_execution(exec_id)
    if record.status not in RESUMABLE:
        raise InvalidStateError(
            f"execution {record.exec_id} is {record.status}; only running or waiting executions "
            "can be cancelled"
        )
    ok = registry.update_execution(
        record.exec_id,
        {"status": ExecutionStatus.CANCELLED.value, "ended_at": time.time()},
        statuses=RESUMABLE,
    )
    if not ok:
        return cancel(stack, exec_id)
    stop_remote_work(stack_for_record(record, stack), record.exec_id)
    return registry.get_execution(record.exec_id)


def stop_remote_work(stack: Stack, exec_id: str) -> None:
    """Cancel, through their components, the isolated tasks of an execution's running calls
    and its launched runner, so that cancelled work stops (and stops billing).

    The runner is stopped through the orchestrator that launched it (the `local` one
    signals its process, after checking it is still that process); a process the user
    started (`flow.run()`, a foreground resume) is never signalled: it notices the
    cancel at its next step. Cancelling twice is harmless. Raises `TaskError` naming
    what could not be stopped.
    """
    problems: list[str] = []
    registry = stack.registry
    calls = [c for c in registry.get_calls(exec_id)
             if c.status == CallStatus.RUNNING.value and c.task and c.task.get("handle")]
    if calls:
        target = stack.execution_target
        for call in calls:
            try:
                target.cancel(call.task["handle"])
            except Exception as exc:
                problems.append(f"task {call.task.get('name') or call.call_id}: {exc}")
    handle = (registry.get_execution(exec_id).runner or {}).get("handle")
    if handle:
        try:
            stack.orchestrator.cancel(handle)
        except Exception as exc:
            problems.append(f"runner: {exc}")
    if problems:
        raise TaskError(
            f"execution {exec_id} is cancelled, but some of its work could not be stopped ("
            + "; ".join(problems) + "); stop it on the execution target / orchestrator"
        )


def environment_stack() -> Stack:
    """The stack a launched runner was told to use (KITARU_STACK_SPEC), else the active one."""
    from ..stack import get_stack

    raw = os.environ.get("KITARU_STACK_SPEC")
    return get_stack(spec=json.loads(raw)) if raw else get_stack()
