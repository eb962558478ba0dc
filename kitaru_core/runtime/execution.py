"""The runner: runs one execution's flow body and makes each checkpoint call durable.

The flow body runs from the top on every (re)start. Each checkpoint call gets
an identity (`name#n`, or an explicit id) and a position (`seq`); a completed
record at that identity returns the stored output without running the
function, and a different call at a recorded position is a divergence. An
output is durable (blob written, then the record committed) before the flow
moves on.

A call's `running` record is written lazily: by the ticker thread, for calls
still running at its next tick (every 0.5 s), not before each call starts.
That record only reports progress (a crashed call runs again either way), so
a call that ends within a tick costs one registry commit instead of two.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import (
    ContextError,
    ExecutionCancelledError,
    KitaruDivergenceError,
    KitaruError,
    SerializationError,
)
from ..records import ArtifactRecord, CallRecord, ExecutionRecord, LogChunk, MetadataEntry
from ..status import CallStatus, ExecutionStatus
from . import capture
from .artifacts import link, write_value
from .delayed_start import DelayedStarter, register_after_fork
from .handles import OutputHandle, resolve
from .owner import LEASE_SECONDS
from .state import current_call, current_execution

if TYPE_CHECKING:
    from ..stack import Stack
    from .specs import CheckpointSpec, FlowSpec

_TICK_SECONDS = 0.5
# Output chunks above this many characters are stored as blobs; the registry keeps the key.
_LOG_INLINE_LIMIT = 16_384
_MAX_WORKERS = 8
# Plain strings for the hot path (an enum member's `.value` is a descriptor call).
_COMPLETED = CallStatus.COMPLETED.value
_RUNNING = CallStatus.RUNNING.value
_FAILED = CallStatus.FAILED.value


class FlowSuspended(BaseException):
    """Raised through the flow body when a wait times out: the execution becomes `waiting`.

    A BaseException, so a user's `except Exception` does not swallow it.
    """

    def __init__(self, wait_name: str) -> None:
        super().__init__(wait_name)
        self.wait_name = wait_name


class _Cancelled(BaseException):
    """Raised through the flow body once the execution was cancelled elsewhere."""


class RunnerStopped(_Cancelled):
    """Raised in the checkpoint function a launched runner was running when it got SIGTERM
    (a cancel, or its orchestrator stopping it): see `termination`."""


def interrupted_in_call(frame: Any) -> bool:
    """True if `frame` (where a signal interrupted the main thread) is a checkpoint function's
    own code, or code it called, with no kitaru frame in between: raising there unwinds
    through the user's code only, never through kitaru's bookkeeping."""
    f = frame
    while f is not None:
        if f.f_code is _CALL_BOUNDARY:
            return True
        module = str(f.f_globals.get("__name__", ""))
        if module.split(".")[0] in ("kitaru", "kitaru_core") or module.startswith("kitaru_"):
            return False
        f = f.f_back
    return False


class CallContext:
    """The checkpoint call running in this context: collects saves, logs and metadata."""

    __slots__ = ("artifacts", "call", "event_counts", "execution", "live", "metadata", "saved_names")

    def __init__(self, execution: ExecutionContext, call: CallRecord) -> None:
        self.execution = execution
        self.call = call
        self.artifacts: list[ArtifactRecord] = []
        self.metadata: list[MetadataEntry] = []  # not written yet (see `go_live`)
        self.saved_names: set[str] = set()
        self.event_counts: dict[str, int] = {}  # child events per name (runtime/events.py)
        self.live = False

    @property
    def exec_id(self) -> str:
        return self.call.exec_id

    def save(self, name: str, value: Any, type: str | None = None) -> ArtifactRecord:
        meta = {"artifact_type": type} if type else None
        art = write_value(
            self.execution.store,
            value,
            exec_id=self.exec_id,
            name=name,
            direction="saved",
            call_id=self.call.call_id,
            metadata=meta,
            what=f"kitaru.save({name!r}) in checkpoint {self.call.call_id!r}",
            inline_limit=self.execution.inline_limit,
        )
        self.artifacts.append(art)
        return art

    def log(self, values: dict[str, Any]) -> None:
        now = time.time()
        entries = [MetadataEntry(self.exec_id, self.call.call_id, k, v, now) for k, v in values.items()]
        if not self.live:
            self.metadata.extend(entries)
            return
        with self.execution._events_lock:  # the ticker takes `metadata` under this lock
            self.metadata.extend(entries)

    def go_live(self, flush: bool = False) -> None:
        """From now on this call's metadata (its events) is written while it runs: by the
        ticker, or at once with `flush`; what is left is written with the call's record."""
        if not self.live:
            self.execution.watch_events(self)
        if flush:
            self.execution.write_events(self)


class ReplayPlan:
    """What a replay reuses from its original: steps before `at_seq`, plus overrides."""

    def __init__(self, ctx: ExecutionContext, replay: dict[str, Any]) -> None:
        registry = ctx.registry
        self.source = replay["source"]
        self.at_seq = int(replay["at_seq"])
        self.calls = {c.seq: c for c in registry.get_calls(self.source)}
        self.waits = {w.seq: w for w in registry.get_waits(self.source)}
        self.overrides: dict[str, str] = dict(replay.get("checkpoint_overrides") or {})
        self._registry = registry

    def artifact(self, artifact_id: str) -> ArtifactRecord:
        return self._registry.get_artifact(artifact_id)


class ExecutionContext:
    """State of one execution while its flow body runs in this process."""

    def __init__(
        self, record: ExecutionRecord, stack: Stack, owner: str, *, fresh: bool = False
    ) -> None:
        self.record = record
        self.exec_id = record.exec_id
        self.stack = stack
        self.registry = stack.registry
        self.store = stack.artifact_store
        self.inline_limit = self.registry.inline_limit
        self.owner = owner
        self.started_at = time.time()
        calls = [] if fresh else self.registry.get_calls(self.exec_id)
        self.calls: dict[str, CallRecord] = {c.call_id: c for c in calls}
        self.completed_by_seq: dict[int, str] = {
            c.seq: c.call_id for c in calls if c.status == CallStatus.COMPLETED.value
        }
        waits = [] if fresh else self.registry.get_waits(self.exec_id)
        self.waits = {w.name: w for w in waits}
        self.waits_by_seq = {w.seq: w.name for w in self.waits.values()}
        self.replay = ReplayPlan(self, record.replay) if record.replay else None
        self._seq = 0
        self._counts: dict[str, int] = {}
        self._wait_counts: dict[str, int] = {}
        self._used_ids: set[str] = set()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future[OutputHandle]] = []
        self._end_callbacks: list[Callable[[], None]] = []
        self._captures: list[capture.Capture] = []
        self.cancelled = False
        self.lost_lease = False
        # Calls running inline whose `running` record is not written yet (see the module doc).
        self._unrecorded: dict[str, CallRecord] = {}
        self._progress_lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._ticking_since = time.monotonic()
        # The run's `cache` option (None: each checkpoint's own; see FlowSpec).
        self.run_cache: bool | None = None
        # Running calls with live events (CallContext.go_live); flow-body event counters.
        self._live_calls: set[CallContext] = set()
        self._events_lock = threading.Lock()
        self._event_counts: dict[str, int] = {}
        self._cache_specs: dict[int, tuple[CheckpointSpec, CheckpointSpec]] = {}
        # Waits (runtime/waits.py): the wait the body is blocked at, whether it suspended
        # there, and a request to suspend now (SIGTERM) that also wakes its polling.
        self.at_wait: str | None = None
        self.suspended = False
        self.suspend_requested = threading.Event()
        self.stop_requested = False  # a launched runner got SIGTERM (runtime/termination.py)
        self.ended = threading.Event()  # set once this run of the body is over

    # -- identity and divergence ----------------------------------------------
    def next_step(self, name: str, explicit_id: str | None, kind: str = "call") -> tuple[int, str]:
        """Assign the next position and this call's (or wait's) identity."""
        with self._lock:
            seq = self._seq
            self._seq += 1
            if explicit_id:
                step_id = explicit_id
            elif kind == "wait":
                n = self._wait_counts.get(name, 0) + 1
                self._wait_counts[name] = n
                step_id = name if n == 1 else f"{name}#{n}"
            else:
                n = self._counts.get(name, 0) + 1
                self._counts[name] = n
                step_id = f"{name}#{n}"
            if kind == "call":
                if step_id in self._used_ids:
                    # Reusing the first call's record here would be silent reuse of a wrong output.
                    raise KitaruError(
                        f"checkpoint call id {step_id!r} is used twice in one run of execution "
                        f"{self.exec_id}; give each `.with_id(...)` call its own id"
                    )
                self._used_ids.add(step_id)
        self._check_divergence(seq, step_id, kind)
        return seq, step_id

    def _check_divergence(self, seq: int, step_id: str, kind: str) -> None:
        recorded_call = self.completed_by_seq.get(seq)
        recorded_wait = self.waits_by_seq.get(seq)
        if kind == "call" and recorded_call not in (None, step_id):
            self._diverged(seq, f"checkpoint call {recorded_call!r}", f"checkpoint call {step_id!r}")
        if kind == "call" and recorded_wait is not None and recorded_call is None:
            self._diverged(seq, f"wait {recorded_wait!r}", f"checkpoint call {step_id!r}")
        if kind == "wait" and recorded_call is not None:
            self._diverged(seq, f"checkpoint call {recorded_call!r}", f"wait {step_id!r}")
        if kind == "wait" and recorded_wait not in (None, step_id):
            self._diverged(seq, f"wait {recorded_wait!r}", f"wait {step_id!r}")

    def _diverged(self, seq: int, recorded: str, now: str) -> None:
        raise KitaruDivergenceError(
            f"execution {self.exec_id} diverged at step {seq + 1}: the record has {recorded}, "
            f"but the flow now makes {now}. The flow code changed since this execution was "
            "recorded; restore the old code to resume it, or start a new run (or a replay "
            "from before this step) with the new code"
        )

    def artifact(self, artifact_id: str) -> ArtifactRecord:
        return self.registry.get_artifact(artifact_id)

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise _Cancelled()

    # -- checkpoint calls -----------------------------------------------------
    def call(
        self,
        spec: CheckpointSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        call_id: str | None = None,
        concurrent: bool = False,
    ) -> OutputHandle:
        """One checkpoint call from the flow body: replayed from the record or run live."""
        if self.run_cache is not None:
            spec = self._with_run_cache(spec)
        seq, cid, recorded, answered = self._identify(spec, call_id)
        if answered is not None:
            return answered
        attempts_before = recorded.attempts if recorded is not None else 0
        if concurrent:
            executor = self._pool()
            ctx = contextvars.copy_context()
            future = executor.submit(
                ctx.run, self._run_live, spec, seq, cid, args, kwargs, attempts_before, recorded
            )
            self._futures.append(future)
            return OutputHandle(cid, spec.name, future=future)
        return self._run_live(spec, seq, cid, args, kwargs, attempts_before, recorded)

    def _with_run_cache(self, spec: CheckpointSpec) -> CheckpointSpec:
        """`spec` under the run's cache option: False turns caching off; True turns it on
        unless the checkpoint says `cache=False` itself (a side effect must not be skipped)."""
        want = self.run_cache
        if (spec.cache is not None) if want else not spec.cache:
            return spec
        memo = self._cache_specs.get(id(spec))
        if memo is not None and memo[0] is spec:  # the memo holds `spec`: its id is not reused
            return memo[1]
        adjusted = dataclasses.replace(spec, cache=want)
        self._cache_specs[id(spec)] = (spec, adjusted)
        return adjusted

    def _identify(
        self, spec: CheckpointSpec, call_id: str | None, step: tuple[int, str] | None = None
    ) -> tuple[int, str, CallRecord | None, OutputHandle | None]:
        """Give a call its position and id (or take a reserved `step`); (seq, id, its record
        if any, the handle that answers it from the record or the replay plan, else None)."""
        self.check_cancelled()
        seq, cid = step if step is not None else self.next_step(spec.name, call_id)
        recorded, answered = self._answer(spec, seq, cid)
        return seq, cid, recorded, answered

    def _answer(
        self, spec: CheckpointSpec, seq: int, cid: str
    ) -> tuple[CallRecord | None, OutputHandle | None]:
        recorded = self.calls.get(cid)
        if recorded is not None and recorded.status == _COMPLETED:
            return recorded, self._recorded_handle(recorded)
        return recorded, self._reuse_from_replay(spec, seq, cid)

    def reserve(self, names: list[str]) -> list[tuple[int, str]]:
        """Positions and ids, in this order, for calls that will run later (perhaps concurrently,
        in any order): pass each to `acall(step=...)`. Identity then does not depend on which
        concurrent call starts first, only on the order of `names`."""
        return [self.next_step(name, None) for name in names]

    def answered(self, spec: CheckpointSpec, step: tuple[int, str]) -> OutputHandle | None:
        """The recorded (or replayed) output of a reserved step, or None if it must run."""
        self.check_cancelled()
        return self._answer(spec, *step)[1]

    def _recorded_handle(self, call: CallRecord) -> OutputHandle:
        if not call.output_artifact:
            return OutputHandle(call.call_id, call.name, value=None)
        # Looked up on first use: resuming past recorded calls reads none of their artifacts.
        return OutputHandle(call.call_id, call.name, store=self.store,
                            fetch=functools.partial(self.artifact, call.output_artifact))

    def _reuse_from_replay(self, spec: CheckpointSpec, seq: int, cid: str) -> OutputHandle | None:
        plan = self.replay
        if plan is None:
            return None
        override = plan.overrides.get(cid) or plan.overrides.get(spec.name)
        if override is None and seq >= plan.at_seq:
            return None
        if override is not None:
            source_art = plan.artifact(override)
            origin = {"override": True}
        else:
            original = plan.calls.get(seq)
            if original is None or original.status != CallStatus.COMPLETED.value:
                return None
            if original.call_id != cid:
                self._diverged(
                    seq, f"checkpoint call {original.call_id!r} (in {plan.source})",
                    f"checkpoint call {cid!r}",
                )
            if original.output_artifact is None:
                return None
            source_art = plan.artifact(original.output_artifact)
            origin = {"replayed_from": plan.source}
        art = link(source_art, exec_id=self.exec_id, name=spec.name, direction="output", call_id=cid)
        art.metadata = {**(art.metadata or {}), **origin}
        now = time.time()
        call = CallRecord(
            exec_id=self.exec_id, call_id=cid, name=spec.name, seq=seq,
            status=CallStatus.COMPLETED.value, type=spec.type, attempts=0,
            started_at=now, ended_at=now, output_artifact=art.artifact_id,
        )
        self.registry.save_call(call, [art])
        self.calls[cid] = call
        return OutputHandle(cid, spec.name, artifact=art, store=self.store)

    def _run_live(
        self,
        spec: CheckpointSpec,
        seq: int,
        cid: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempts_before: int,
        previous: CallRecord | None,
    ) -> OutputHandle:
        inputs = _input_artifacts(self, spec, cid, args, kwargs)  # from the handles, for lineage
        args = tuple([resolve(a) for a in args]) if args else args
        kwargs = {k: resolve(v) for k, v in kwargs.items()} if kwargs else kwargs
        cache_key = _cache_key(spec, inputs) if spec.cache else None
        if cache_key is not None:
            hit = self._from_cache(spec, seq, cid, cache_key, inputs)
            if hit is not None:
                return hit
        call = CallRecord(
            exec_id=self.exec_id, call_id=cid, name=spec.name, seq=seq,
            status=_RUNNING, type=spec.type, attempts=attempts_before,
            started_at=time.time(), cache_key=cache_key,
            task=previous.task if previous is not None else None,
        )
        if spec.runtime == "isolated" and not self.stack.execution_target.in_process:
            from .isolated import run_isolated

            return run_isolated(self, spec, call, args, kwargs, inputs)
        return self._run_inline(spec, call, args, kwargs, inputs)

    def _run_inline(
        self,
        spec: CheckpointSpec,
        call: CallRecord,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        inputs: list[ArtifactRecord],
    ) -> OutputHandle:
        attempt = 0
        while True:
            attempt += 1
            attempt_state = self._begin_attempt(call)
            try:
                value = spec.fn(*args, **kwargs)
                error = None
            except Exception as exc:
                value, error = None, exc
            except RunnerStopped:
                self._record_stopped(call, attempt_state)
                raise
            finally:
                self._end_attempt(call, attempt_state)
            outcome = self._settle(spec, call, attempt_state, value, error, attempt, inputs)
            if type(outcome) is OutputHandle:
                return outcome
            self._sleep(outcome)  # a retry's delay

    async def acall(
        self, spec: CheckpointSpec, make: Callable[[], Awaitable[Any]], *, step: tuple[int, str] | None = None
    ) -> OutputHandle:
        """A checkpoint call whose body is a coroutine, awaited on the caller's event loop.

        For adapters of async frameworks: the same identity, replay, retries and
        records as `call`, without handing the body to another thread. The body takes
        no arguments (so no input artifacts); it saves and logs what it should store.
        `step` is a position and id from `reserve` (else the next one is taken now).
        """
        seq, cid, recorded, answered = self._identify(spec, None, step)
        if answered is not None:
            return answered
        call = CallRecord(
            exec_id=self.exec_id, call_id=cid, name=spec.name, seq=seq, status=_RUNNING,
            type=spec.type, attempts=recorded.attempts if recorded is not None else 0,
            started_at=time.time(),
        )
        attempt = 0
        while True:
            attempt += 1
            attempt_state = self._begin_attempt(call)
            try:
                value = await make()
                error = None
            except Exception as exc:
                value, error = None, exc
            finally:
                self._end_attempt(call, attempt_state)
            outcome = self._settle(spec, call, attempt_state, value, error, attempt, [])
            if type(outcome) is OutputHandle:
                return outcome
            import asyncio

            end = time.monotonic() + outcome  # a retry's delay
            while (left := end - time.monotonic()) > 0:
                self.check_cancelled()
                await asyncio.sleep(min(left, _TICK_SECONDS))

    def _begin_attempt(self, call: CallRecord) -> tuple[capture.Capture, Any, CallContext, Any]:
        call.attempts += 1
        self._unrecorded[call.call_id] = call
        cap, cap_token = capture.start(call.call_id)
        call_ctx = CallContext(self, call)
        call_token = current_call.set(call_ctx)
        self._captures.append(cap)
        return cap, cap_token, call_ctx, call_token

    def _end_attempt(self, call: CallRecord, state: tuple[capture.Capture, Any, CallContext, Any]) -> None:
        cap, cap_token, _, call_token = state
        current_call.reset(call_token)
        capture.stop(cap_token)
        self._captures.remove(cap)
        with self._progress_lock:  # from here on the ticker no longer writes it
            self._unrecorded.pop(call.call_id, None)

    def _settle(
        self,
        spec: CheckpointSpec,
        call: CallRecord,
        state: tuple[capture.Capture, Any, CallContext, Any],
        value: Any,
        error: Exception | None,
        attempt: int,
        inputs: list[ArtifactRecord],
    ) -> OutputHandle | float:
        """Record an attempt's outcome: the output handle, or the delay before a retry.

        Raises the error once no retry is left.
        """
        cap, _, call_ctx, _ = state
        metadata = self._unwritten_metadata(call_ctx) if call_ctx.live else call_ctx.metadata
        if error is None:
            try:
                output = write_value(
                    self.store, value, exec_id=self.exec_id, name=spec.name,
                    direction="output", call_id=call.call_id,
                    what=lambda: f"checkpoint {call.call_id!r} output", inline_limit=self.inline_limit,
                )
            except SerializationError as exc:
                error = exc
        if error is None:
            call.status = _COMPLETED
            call.ended_at = time.time()
            call.output_artifact = output.artifact_id
            call.error = None
            self.registry.save_call(
                call, [*inputs, output, *call_ctx.artifacts], self._chunks(cap), metadata,
            )
            self.calls[call.call_id] = call
            self.completed_by_seq[call.seq] = call.call_id
            return OutputHandle(call.call_id, spec.name, value=value, artifact=output,
                                store=self.store)
        retry = attempt <= spec.retries and not isinstance(error, SerializationError | KitaruError)
        call.error = _error_info(error)
        if retry:
            call.status = _RUNNING
            delay = spec.retry_delay * (spec.backoff ** (attempt - 1))
            cap.add("stderr", f"[kitaru] attempt {attempt} failed: {error!r}; "
                    f"retrying in {delay:.2f}s\n")
            self.registry.save_call(call, call_ctx.artifacts, self._chunks(cap), metadata)
            return delay
        call.status = _FAILED
        call.ended_at = time.time()
        self.registry.save_call(call, [*inputs, *call_ctx.artifacts], self._chunks(cap), metadata)
        self.calls[call.call_id] = call
        raise error

    def _record_stopped(
        self, call: CallRecord, state: tuple[capture.Capture, Any, CallContext, Any]
    ) -> None:
        """Record a call its runner was stopped in (SIGTERM): failed, with what it printed, so
        that nothing it wrote is lost; it runs again if the execution is resumed."""
        cap, _, call_ctx, _ = state
        metadata = self._unwritten_metadata(call_ctx) if call_ctx.live else call_ctx.metadata
        with contextlib.suppress(Exception):
            cancelled = self.registry.get_execution(self.exec_id).status == ExecutionStatus.CANCELLED.value
            why = ("the execution was cancelled while this call ran" if cancelled else
                   "its runner was stopped (SIGTERM) while this call ran; it runs again on resume")
            call.status = _FAILED
            call.ended_at = time.time()
            call.error = {"type": "kitaru_core.errors.ExecutionCancelledError" if cancelled
                          else "kitaru_core.runtime.execution.RunnerStopped", "message": why}
            cap.add("stderr", f"[kitaru] {why}\n")
            with self._progress_lock:
                self._unrecorded.pop(call.call_id, None)
            self.registry.save_call(call, call_ctx.artifacts, self._chunks(cap), metadata)
            self.calls[call.call_id] = call

    def _from_cache(
        self, spec: CheckpointSpec, seq: int, cid: str, cache_key: str,
        inputs: list[ArtifactRecord],
    ) -> OutputHandle | None:
        hit = self.registry.find_cached_call(cache_key)
        if hit is None or hit.output_artifact is None:
            return None
        source = self.registry.get_artifact(hit.output_artifact)
        art = link(source, exec_id=self.exec_id, name=spec.name, direction="output", call_id=cid)
        art.metadata = {**(art.metadata or {}), "cache_hit": f"{hit.exec_id}/{hit.call_id}"}
        now = time.time()
        call = CallRecord(
            exec_id=self.exec_id, call_id=cid, name=spec.name, seq=seq,
            status=CallStatus.COMPLETED.value, type=spec.type, attempts=0, started_at=now,
            ended_at=now, output_artifact=art.artifact_id, cache_key=cache_key,
        )
        self.registry.save_call(call, [*inputs, art])
        self.calls[cid] = call
        return OutputHandle(cid, spec.name, artifact=art, store=self.store)

    def _chunks(self, cap: capture.Capture) -> list[LogChunk]:
        """Pending output of a capture as log chunks; large ones go to the artifact store."""
        chunks: list[LogChunk] = []
        if not cap.pending():  # nothing captured: the usual case
            return chunks
        for stream, text, ts in cap.drain():
            if len(text) > _LOG_INLINE_LIMIT:
                data = text.encode()
                key = hashlib.sha256(data).hexdigest()
                self.store.put_blob(data, key)
                chunks.append(LogChunk(self.exec_id, cap.call_id, 0, stream, "", ts, key))
            else:
                chunks.append(LogChunk(self.exec_id, cap.call_id, 0, stream, text, ts))
        return chunks

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.check_cancelled()
            time.sleep(min(left, _TICK_SECONDS))

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=_MAX_WORKERS, thread_name_prefix=f"kitaru-{self.exec_id[:8]}"
                )
            return self._executor

    def join_submitted(self) -> None:
        """Wait for every submitted call; re-raise the first failure."""
        first_error: BaseException | None = None
        for future in self._futures:
            try:
                future.result()
            except BaseException as exc:
                first_error = first_error or exc
        self._futures.clear()
        if first_error is not None:
            raise first_error

    def calls_in_flight(self) -> bool:
        """True while a call submitted to run concurrently has not ended."""
        return any(not f.done() for f in self._futures)

    def join_submitted_quietly(self) -> None:
        """Wait for submitted calls, ignoring their failures (the body is retried)."""
        with contextlib.suppress(BaseException):
            self.join_submitted()

    def reset_for_retry(self) -> None:
        """Start the flow body again from the top; completed calls stay recorded."""
        with self._lock:
            self._seq = 0
            self._counts.clear()
            self._wait_counts.clear()
            self._used_ids.clear()
            self._event_counts.clear()

    # -- end of this run of the body --------------------------------------------
    def at_end(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this run of the flow body is over (ended, suspended or
        failed): for resources an adapter keeps for the run, such as an event loop."""
        with self._lock:
            self._end_callbacks.append(callback)

    def run_end_callbacks(self) -> None:
        with self._lock:
            callbacks, self._end_callbacks = self._end_callbacks, []
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()

    # -- live events (runtime/events.py) ------------------------------------------
    def watch_events(self, call_ctx: CallContext) -> None:
        with self._events_lock:
            call_ctx.live = True
            self._live_calls.add(call_ctx)

    def write_events(self, call_ctx: CallContext) -> None:
        """Write the metadata (events) a running call has not written yet."""
        with self._events_lock:
            entries, call_ctx.metadata = call_ctx.metadata, []
        if not entries:
            return
        try:
            self.registry.add_metadata(entries)
        except BaseException:
            with self._events_lock:  # kept for the next tick or the call's record
                call_ctx.metadata[:0] = entries
            raise

    def flush_events(self) -> None:
        """The ticker's part: write what running calls with live events have published."""
        for call_ctx in list(self._live_calls):
            self.write_events(call_ctx)

    def _unwritten_metadata(self, call_ctx: CallContext) -> list[MetadataEntry]:
        """At the end of an attempt: stop writing its events live; what is left goes with its
        record."""
        with self._events_lock:
            self._live_calls.discard(call_ctx)
            call_ctx.live = False
            entries, call_ctx.metadata = call_ctx.metadata, []
        return entries

    def next_event(self, name: str) -> tuple[int, int]:
        """(n of the `name#n` id, index among all) for an event published in the flow body."""
        with self._lock:
            n = self._event_counts.get(name, 0) + 1
            self._event_counts[name] = n
            position = self._event_counts.get("", 0)
            self._event_counts[""] = position + 1
        return n, position

    # -- flow-level metadata --------------------------------------------------
    def log(self, values: dict[str, Any]) -> None:
        now = time.time()
        self.registry.add_metadata(
            [MetadataEntry(self.exec_id, None, k, v, now) for k, v in values.items()]
        )

    # -- background: lease renewal, log flushing, cancellation -------------------
    def schedule_ticker(self) -> None:
        """Have this run's ticker start once the run has lasted one tick (its first work is
        due then; a run that ends sooner never starts one: see `delayed_start`)."""
        self._ticking_since = time.monotonic()
        _TICKERS.add(self)

    def start_ticker(self) -> None:
        self._ticker = threading.Thread(
            target=self._tick_loop, name=f"kitaru-tick-{self.exec_id[:8]}", daemon=True
        )
        self._ticker.start()

    def stop_ticker(self) -> None:
        self._stop.set()
        _TICKERS.discard(self)  # once it returns, the ticker is either started or never will be
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        self.flush_logs()

    def _tick_loop(self) -> None:
        """Every tick from the run's first one on: running records, logs, events, the
        lease, and whether the run was cancelled."""
        renew_every = max(LEASE_SECONDS / 3, _TICK_SECONDS)
        next_renew = self._ticking_since + renew_every
        while not self._stop.is_set():
            try:
                next_renew = self._tick(next_renew, renew_every)
            except Exception:
                pass
            if self._stop.wait(_TICK_SECONDS):
                return

    def _tick(self, next_renew: float, renew_every: float) -> float:
        """One tick's work; returns when the lease is next renewed."""
        self.record_progress()
        self.flush_logs()
        if self._live_calls:
            self.flush_events()
        if time.monotonic() >= next_renew:
            next_renew = time.monotonic() + renew_every
            ok = self.registry.renew_lease(
                self.exec_id, owner=self.owner, lease_expires=time.time() + LEASE_SECONDS
            )
            if not ok:
                status = self.registry.get_execution(self.exec_id).status
                if status == ExecutionStatus.CANCELLED.value:
                    self.cancelled = True
                else:
                    self.lost_lease = True
                    self.cancelled = True
        elif self.registry.get_execution(self.exec_id).status == "cancelled":
            self.cancelled = True
        return next_renew

    def record_progress(self) -> None:
        """Write the `running` record of each call still running since the last tick."""
        if not self._unrecorded:
            return
        with self._progress_lock:
            for call in list(self._unrecorded.values()):
                self.registry.save_call(call)
                del self._unrecorded[call.call_id]

    def flush_logs(self) -> None:
        chunks = [c for cap in list(self._captures) for c in self._chunks(cap)]
        if chunks:
            self.registry.append_logs(chunks)


#: Starts each run's ticker once the run has lasted a tick (see `delayed_start`).
_TICKERS = DelayedStarter(_TICK_SECONDS, ExecutionContext.start_ticker)  # type: ignore[arg-type]
register_after_fork(_TICKERS)

#: The frame that calls a checkpoint function (see `interrupted_in_call`).
_CALL_BOUNDARY = ExecutionContext._run_inline.__code__


def _input_artifacts(
    ctx: ExecutionContext,
    spec: CheckpointSpec,
    cid: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> list[ArtifactRecord]:
    """Input artifacts of a call (lineage); best effort for inline calls.

    `args`/`kwargs` are the call's own arguments, handles not yet resolved. An
    output handle passed on as is becomes a link to that output's stored bytes
    (lineage without serializing the value again), except where the bytes must
    be exactly what the function receives: cache keys and isolated workers.
    """
    must = spec.cache or spec.runtime == "isolated"
    out: list[ArtifactRecord] = []
    for pname, value in spec.bind(args, kwargs).items():
        if type(value) is OutputHandle and not must:
            source = value.artifact
            if source is not None:
                out.append(link(source, exec_id=ctx.exec_id, name=pname, direction="input", call_id=cid))
                continue
        value = resolve(value)
        try:
            out.append(
                write_value(
                    ctx.store, value, exec_id=ctx.exec_id, name=pname, direction="input",
                    call_id=cid, what=lambda pname=pname: f"input {pname!r} of checkpoint {cid!r}",
                    inline_limit=ctx.inline_limit,
                )
            )
        except SerializationError:
            if must:
                raise
    return out


def _cache_key(spec: CheckpointSpec, inputs: list[ArtifactRecord]) -> str:
    h = hashlib.sha256(f"{spec.name}\0{spec.source_hash}".encode())
    for art in inputs:
        h.update(f"\0{art.name}={art.key}".encode())
    return h.hexdigest()


def _error_info(exc: BaseException) -> dict[str, Any]:
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc))[-8000:],
    }


# -- running a whole flow body ------------------------------------------------------


def run_flow_body(
    record: ExecutionRecord,
    stack: Stack,
    flow: FlowSpec,
    owner: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    fresh: bool = False,
) -> Any:
    """Run the flow body to its end, a suspension or a failure, and record the outcome.

    Returns the flow's result; raises FlowSuspended when a wait timed out, and the
    flow's own exception when it failed (after recording it). `fresh`: this process
    has just created the execution, so it has no calls or waits to read.
    """
    from . import termination

    registry = stack.registry
    try:
        ctx = ExecutionContext(record, stack, owner, fresh=fresh)
    except BaseException as exc:  # the record could not even be read: nothing ran
        _abandon(registry, record.exec_id, owner, exc)
        raise
    termination.track(ctx)  # SIGTERM at a wait suspends it cleanly
    ctx.run_cache = flow.cache
    token = current_execution.set(ctx)
    cap, cap_token = capture.start(None)
    ctx._captures.append(cap)
    ctx.schedule_ticker()
    try:
        attempt = 0
        while True:
            try:
                result = flow.fn(*args, **kwargs)
                ctx.join_submitted()
                result = resolve(result)
                break
            except _Cancelled:
                raise
            except (FlowSuspended, KitaruDivergenceError, ContextError):
                # Submitted calls still in flight are recorded before the outcome is.
                ctx.join_submitted_quietly()
                raise
            except Exception as exc:
                if not ctx.cancelled:
                    ctx.join_submitted_quietly()
                if attempt >= flow.retries or ctx.cancelled:
                    raise
                attempt += 1
                cap.add("stderr", f"[kitaru] flow body failed: {exc!r}; running it again "
                        f"(flow retry {attempt} of {flow.retries}, completed checkpoints reused)\n")
                ctx.reset_for_retry()
        output = write_value(
            ctx.store, result, exec_id=ctx.exec_id, name="output", direction="output",
            what=f"flow {flow.name!r} result", inline_limit=ctx.inline_limit,
        )
        if not _finish(ctx, ExecutionStatus.COMPLETED, (output,), result_artifact=output.artifact_id):
            raise _Cancelled()
        return result
    except FlowSuspended as exc:
        if not ctx.suspended:  # wait() normally hands the execution over itself
            _finish_or_release(ctx, exc, ExecutionStatus.WAITING)
        else:
            ctx.flush_logs()
        raise
    except _Cancelled as exc:
        _finish_or_release(ctx, exc, None)
        if ctx.stop_requested and not ctx.lost_lease:
            raise ExecutionCancelledError(
                f"the runner of execution {ctx.exec_id} was stopped (SIGTERM); it is cancelled "
                "if a cancel stopped it, else resumable"
            ) from None
        raise ExecutionCancelledError(
            f"execution {ctx.exec_id} was cancelled" + (
                " (another runner took over after this one lost its lease)"
                if ctx.lost_lease else ""
            )
        ) from None
    except BaseException as exc:
        failure = _error_info(exc)
        failure["call_id"] = _failed_call(ctx)
        _finish_or_release(ctx, exc, ExecutionStatus.FAILED, failure=failure)
        raise
    finally:
        ctx.stop_ticker()
        capture.stop(cap_token)
        if cap in ctx._captures:
            ctx._captures.remove(cap)
        current_execution.reset(token)
        if ctx._executor is not None:
            ctx._executor.shutdown(wait=False, cancel_futures=True)
        ctx.run_end_callbacks()
        ctx.ended.set()


def _failed_call(ctx: ExecutionContext) -> str | None:
    """The call whose failure failed this run, if a call failed (not one of an earlier run)."""
    failed = [c for c in ctx.calls.values()
              if c.status == CallStatus.FAILED.value and (c.ended_at or 0) >= ctx.started_at]
    return max(failed, key=lambda c: c.ended_at or 0).call_id if failed else None


_LIVE = (ExecutionStatus.RUNNING.value, ExecutionStatus.WAITING.value)


def _finish(
    ctx: ExecutionContext, status: ExecutionStatus | None,
    artifacts: Sequence[ArtifactRecord] = (), **fields: Any,
) -> bool:
    """Record the outcome (with `artifacts`, the result; recorded only with a `status`) and
    give up ownership.

    Returns False if the execution was cancelled meanwhile: a cancel is final,
    so its status stays `cancelled` whatever the body did after it (the result is
    recorded all the same).
    """
    with contextlib.suppress(Exception):  # the outcome matters more than the last log lines
        ctx.flush_logs()
    release: dict[str, Any] = {"owner": None, "lease_expires": None}
    if status is not None:
        update = {**release, "status": status.value, **fields}
        if status.is_finished:
            update["ended_at"] = time.time()
        if ctx.registry.record_outcome(
            ctx.exec_id, update, artifacts, owner=ctx.owner, statuses=_LIVE
        ):
            return True
    ctx.registry.update_execution(ctx.exec_id, release, owner=ctx.owner)
    return status is None


def _finish_or_release(
    ctx: ExecutionContext, error: BaseException, status: ExecutionStatus | None, **fields: Any
) -> None:
    """`_finish` on the way out of a run that raised `error`, which must stay what the caller
    sees: if the registry refuses the outcome (it is failing too), at least give up
    ownership, so the execution shows as resumable instead of `running` under a live owner."""
    try:
        _finish(ctx, status, **fields)
        return
    except Exception as exc:
        problem = exc
    _release(ctx.registry, ctx.exec_id, ctx.owner, error, problem)


def _abandon(registry: Any, exec_id: str, owner: str, error: BaseException) -> None:
    """Record a run that failed before its body started (failed, owner given up)."""
    failure = _error_info(error)
    try:
        registry.update_execution(exec_id, {
            "status": ExecutionStatus.FAILED.value, "failure": failure, "ended_at": time.time(),
            "owner": None, "lease_expires": None,
        }, owner=owner, statuses=_LIVE)
    except Exception as exc:
        _release(registry, exec_id, owner, error, exc)


def _release(registry: Any, exec_id: str, owner: str, error: BaseException, problem: Exception) -> None:
    for delay in (0.0, 0.2, 1.0):  # a busy or briefly failing registry gets a few chances
        time.sleep(delay)
        try:
            registry.update_execution(exec_id, {"owner": None, "lease_expires": None}, owner=owner)
            error.add_note(f"kitaru could not record this outcome ({problem}); execution {exec_id} "
                           "is left resumable: `kitaru executions resume` continues it")
            return
        except Exception:
            continue
    error.add_note(f"kitaru could not record this outcome ({problem}) nor give up execution "
                   f"{exec_id}; it shows `running` until this process exits, then is resumable")


def require_flow_context(what: str) -> ExecutionContext:
    """The running execution, or a ContextError explaining where `what` may be used."""
    if current_call.get() is not None:
        raise ContextError(
            f"{what} is not allowed inside a checkpoint; call it from the flow body "
            "(the function decorated with @flow)"
        )
    ctx = current_execution.get()
    if ctx is None:
        raise ContextError(f"{what} must be called inside a running @flow")
    return ctx
