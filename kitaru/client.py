"""`KitaruClient`: inspect and operate executions and artifacts from Python."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from kitaru_core.errors import InvalidStateError, InvalidValueError
from kitaru_core.ids import quoted
from kitaru_core.records import ArtifactRecord, CallRecord, ExecutionRecord, WaitRecord
from kitaru_core.runtime import housekeeping, service, watchdog
from kitaru_core.runtime.artifacts import read_bytes, read_value
from kitaru_core.runtime.housekeeping import DeleteResult, GcReport, HealthReport
from kitaru_core.runtime.owner import describe_owner
from kitaru_core.runtime.watchdog import RunnerCheck
from kitaru_core.stack import Stack, get_stack, resolve_stack_name
from kitaru_core.status import ExecutionStatus

from .event_feed import EventFeed, ExecutionEvent, matching
from .usage import totals, usages_in

if TYPE_CHECKING:
    from .deployments import DeploymentsAPI
    from .diffs import DiffMatrix, ExecutionDiff
    from .memory import MemoryAPI
    from .secrets import SecretsAPI
    from .statistics import Statistics

__all__ = [
    "Artifact",
    "CheckpointCall",
    "Execution",
    "ExecutionEvent",
    "ExecutionPage",
    "ExecutionStatus",
    "KitaruClient",
    "LogEntry",
    "PendingWait",
    "ReplayResult",
    "ReplaySubmission",
    "RunnerCheck",
]


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


_FIELDS: dict[type, tuple[str, ...]] = {}


def _public_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls) if not f.name.startswith("_"))
    return names


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(obj: Any) -> Any:
    """`obj` as plain JSON-able data, in one pass: dataclasses (their private fields left
    out, not copied: a built stack), dicts (keys starting with `_` left out), lists, times."""
    # Dispatch on the exact type first: a server answers every read with this walk, and an
    # execution of a few dozen calls is hundreds of values.
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    names = _FIELDS.get(kind)
    if names is not None:
        return {name: v if type(v) in _PLAIN else _jsonable(v)
                for name in names for v in (getattr(obj, name),)}
    if kind is dict:
        return {k: v if type(v) in _PLAIN else _jsonable(v) for k, v in obj.items()
                if not (type(k) is str and k.startswith("_"))}
    if kind is list or kind is tuple:
        return [v if type(v) in _PLAIN else _jsonable(v) for v in obj]
    if isinstance(obj, ExecutionStatus):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()
                if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return {name: _jsonable(getattr(obj, name)) for name in _public_fields(kind)}
    return obj


class _Model:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (what `-o json` prints)."""
        return _jsonable(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)


@dataclass
class Artifact(_Model):
    """A typed, versioned artifact; `.load()` reads its value."""

    artifact_id: str
    name: str
    direction: str
    exec_id: str
    call_id: str | None
    type_name: str
    serializer: str
    size: int
    version: int
    key: str
    created_at: datetime | None
    metadata: dict[str, Any] | None = None
    _stack: Stack | None = field(default=None, repr=False, compare=False)
    _record: ArtifactRecord | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, rec: ArtifactRecord, stack: Stack) -> Artifact:
        return cls(
            artifact_id=rec.artifact_id, name=rec.name, direction=rec.direction,
            exec_id=rec.exec_id, call_id=rec.call_id, type_name=rec.type_name,
            serializer=rec.serializer, size=rec.size, version=rec.version, key=rec.key,
            created_at=_dt(rec.created_at), metadata=rec.metadata, _stack=stack, _record=rec,
        )

    def load(self) -> Any:
        """The artifact's value."""
        assert self._stack is not None and self._record is not None
        return read_value(self._stack.artifact_store, self._record)

    def load_bytes(self) -> bytes:
        """The artifact's serialized bytes, as stored (`serializer` says how to read them)."""
        assert self._stack is not None and self._record is not None
        return read_bytes(self._stack.artifact_store, self._record)



@dataclass
class CheckpointCall(_Model):
    """One checkpoint call of an execution."""

    call_id: str
    name: str
    status: str
    attempts: int
    seq: int
    type: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    error: dict[str, Any] | None
    artifacts: list[Artifact]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Model calls made by this call (its own `llm_usage` and its child events), summed:
    #: {"model_calls", "input_tokens", "output_tokens", "cost_usd"}; None if it made none.
    usage: dict[str, Any] | None = None

    @property
    def output(self) -> Artifact | None:
        return next((a for a in self.artifacts if a.direction == "output"), None)

    @property
    def events(self) -> dict[str, dict[str, Any]]:
        """What happened inside this call (model and tool calls), by event id (`llm_call#1`)."""
        from kitaru_core.runtime.events import child_events

        return child_events(self.metadata)


@dataclass
class PendingWait(_Model):
    """A wait that has no input yet."""

    name: str
    question: str | None
    schema: dict[str, Any] | None
    metadata: dict[str, Any] | None
    created_at: datetime | None
    timeout: float | None

    @classmethod
    def of(cls, w: WaitRecord) -> PendingWait:
        return cls(w.name, w.question, w.schema, w.metadata, _dt(w.created_at), w.timeout)


@dataclass
class Execution(_Model):
    """One execution of a flow, as recorded."""

    exec_id: str
    flow_name: str
    status: ExecutionStatus
    started_at: datetime | None
    ended_at: datetime | None
    checkpoints: list[CheckpointCall]
    pending_wait: PendingWait | None
    failure: dict[str, Any] | None
    original_exec_id: str | None
    stack_name: str | None
    owner: str | None
    resumable: bool
    waits: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Totals over every model call of the execution (checkpoints and child events):
    #: {"model_calls", "input_tokens", "output_tokens", "cost_usd"} (`executions.get` only).
    usage: dict[str, Any] = field(default_factory=dict)
    #: The flow's recorded inputs, `{"args": [...], "kwargs": {...}}` (`executions.get` only).
    inputs_artifact: Artifact | None = None
    #: The flow's return value, once it completed (`executions.get` only).
    result_artifact: Artifact | None = None

    #: What `executions.list` and `.page` leave empty (`executions.get` fills them).
    SUMMARY_OMITS: ClassVar[tuple[str, ...]] = (
        "checkpoints", "waits", "metadata", "usage", "options", "inputs_artifact",
        "result_artifact",
    )

    def to_summary_dict(self) -> dict[str, Any]:
        """`to_dict()` without the fields a listed execution leaves empty (`SUMMARY_OMITS`):
        what `executions list -o json` prints."""
        data = self.to_dict()
        for name in self.SUMMARY_OMITS:
            data.pop(name, None)
        return data

    def load_inputs(self) -> dict[str, Any] | None:
        """The flow's inputs as `{"args": [...], "kwargs": {...}}`; None if not recorded."""
        return None if self.inputs_artifact is None else self.inputs_artifact.load()

    def load_result(self) -> Any:
        """The flow's return value; None until it completed."""
        return None if self.result_artifact is None else self.result_artifact.load()
    #: The run options frozen into the execution when they differ from the defaults:
    #: {"retries": n, "cache": bool, "image": {ImageSettings fields}} (`executions.get` only).
    options: dict[str, Any] = field(default_factory=dict)
    #: The runner an orchestrator launched to continue it, if one is responsible:
    #: {"launch", "handle", "mode", "launched_at", "launches", "relaunches", "claimed_at"}
    #: (see `executions.recover`); None for a run in a process the user started.
    runner: dict[str, Any] | None = None
    #: The deployment version it runs, `{"flow", "version"}`, when it was invoked from one.
    deployment: dict[str, Any] | None = None


@dataclass
class ExecutionPage(_Model):
    """One page of `executions.page(...)`: `next_cursor` fetches the next (None: the last)."""

    items: list[Execution]
    next_cursor: str | None


@dataclass
class LogEntry(_Model):
    """A chunk of captured output."""

    call_id: str | None
    stream: str
    text: str
    created_at: datetime | None
    seq: int


@dataclass
class ReplayResult(_Model):
    original_exec_id: str
    replay_exec_id: str | None
    error: str | None = None


@dataclass
class ReplaySubmission(_Model):
    """What `executions.replay(...)` started: one result per original execution."""

    results: list[ReplayResult]


class ExecutionsAPI:
    """`KitaruClient().executions`."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    @property
    def _stack(self) -> Stack:
        return self._client._stack

    def get(self, exec_id: str) -> Execution:
        """One execution with its checkpoint calls, artifacts and pending wait."""
        stack = self._stack
        reg = stack.registry
        rec = watchdog.watch(stack, [reg.get_execution(exec_id)])[0]
        arts = reg.list_artifacts(exec_id=rec.exec_id)
        by_call: dict[str | None, list[Artifact]] = {}
        by_id: dict[str, Artifact] = {}
        for a in arts:
            art = by_id[a.artifact_id] = Artifact.of(a, stack)
            by_call.setdefault(a.call_id, []).append(art)
        meta_by_call: dict[str | None, dict[str, Any]] = {}
        for m in reg.get_metadata(rec.exec_id):
            meta_by_call.setdefault(m.call_id, {})[m.key] = m.value
        # Each call's (and the flow's) model usages, found once: for its row and for the total.
        usages = {call_id: usages_in(meta) for call_id, meta in meta_by_call.items()}
        calls = [
            _call(c, by_call.get(c.call_id, []), meta_by_call.get(c.call_id, {}),
                  usages.get(c.call_id, ()))
            for c in reg.get_calls(rec.exec_id)
        ]
        waits = reg.get_waits(rec.exec_id)
        pending = next((PendingWait.of(w) for w in waits if w.status == "pending"), None)
        return Execution(
            exec_id=rec.exec_id, flow_name=rec.flow_name, status=ExecutionStatus(rec.status),
            started_at=_dt(rec.started_at), ended_at=_dt(rec.ended_at), checkpoints=calls,
            pending_wait=pending, failure=rec.failure, original_exec_id=rec.original_exec_id,
            stack_name=(rec.stack or {}).get("name"), owner=describe_owner(rec.owner)
            if rec.owner else None, resumable=service.is_resumable(rec),
            waits=[
                {"name": w.name, "status": w.status, "question": w.question, "value": w.value}
                for w in waits
            ],
            metadata=meta_by_call.get(None, {}),
            usage=totals(u for found in usages.values() for u in found),
            options=next((dict(read_value(stack.artifact_store, a)) for a in reversed(arts)
                          if a.name == service.OPTIONS_ARTIFACT and a.call_id is None
                          and a.direction == "input"), {}),
            inputs_artifact=by_id.get(rec.inputs_artifact or ""),
            result_artifact=by_id.get(rec.result_artifact or ""),
            runner=rec.runner, deployment=(rec.flow_ref or {}).get("deployment"),
        )

    def list(
        self, *, flow: str | None = None, status: str | ExecutionStatus | None = None,
        limit: int | None = None,
    ) -> list[Execution]:
        """Executions, newest first, without their checkpoint details (`SUMMARY_OMITS`); each
        `waiting` one with its `pending_wait`. `limit`: at most so many."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidValueError(f"limit={limit!r} is not a count; give 1 or more, or None for all")
        if limit is not None and limit >= 2**63:  # more than any registry holds (and SQL can say)
            limit = None
        status_value = None if status is None else ExecutionStatus(status).value
        records = self._stack.registry.list_executions(
            flow_name=flow, status=status_value, limit=limit
        )
        return self._summaries(watchdog.watch(self._stack, records), status_value)

    def _summaries(self, records: list[ExecutionRecord], status: str | None) -> list[Execution]:
        """Listed executions (those still of `status`, if given), each `waiting` one with its
        pending wait (one registry call for all of them)."""
        shown = [r for r in records if status is None or r.status == status]
        waiting = [r.exec_id for r in shown if r.status == ExecutionStatus.WAITING.value]
        pending = {w.exec_id: PendingWait.of(w)
                   for w in (self._stack.registry.pending_waits(waiting) if waiting else ())}
        return [_summary(r, pending.get(r.exec_id)) for r in shown]

    def page(
        self, *, flow: str | None = None, status: str | ExecutionStatus | None = None,
        limit: int = 50, cursor: str | None = None,
    ) -> ExecutionPage:
        """One page of executions, newest first: at most `limit`, after `cursor` (a previous
        page's `next_cursor`; None for the first page). Pages stay stable while executions
        are created: each holds the next older executions, none twice."""
        from . import cursors

        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidValueError(f"limit={limit!r} is not a page size; give 1 or more")
        before = None if cursor is None else cursors.decode(cursor)
        status_value = None if status is None else ExecutionStatus(status).value
        records = self._stack.registry.list_executions(
            flow_name=flow, status=status_value, limit=limit + 1, before=before
        )
        more = len(records) > limit
        records = records[:limit]
        last = records[-1] if more else None
        return ExecutionPage(
            items=self._summaries(watchdog.watch(self._stack, records), status_value),
            next_cursor=None if last is None else cursors.encode(last.created_at, last.exec_id),
        )

    def statistics(self, *, flow: str | None = None, limit: int = 1000) -> Statistics:
        """Counts by status and flow, checkpoint totals and durations over the newest `limit`
        executions (of `flow`, if given); `window` says whether that was all of them."""
        from .statistics import compute

        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidValueError(f"limit={limit!r} is not a count; give 1 or more")
        return compute(self._stack, flow=flow, limit=limit)

    def latest(self, *, flow: str | None = None) -> Execution | None:
        found = self.list(flow=flow, limit=1)
        return self.get(found[0].exec_id) if found else None

    def logs(self, exec_id: str, *, checkpoint: str | None = None, after: int = 0) -> list[LogEntry]:
        """Captured output, in order; `checkpoint` is a name (all its calls) or a call id."""
        reg = self._stack.registry
        rec = reg.get_execution(exec_id)
        chunks = reg.get_logs(rec.exec_id, after=after)
        if checkpoint is not None and ExecutionStatus(rec.status).is_finished:
            _require_checkpoint(rec.exec_id, checkpoint, reg.get_calls(rec.exec_id))
        if checkpoint is not None:
            chunks = [
                c for c in chunks
                if c.call_id == checkpoint or (c.call_id or "").split("#")[0] == checkpoint
            ]
        out = []
        for c in chunks:
            text = c.text
            if c.key:
                text = self._stack.artifact_store.get_blob(c.key).decode(errors="replace")
            out.append(LogEntry(c.call_id, c.stream, text, _dt(c.created_at), c.seq))
        return out

    def events(
        self,
        exec_id: str,
        *,
        kinds: Iterable[str] | None = None,
        checkpoint: str | None = None,
        correlation_ids: Iterable[str] | None = None,
        since: str | None = None,
        reconnect: bool = True,
        follow: bool = True,
        poll_interval: float = 0.25,
    ) -> Iterator[ExecutionEvent]:
        """The execution's events in the order they were published: `kitaru.progress` and
        `kitaru.events.publish` calls, model and tool calls inside checkpoints, and events
        of the flow body.

        With `follow` (the default) it keeps yielding new events while the execution runs
        and ends once it is no longer running (completed, failed, cancelled or waiting);
        without, it yields what is recorded now. `kinds`, `checkpoint` (a checkpoint name or
        a call id) and `correlation_ids` filter; `since` (an event's `.cursor`) starts after
        that event. `reconnect` is accepted for Kitaru 0.21's signature: the events are
        read from the registry, with no stream connection to lose.
        """
        registry = self._stack.registry
        full_id = registry.get_execution(exec_id).exec_id
        feed = EventFeed(self._stack, full_id, since=since)
        kinds = list(kinds) if kinds is not None else None
        correlation_ids = list(correlation_ids) if correlation_ids is not None else None
        while True:
            # The status is read first: an event published before the run ended is then
            # recorded by the time of the poll that follows.
            running = registry.get_execution(full_id).status == ExecutionStatus.RUNNING.value
            yield from matching(feed.poll(), kinds=kinds, checkpoint=checkpoint,
                                correlation_ids=correlation_ids)
            if not follow or not running:
                return
            time.sleep(poll_interval)

    def pending_waits(self, exec_id: str) -> list[PendingWait]:
        reg = self._stack.registry
        rec = reg.get_execution(exec_id)
        return [PendingWait.of(w) for w in reg.get_waits(rec.exec_id) if w.status == "pending"]

    def input(
        self, exec_id: str, *, wait: str | None = None, value: Any = None, resume: bool = True
    ) -> Execution:
        """Answer a pending wait (validated); by default resume the execution in the background."""
        rec, _, _ = service.provide_input(self._stack, exec_id, wait, value, resume=resume)
        return self.get(rec.exec_id)

    def abort_wait(self, exec_id: str, *, wait: str, resume: bool = True) -> Execution:
        """Abort the pending wait `wait` without an input: the flow's `wait()` raises
        `WaitAbortedError` (the flow may catch it and go on; else it fails). The execution is
        not cancelled; by default it continues in the background as after an input."""
        if not isinstance(wait, str) or not wait:
            raise InvalidValueError("abort_wait needs the wait's name: wait=NAME")
        _, done = service.give_input(self._stack, exec_id, wait, None, resume=resume, abort=True)
        return self.get(done.record.exec_id)

    def resume(self, exec_id: str, *, background: bool = True) -> Execution:
        """Continue a waiting execution, or a running one whose owner died."""
        if background:
            rec = service.resume_background(self._stack, exec_id, mode="resume")
        else:
            rec = service.resume_here(self._stack, exec_id, mode="resume")
        return self.get(rec.exec_id)

    def retry(self, exec_id: str, *, background: bool = True) -> Execution:
        """Continue a failed execution in place (completed checkpoints are reused)."""
        if background:
            rec = service.resume_background(self._stack, exec_id, mode="retry")
        else:
            rec = service.resume_here(self._stack, exec_id, mode="retry")
        return self.get(rec.exec_id)

    def cancel(self, exec_id: str) -> Execution:
        """Cancel a running or waiting execution: its isolated tasks and a runner an
        orchestrator launched are stopped through their components; a process you started
        yourself (`flow.run()`) stops at its next step."""
        rec = service.cancel(self._stack, exec_id)
        return self.get(rec.exec_id)

    def recover(self, exec_id: str | None = None) -> list[RunnerCheck]:
        """Run the runner watchdog on one execution (id or unique prefix), or on every
        running or waiting one when `exec_id` is None.

        An execution whose launched runner the orchestrator reports ended or lost (or
        not started within `KITARU_RUNNER_START_GRACE` seconds), with no live owner, is
        relaunched; after `KITARU_RUNNER_RELAUNCHES` relaunches it is marked failed with
        the reason and the runner's log. Each `RunnerCheck` says what was found and done.
        """
        if exec_id is not None:
            return [watchdog.recover(self._stack, exec_id)]
        return watchdog.sweep(self._stack)

    def orphaned(self) -> list[Execution]:
        """Running executions nobody continues: no launched runner, the owner gone and its
        lease expired, no recorded reason a resume can't go on (resume them to continue)."""
        records = self._stack.registry.list_executions(status=ExecutionStatus.RUNNING.value)
        return [_summary(r, None) for r in records if watchdog.orphaned(r)]

    def delete(
        self,
        *exec_ids: str,
        older_than: str | float | timedelta | None = None,
        status: str | ExecutionStatus | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> DeleteResult:
        """Delete executions with their calls, waits, logs, metadata and artifact references.

        Name them by id (or unique prefix), or select them with `older_than` (seconds, a
        `timedelta` or a duration such as "30d") and/or `status`. Memory is kept, and so
        are blobs: `KitaruClient().gc()` frees those no record references. A waiting
        execution, or a running one whose owner is gone, is deleted only with `force`; one
        whose runner is alive never (cancel it first). With ids, such a refusal raises
        `InvalidStateError` and nothing is deleted; with filters it is reported in the
        result's `refused`. `dry_run` only reports.
        """
        stack = self._stack
        records = housekeeping.select_executions(
            stack, exec_ids, older_than=_seconds(older_than),
            status=None if status is None else ExecutionStatus(status).value,
        )
        if exec_ids:
            check = housekeeping.delete_executions(stack, records, force=force, dry_run=True)
            if check.refused:
                eid, why = next(iter(check.refused.items()))
                raise InvalidStateError(f"execution {eid} is {why}; nothing was deleted")
        return housekeeping.delete_executions(stack, records, force=force, dry_run=dry_run)

    def replay(
        self,
        exec_ids: str | list[str],
        *,
        at: str,
        checkpoint_overrides: dict[str, dict[str, Any]] | None = None,
        flow_overrides: dict[str, Any] | None = None,
        wait: bool = False,
    ) -> ReplaySubmission:
        """Replay one or several executions from `at`; each becomes a new linked execution."""
        ids = [exec_ids] if isinstance(exec_ids, str) else list(exec_ids)
        results = []
        for eid in ids:
            rec, run = service.replay(
                self._stack, eid, at=at, checkpoint_overrides=checkpoint_overrides,
                flow_overrides=flow_overrides, background=not wait,
            )
            if run is not None and wait:
                run.join()
            results.append(ReplayResult(original_exec_id=eid, replay_exec_id=rec.exec_id))
        return ReplaySubmission(results=results)


    def diff(self, a: str, b: str, *, context: int = 3, max_lines: int = 500) -> ExecutionDiff:
        """Execution `a` against `b` (ids or unique prefixes), checkpoint by checkpoint: each
        call `same`, `changed`, `only_in_a` or `only_in_b`, with a unified diff (text or JSON)
        of every artifact that differs; `context` lines around changes, `max_lines` per diff.
        See `kitaru.diffs`."""
        from .diffs import compare

        return compare(self.get(a), self.get(b), context=context, max_lines=max_lines)

    def diff_matrix(self, exec_ids: str | Sequence[str]) -> DiffMatrix:
        """Several executions against the first (the baseline), checkpoint by checkpoint, and
        each pair's counts. One id alone compares that execution with its replays."""
        from .diffs import matrix, replays_of

        ids = [exec_ids] if isinstance(exec_ids, str) else list(exec_ids)
        executions = [self.get(i) for i in ids]
        if len(executions) == 1:
            executions += [self.get(i) for i in replays_of(self, executions[0].exec_id)]
        return matrix(executions)


class ArtifactsAPI:
    """`KitaruClient().artifacts`."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    def list(self, exec_id: str, *, name: str | None = None) -> list[Artifact]:
        stack = self._client._stack
        rec = stack.registry.get_execution(exec_id)
        return [
            Artifact.of(a, stack) for a in stack.registry.list_artifacts(exec_id=rec.exec_id, name=name)
        ]

    def get(self, artifact_id: str) -> Artifact:
        stack = self._client._stack
        return Artifact.of(stack.registry.get_artifact(artifact_id), stack)


class KitaruClient:
    """Entry point for inspecting and operating executions on a stack (default: active)."""

    def __init__(self, stack: str | None = None) -> None:
        from . import settings

        self._stack_name = resolve_stack_name(stack, settings.current().stack)
        self._built: Stack | None = None
        self.executions = ExecutionsAPI(self)
        self.artifacts = ArtifactsAPI(self)

    @classmethod
    def for_stack(cls, stack: Stack) -> KitaruClient:
        """A client over an already built stack (a server built it from its own options)."""
        client = cls(stack.name)
        client._built = stack
        return client

    @property
    def _stack(self) -> Stack:
        if self._built is None:
            self._built = get_stack(self._stack_name)
        return self._built

    def gc(
        self, *, grace: str | float | timedelta = housekeeping.DEFAULT_GRACE_SECONDS,
        dry_run: bool = True,
    ) -> GcReport:
        """Free the artifact store of blobs no record references (by default only report them).

        Blobs modified within `grace` (default one hour), or since a live execution
        started, are kept: a run may have written them and not recorded them yet.
        """
        return housekeeping.collect_garbage(
            self._stack, grace_seconds=_seconds(grace) or 0.0, dry_run=dry_run
        )

    def check(self, *, full: bool = False) -> HealthReport:
        """Check the registry's storage (`full`: thoroughly, and every referenced blob)."""
        return housekeeping.check_health(self._stack, full=full)

    @property
    def deployments(self) -> DeploymentsAPI:
        """Deployment versions and tags on this stack's registry: deploy/list/get/invoke/tag/
        untag/delete (see `kitaru.deployments`)."""
        from .deployments import DeploymentsAPI

        return DeploymentsAPI(self)

    @property
    def secrets(self) -> SecretsAPI:
        """Secrets of this stack's registry: set/get/list/delete, names and keys only
        (see `kitaru.secrets`)."""
        from .secrets import SecretsAPI

        return SecretsAPI(self)

    @property
    def memory(self) -> MemoryAPI:
        """Memory scopes on this stack: get/set/list/history/delete (see `kitaru.memory`)."""
        from .memory import MemoryAPI

        return MemoryAPI(self)


def _seconds(value: str | float | timedelta | None) -> float | None:
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise InvalidValueError(f"{value!r} is not a duration")
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float):
        if value < 0:
            raise InvalidValueError(f"{value!r} is not a duration; give 0 or more seconds")
        return float(value)
    return housekeeping.parse_duration(value)


def _call(
    c: CallRecord, artifacts: list[Artifact], metadata: dict[str, Any],
    usages: Sequence[dict[str, Any]] | None = None,
) -> CheckpointCall:
    """`c` for the client; `usages` are `usages_in(metadata)` when the caller found them already."""
    duration = (c.ended_at - c.started_at) if c.ended_at and c.started_at else None
    if usages is None:
        usages = usages_in(metadata) if metadata else []
    return CheckpointCall(
        call_id=c.call_id, name=c.name, status=c.status, attempts=c.attempts, seq=c.seq,
        type=c.type, started_at=_dt(c.started_at), ended_at=_dt(c.ended_at),
        duration_s=duration, error=c.error, artifacts=artifacts, metadata=metadata,
        usage=totals(usages) if usages else None,
    )


def _require_checkpoint(exec_id: str, checkpoint: str, calls: list[CallRecord]) -> None:
    """Refuse a checkpoint name or call id that no call of a finished execution has."""
    if any(checkpoint in (c.call_id, c.name) for c in calls):
        return
    names = ", ".join(dict.fromkeys(c.name for c in calls)) or "none"
    raise InvalidValueError(
        f"checkpoint {quoted(checkpoint)} names no checkpoint call of execution {exec_id}; "
        f"its checkpoints: {names}"
    )


def _summary(r: ExecutionRecord, pending: PendingWait | None) -> Execution:
    return Execution(
        exec_id=r.exec_id, flow_name=r.flow_name, status=ExecutionStatus(r.status),
        started_at=_dt(r.started_at), ended_at=_dt(r.ended_at), checkpoints=[],
        pending_wait=pending, failure=r.failure, original_exec_id=r.original_exec_id,
        stack_name=(r.stack or {}).get("name"),
        owner=describe_owner(r.owner) if r.owner else None, resumable=service.is_resumable(r),
        runner=r.runner, deployment=(r.flow_ref or {}).get("deployment"),
    )
