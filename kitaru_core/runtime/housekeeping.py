"""Housekeeping of a stack's state: delete executions, collect unreferenced blobs, check health.

Rules (the command line, the client and a server all go through these):

- **Deleting** removes an execution with its calls, waits, logs, metadata and
  artifact references (memory stays), and its task files. Finished executions
  (completed, failed, cancelled) are deleted as asked. A waiting execution, or a
  running one whose owner is gone, could still be resumed: it is deleted only
  with `force`. A running execution whose runner is alive is never deleted: its
  runner would go on recording into a removed execution; cancel it first.
- **gc** removes blobs that no record references, except blobs modified within
  the grace period (default one hour) and blobs modified since the start of any
  execution that is still running or polling a wait (less a few minutes' margin).
  A run writes a blob before it records the reference, sometimes long before (a
  call's input blobs are recorded with its completed call; an isolated call's
  output waits in the store for its runner to come back after a crash): these
  rules keep such blobs. An abandoned `running` execution therefore holds back
  the blobs newer than it: resume or delete it. Leftovers of killed writers
  (partial blobs, temporary files) are unreferenced blobs like any other.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InvalidStateError, InvalidValueError, KitaruError
from ..records import ExecutionRecord
from ..status import ExecutionStatus
from .owner import owner_is_alive

if TYPE_CHECKING:
    from ..interfaces import BlobInfo
    from ..stack import Stack

#: Blobs modified within this many seconds are never collected (see the module doc).
DEFAULT_GRACE_SECONDS = 3600.0
#: Blobs modified after a live execution's start, less this margin, are never collected.
LIVE_MARGIN_SECONDS = 300.0

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `90s`, `15m`, `12h`, `30d` or `2w`."""
    match = _DURATION.match(text or "")
    if not match:
        raise InvalidValueError(
            f"{text!r} is not a duration; write a number and a unit: s, m, h, d or w (e.g. 30d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


# -- deleting executions ---------------------------------------------------------------------


@dataclass
class DeleteResult:
    """What `delete_executions` did, or would do with `dry_run`."""

    deleted: list[str] = field(default_factory=list)
    #: exec id -> why it was kept (live runner; resumable without `force`)
    refused: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False


def select_executions(
    stack: Stack,
    exec_ids: Sequence[str] = (),
    *,
    older_than: float | None = None,
    status: str | None = None,
    now: float | None = None,
) -> list[ExecutionRecord]:
    """The executions named by id (or unique prefix), or else matching every filter.

    With ids, the filters narrow them; without ids at least one filter is required
    (deleting everything takes an explicit filter, such as `older_than=0`).
    """
    registry = stack.registry
    if status is not None and status not in {s.value for s in ExecutionStatus}:
        raise InvalidValueError(
            f"status {status!r} is not a status; use one of "
            + ", ".join(s.value for s in ExecutionStatus)
        )
    if exec_ids:
        found = {r.exec_id: r for r in (registry.get_execution(i) for i in exec_ids)}
        records = list(found.values())
    elif older_than is None and status is None:
        raise InvalidValueError(
            "name the executions to delete: ids, --older-than (e.g. 30d) or --status"
        )
    else:
        records = registry.list_executions(status=status)
    cutoff = None if older_than is None else (now or time.time()) - older_than
    return [
        r for r in records
        if (cutoff is None or (r.created_at or 0) < cutoff) and (status is None or r.status == status)
    ]


def deletion_refusal(record: ExecutionRecord, *, force: bool) -> str | None:
    """Why this execution may not be deleted (None: it may)."""
    if ExecutionStatus(record.status).is_finished:
        return None
    if owner_is_alive(record.owner, record.lease_expires):
        return (
            f"{record.status}, its runner is alive; cancel it first "
            f"(`kitaru executions cancel {record.exec_id}`)"
        )
    if not force:
        return f"{record.status} and resumable; pass --force to delete it anyway"
    return None


def delete_executions(
    stack: Stack, records: Sequence[ExecutionRecord], *, force: bool = False, dry_run: bool = False
) -> DeleteResult:
    """Delete the given executions (see the module doc for which ones are refused)."""
    result = DeleteResult(dry_run=dry_run)
    for record in records:
        why = deletion_refusal(record, force=force)
        if why is None:
            result.deleted.append(record.exec_id)
        else:
            result.refused[record.exec_id] = why
    if dry_run or not result.deleted:
        return result
    stack.registry.delete_executions(result.deleted)
    store = stack.artifact_store
    for exec_id in result.deleted:
        store.delete_files(f"tasks/{exec_id}")
    return result


def delete_one(stack: Stack, exec_id: str, *, force: bool = False) -> str:
    """Delete one execution by id or prefix; a typed error says why when it may not be."""
    record = stack.registry.get_execution(exec_id)
    result = delete_executions(stack, [record], force=force)
    if record.exec_id in result.refused:
        raise InvalidStateError(f"execution {record.exec_id} is {result.refused[record.exec_id]}")
    return record.exec_id


# -- collecting unreferenced blobs -------------------------------------------------------------


@dataclass
class GcReport:
    """What `collect_garbage` removed, or would remove with `dry_run`."""

    removable: list[BlobInfo] = field(default_factory=list)
    removed: int = 0
    kept_recent: int = 0  # unreferenced, but within the grace period or a live execution's time
    referenced: int = 0
    live_since: float | None = None  # the start of the oldest live execution, if any
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    dry_run: bool = True

    @property
    def removable_bytes(self) -> int:
        return sum(b.size for b in self.removable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removable_blobs": len(self.removable),
            "removable_bytes": self.removable_bytes,
            "removed_blobs": self.removed,
            "kept_recent_blobs": self.kept_recent,
            "referenced_blobs": self.referenced,
            "grace_seconds": self.grace_seconds,
            "live_since": self.live_since,
            "keys": [b.key for b in self.removable],
        }


def live_since(stack: Stack) -> float | None:
    """The creation time of the oldest execution that may still write blobs, or None."""
    registry = stack.registry
    starts = [r.created_at for r in registry.list_executions(status=ExecutionStatus.RUNNING.value)]
    starts += [
        r.created_at for r in registry.list_executions(status=ExecutionStatus.WAITING.value)
        if r.owner  # still polling its wait: calls submitted before it may be running
    ]
    return min(starts) if starts else None


#: Registry document kinds whose bodies name blobs to keep (`blob_keys`): a deployment's code.
DOCUMENT_BLOB_KINDS = ("deployment",)


def kept_blob_keys(stack: Stack) -> set[str]:
    """Blobs `gc` keeps that no artifact references: those registry documents name (a
    deployment's code package) and the code packages of unfinished executions (a resume
    unpacks it again, on a remote runner too)."""
    registry = stack.registry
    keys: set[str] = set()
    for kind in DOCUMENT_BLOB_KINDS:
        try:
            docs = registry.list_documents(kind)
        except ConfigError:  # a registry without documents holds no deployments
            continue
        for doc in docs:
            keys.update(str(k) for k in doc.body.get("blob_keys") or ())
    for status in (ExecutionStatus.RUNNING.value, ExecutionStatus.WAITING.value):
        for record in registry.list_executions(status=status):
            package = (record.flow_ref or {}).get("code_package")
            if package:
                keys.add(str(package))
    return keys


def collect_garbage(
    stack: Stack,
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    dry_run: bool = True,
    now: float | None = None,
) -> GcReport:
    """Remove (or with `dry_run` only list) blobs that no record references."""
    if grace_seconds < 0:
        raise InvalidValueError(f"the grace period must not be negative (got {grace_seconds} s)")
    now = time.time() if now is None else now
    store = stack.artifact_store
    # The live executions first, the referenced keys next, the blobs last: a blob written
    # after its reference was read is newer than the live execution that wrote it.
    since = live_since(stack)
    referenced = stack.registry.referenced_blob_keys() | kept_blob_keys(stack)
    keep_after = now - grace_seconds
    if since is not None:
        keep_after = min(keep_after, since - LIVE_MARGIN_SECONDS)
    report = GcReport(grace_seconds=grace_seconds, live_since=since, dry_run=dry_run)
    for blob in store.list_blobs():
        if blob.key in referenced:
            report.referenced += 1
        elif blob.modified >= keep_after:
            report.kept_recent += 1
        else:
            report.removable.append(blob)
    if not dry_run and report.removable:
        # Listed again as they are deleted: a blob a run found in place (refreshing its time)
        # after the first listing is kept. The window left is between one blob's listing and
        # its deletion, not the whole collection.
        candidates = {b.key for b in report.removable}
        for blob in store.list_blobs():
            if blob.key in candidates and blob.modified < keep_after and store.delete_blob(blob.key):
                report.removed += 1
    return report


# -- health -------------------------------------------------------------------------------------


@dataclass
class HealthReport:
    """What `check_health` found; `problems` empty means sound."""

    registry_checked: bool
    problems: list[str] = field(default_factory=list)
    blobs_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_health(stack: Stack, *, full: bool = False) -> HealthReport:
    """Check the registry's storage (quick, or `full`); with `full`, also every referenced
    blob: present, of the recorded size, holding the bytes its key names."""
    registry = stack.registry
    problems = registry.check_integrity(full=full)
    report = HealthReport(registry_checked=problems is not None, problems=list(problems or []))
    if not full or report.problems:
        return report
    store = stack.artifact_store
    sizes: dict[str, int] = {}
    for art in registry.list_artifacts():
        if art.data is None:
            sizes[art.key] = art.size
    for key in sorted(sizes):
        report.blobs_checked += 1
        try:
            data = store.get_blob(key)
        except KitaruError as exc:
            report.problems.append(f"blob {key}: {exc}")
            continue
        if len(data) != sizes[key]:
            report.problems.append(
                f"blob {key}: {len(data)} bytes where the record says {sizes[key]} (cut short)"
            )
        elif hashlib.sha256(data).hexdigest() != key:
            report.problems.append(f"blob {key}: its bytes do not match its sha256 key")
    return report
