"""Compare executions checkpoint by checkpoint: `KitaruClient().executions.diff(a, b)` and
`.diff_matrix([...])`, for a replay against its original (or any two runs of a flow).

Checkpoint calls are matched by call id (`name#n`). A call is `same` when both executions
recorded it with the same status and every artifact of it (its output, its inputs and what
it saved) has the same content, an input recorded on one side only aside (a replay reuses
the calls before `at` without recording their inputs); `changed` otherwise; `only_in_a` / `only_in_b` when one
execution has no such call. Artifacts are content-addressed, so equal keys are equal
content and cost no read; otherwise both values are rendered as text (a string as itself,
JSON-able values as indented JSON with sorted keys, anything else by `repr`) and compared,
with a unified diff of the two renderings. Bytes are compared by content only.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import InvalidValueError
from kitaru_core.runtime.artifacts import read_bytes
from kitaru_core.serializers import deserialize

if TYPE_CHECKING:
    from .client import Artifact, Execution, ExecutionsAPI

__all__ = ["STATUSES", "ArtifactDiff", "CheckpointDiff", "DiffMatrix", "ExecutionDiff", "MatrixRow"]

SAME, CHANGED, ONLY_A, ONLY_B = "same", "changed", "only_in_a", "only_in_b"
STATUSES = (SAME, CHANGED, ONLY_A, ONLY_B)
#: Artifacts larger than this are compared by content key only (no rendering, no diff).
DEFAULT_MAX_BYTES = 4 << 20
#: Lines of one unified diff kept; the rest is cut and `truncated` set.
DEFAULT_MAX_LINES = 500


class _Base:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (what `-o json` prints)."""
        from .client import _jsonable

        return _jsonable(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)


@dataclass
class ArtifactDiff(_Base):
    """One artifact of a checkpoint call (or of the flow) in both executions."""

    #: `output`, `input:NAME` or `saved:NAME` (with `@vN` for a later version of a name).
    label: str
    status: str
    #: `text`, `json`, `binary` or `too_large` (compared by content key only).
    kind: str
    a_type: str | None = None
    b_type: str | None = None
    a_size: int | None = None
    b_size: int | None = None
    #: The unified diff of the two renderings ("" when the same or not renderable).
    diff: str = ""
    truncated: bool = False


@dataclass
class CheckpointDiff(_Base):
    """One checkpoint call in both executions."""

    call_id: str
    name: str
    status: str
    a_status: str | None
    b_status: str | None
    artifacts: list[ArtifactDiff] = field(default_factory=list)


@dataclass
class ExecutionDiff(_Base):
    """Execution `a` against execution `b`, checkpoint by checkpoint."""

    a: str
    b: str
    a_flow: str
    b_flow: str
    a_status: str
    b_status: str
    #: True when `b` is a replay of `a` (or `a` of `b`).
    replay: bool
    checkpoints: list[CheckpointDiff]
    #: The flow's recorded inputs and its result, compared like a checkpoint's artifacts.
    inputs: ArtifactDiff | None
    result: ArtifactDiff | None
    #: Checkpoints per status: {"same": n, "changed": n, "only_in_a": n, "only_in_b": n}.
    summary: dict[str, int]
    #: The first checkpoint (in `a`'s order) that is not the same, or None.
    first_difference: str | None
    #: Model usage of both and `b - a`: {"a": {...}, "b": {...}, "token_delta", "cost_delta_usd"}.
    usage: dict[str, Any]
    #: No checkpoint differs, nor the flow's inputs, result and waits.
    identical: bool = False
    #: The waits of both by name (`wait:NAME`): their answers compared as JSON, `kind` "json".
    waits: list[ArtifactDiff] = field(default_factory=list)


@dataclass
class MatrixRow(_Base):
    """One checkpoint call across the executions of a matrix."""

    call_id: str
    name: str
    #: Per execution id: `base` (the baseline has it), `same` / `changed` (against the
    #: baseline), `missing` (the baseline has it, this one not) or `added` (this one has it,
    #: the baseline not).
    cells: dict[str, str]


@dataclass
class DiffMatrix(_Base):
    """Several executions against the first (the baseline), checkpoint by checkpoint."""

    baseline: str
    exec_ids: list[str]
    rows: list[MatrixRow]
    #: Every pair (i < j): {"a", "b", "same", "changed", "only_in_a", "only_in_b"}.
    pairs: list[dict[str, Any]]
    #: Model usage per execution and its delta against the baseline.
    usage: dict[str, dict[str, Any]]


# -- rendering ------------------------------------------------------------------------------


class _Renderer:
    """Artifact values as comparable text, each content key read and rendered once."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._done: dict[str, tuple[str, str | None]] = {}

    def render(self, art: Artifact) -> tuple[str, str | None]:
        """(kind, text): text None for `binary` and `too_large`."""
        found = self._done.get(art.key)
        if found is None:
            found = self._done[art.key] = self._render(art)
        return found

    def fingerprint(self, art: Artifact) -> str:
        """Equal for artifacts that compare the same."""
        text = self.render(art)[1]
        if text is None:
            return f"key:{art.key}"
        return "text:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def _render(self, art: Artifact) -> tuple[str, str | None]:
        if art.size > self.max_bytes:
            return "too_large", None
        record = art._record
        stack = art._stack
        assert record is not None and stack is not None
        data = read_bytes(stack.artifact_store, record)
        if record.serializer == "bytes":
            return "binary", None
        if record.serializer == "pydantic":  # "module:Class\n{json}": rendered without importing it
            body = data.partition(b"\n")[2]
            return "json", _json_text(json.loads(body))
        value = deserialize(data, record.serializer)
        if isinstance(value, str):
            return "text", value
        if isinstance(value, bytes | bytearray):
            return "binary", None
        plain = _plain(value)
        if plain is not None:
            return "json", _json_text(plain)
        return "text", repr(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=repr)


def _plain(value: Any) -> Any:
    """`value` as JSON-able data (pydantic models and dataclasses dumped), or None if it is not."""
    if hasattr(value, "model_dump") and callable(value.model_dump):
        try:
            return value.model_dump(mode="json")
        except Exception:
            return None
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return value


def _unified(a_text: str, b_text: str, a_name: str, b_name: str, max_lines: int,
             context: int) -> tuple[str, bool]:
    lines = list(difflib.unified_diff(
        a_text.splitlines(), b_text.splitlines(), fromfile=a_name, tofile=b_name, lineterm="",
        n=context,
    ))
    if len(lines) > max_lines:
        cut = len(lines) - max_lines
        return "\n".join([*lines[:max_lines], f"... ({cut} more lines)"]), True
    return "\n".join(lines), False


# -- artifacts by label ---------------------------------------------------------------------


_ORDER = {"output": 0, "saved": 1, "input": 2}


def _labelled(artifacts: list[Artifact]) -> dict[str, Artifact]:
    """A call's artifacts by label, in this order: `output`, `saved:NAME`, `input:NAME`
    (`@vN` for a later version of a name)."""
    out: dict[str, Artifact] = {}
    for art in sorted(artifacts, key=lambda a: (_ORDER.get(a.direction, 3), a.name, a.version)):
        label = "output" if art.direction == "output" else f"{art.direction}:{art.name}"
        if label in out:
            label = f"{label}@v{art.version}"
        out[label] = art
    return out


class _Comparer:
    def __init__(self, a: Execution, b: Execution, *, max_bytes: int, max_lines: int,
                 context: int, renderer: _Renderer | None = None) -> None:
        self.a, self.b = a, b
        self.max_lines, self.context = max_lines, context
        self.renderer = renderer or _Renderer(max_bytes)

    def artifact(self, label: str, where: str, x: Artifact | None, y: Artifact | None) -> ArtifactDiff:
        if x is None or y is None:
            one = x or y
            assert one is not None
            kind = self.renderer.render(one)[0]
            return ArtifactDiff(label, ONLY_A if y is None else ONLY_B, kind,
                                a_type=x.type_name if x else None, b_type=y.type_name if y else None,
                                a_size=x.size if x else None, b_size=y.size if y else None)
        out = ArtifactDiff(label, SAME, "", a_type=x.type_name, b_type=y.type_name,
                           a_size=x.size, b_size=y.size)
        if x.key == y.key and x.serializer == y.serializer:
            out.kind = self.renderer.render(x)[0] if x.size <= self.renderer.max_bytes else "too_large"
            return out
        kind_a, text_a = self.renderer.render(x)
        kind_b, text_b = self.renderer.render(y)
        out.kind = kind_a if kind_a == kind_b else (kind_b if kind_a == "text" else kind_a)
        if text_a is None or text_b is None:
            out.status = SAME if x.key == y.key else CHANGED
            return out
        if text_a == text_b and x.type_name == y.type_name:
            return out
        out.status = CHANGED
        out.diff, out.truncated = _unified(
            text_a, text_b, f"a/{where}/{label}", f"b/{where}/{label}", self.max_lines, self.context
        )
        return out

    def checkpoints(self) -> list[CheckpointDiff]:
        a_calls = {c.call_id: c for c in self.a.checkpoints}
        b_calls = {c.call_id: c for c in self.b.checkpoints}
        order = [c.call_id for c in sorted(self.a.checkpoints, key=lambda c: c.seq)]
        for c in sorted(self.b.checkpoints, key=lambda c: c.seq):
            if c.call_id not in a_calls:
                order.append(c.call_id)
        out = []
        for call_id in order:
            x, y = a_calls.get(call_id), b_calls.get(call_id)
            if x is None or y is None:
                one = x or y
                assert one is not None
                out.append(CheckpointDiff(call_id, one.name, ONLY_B if x is None else ONLY_A,
                                          x.status if x else None, y.status if y else None))
                continue
            xa, ya = _labelled(x.artifacts), _labelled(y.artifacts)
            arts = [self.artifact(label, call_id, xa.get(label), ya.get(label))
                    for label in [*xa, *(k for k in ya if k not in xa)]]
            same = x.status == y.status and not any(_counts(d) for d in arts)
            out.append(CheckpointDiff(call_id, x.name, SAME if same else CHANGED, x.status,
                                      y.status, arts))
        return out

    def waits(self) -> list[ArtifactDiff]:
        """Each wait of either execution by name: its status and its answer compared."""
        xs = {w["name"]: w for w in self.a.waits}
        ys = {w["name"]: w for w in self.b.waits}
        out = []
        for name in [*xs, *(n for n in ys if n not in xs)]:
            x, y = xs.get(name), ys.get(name)
            label = f"wait:{name}"
            if x is None or y is None:
                out.append(ArtifactDiff(label, ONLY_B if x is None else ONLY_A, "json"))
                continue
            texts = [_json_text({"status": w["status"], "value": w["value"]}) for w in (x, y)]
            d = ArtifactDiff(label, SAME if texts[0] == texts[1] else CHANGED, "json")
            if d.status == CHANGED:
                d.diff, d.truncated = _unified(texts[0], texts[1], f"a/{label}", f"b/{label}",
                                               self.max_lines, self.context)
            out.append(d)
        return out

    def flow_artifact(self, label: str, x: Artifact | None, y: Artifact | None) -> ArtifactDiff | None:
        if x is None and y is None:
            return None
        return self.artifact(label, "flow", x, y)


def _counts(d: ArtifactDiff) -> bool:
    """Whether an artifact's difference makes its call differ: an input recorded on one side
    only does not (a replay reuses a call before `at` without recording its inputs)."""
    if d.status == SAME:
        return False
    return not (d.label.startswith("input:") and d.status in (ONLY_A, ONLY_B))


def compare(a: Execution, b: Execution, *, max_bytes: int = DEFAULT_MAX_BYTES,
            max_lines: int = DEFAULT_MAX_LINES, context: int = 3) -> ExecutionDiff:
    """`a` against `b` (both from `executions.get`, with their checkpoints and artifacts)."""
    cmp = _Comparer(a, b, max_bytes=max_bytes, max_lines=max_lines, context=context)
    checkpoints = cmp.checkpoints()
    summary = {s: 0 for s in STATUSES}
    for c in checkpoints:
        summary[c.status] += 1
    first = next((c.call_id for c in checkpoints if c.status != SAME), None)
    inputs = cmp.flow_artifact("inputs", a.inputs_artifact, b.inputs_artifact)
    result = cmp.flow_artifact("result", a.result_artifact, b.result_artifact)
    waits = cmp.waits()
    return ExecutionDiff(
        a=a.exec_id, b=b.exec_id, a_flow=a.flow_name, b_flow=b.flow_name,
        a_status=a.status.value, b_status=b.status.value,
        replay=b.original_exec_id == a.exec_id or a.original_exec_id == b.exec_id,
        checkpoints=checkpoints,
        inputs=inputs, result=result, summary=summary, first_difference=first,
        usage=usage_delta(a.usage, b.usage),
        identical=first is None and all(d is None or d.status == SAME for d in (inputs, result, *waits)),
        waits=waits,
    )


def usage_delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Both executions' model usage and `b - a` (tokens: input + output; cost None if unknown)."""
    def tokens(u: dict[str, Any]) -> int:
        return int(u.get("input_tokens") or 0) + int(u.get("output_tokens") or 0)

    cost_a, cost_b = a.get("cost_usd"), b.get("cost_usd")
    calls = bool(a.get("model_calls") or b.get("model_calls"))
    return {
        "a": a, "b": b,
        "token_delta": tokens(b) - tokens(a) if calls else None,
        "cost_delta_usd": (cost_b - cost_a) if cost_a is not None and cost_b is not None else None,
    }


# -- the matrix -----------------------------------------------------------------------------


def matrix(executions: list[Execution], *, max_bytes: int = DEFAULT_MAX_BYTES) -> DiffMatrix:
    """The executions against the first, checkpoint by checkpoint, and every pair's counts."""
    if len(executions) < 2:
        raise InvalidValueError(
            f"a diff matrix needs two executions or more, got {len(executions)}; give more ids, "
            "or one execution that has replays"
        )
    renderer = _Renderer(max_bytes)
    prints = [_fingerprints(e, renderer) for e in executions]
    names: dict[str, str] = {}
    order: list[str] = []
    for e in executions:
        for c in sorted(e.checkpoints, key=lambda c: c.seq):
            if c.call_id not in names:
                names[c.call_id] = c.name
                order.append(c.call_id)
    base = prints[0]
    rows = []
    for call_id in order:
        cells: dict[str, str] = {}
        for e, found in zip(executions, prints, strict=True):
            here, there = found.get(call_id), base.get(call_id)
            if found is base:
                cells[e.exec_id] = "base" if here is not None else "missing"
            elif here is None:
                cells[e.exec_id] = "missing"
            elif there is None:
                cells[e.exec_id] = "added"
            else:
                cells[e.exec_id] = SAME if here == there else CHANGED
        rows.append(MatrixRow(call_id, names[call_id], cells))
    pairs = []
    for i in range(len(executions)):
        for j in range(i + 1, len(executions)):
            counts = {s: 0 for s in STATUSES}
            x, y = prints[i], prints[j]
            for call_id in order:
                if call_id in x and call_id in y:
                    counts[SAME if x[call_id] == y[call_id] else CHANGED] += 1
                elif call_id in x:
                    counts[ONLY_A] += 1
                elif call_id in y:
                    counts[ONLY_B] += 1
            pairs.append({"a": executions[i].exec_id, "b": executions[j].exec_id, **counts})
    first = executions[0]
    return DiffMatrix(
        baseline=first.exec_id, exec_ids=[e.exec_id for e in executions], rows=rows, pairs=pairs,
        usage={e.exec_id: usage_delta(first.usage, e.usage) for e in executions},
    )


def _fingerprints(e: Execution, renderer: _Renderer) -> dict[str, tuple[str, ...]]:
    """Per call id: its status and its output's and saved artifacts' labels and fingerprints
    (inputs aside: a replay's reused calls record none; a changed input changes the output
    of any call that depends on it)."""
    return {
        c.call_id: (c.status, *sorted(f"{label}={renderer.fingerprint(art)}"
                                      for label, art in _labelled(c.artifacts).items()
                                      if not label.startswith("input:")))
        for c in e.checkpoints
    }


def replays_of(api: ExecutionsAPI, exec_id: str) -> list[str]:
    """The ids of the executions that replay `exec_id`, oldest first."""
    found = [e for e in api.list() if e.original_exec_id == exec_id]
    found.sort(key=lambda e: (e.started_at is None, e.started_at))
    return [e.exec_id for e in found]
