"""The `sqlite` registry: the durable record in one SQLite file (WAL mode).

It uses the standard library's `sqlite3` directly rather than SQLAlchemy:
on the hot path the driver's own statement cache is the difference between
~10 and ~100 us.

The journal. A completed checkpoint call (its record and its artifact
references, nothing else) is committed as ONE row appended to `journal`, in a
statement of its own: one B-tree page or two per commit, the shape of the
cheapest durable insert SQLite has, where writing the `calls` row, three
`artifacts` rows, their indexes and version counters took ~10 pages. Journal rows
are folded into `calls` and `artifacts` (in their commit order, in one
transaction) every `_FOLD_EVERY` calls, at the start of every other write
transaction and before every read, by whichever process comes first, so a
reader never sees the journal: every method here reads folded tables. A method
added here that reads `calls` or `artifacts` goes through `_query` or `_tx`,
which fold first. (A registry opened read-only cannot fold: it shows what was
folded, i.e. everything but the last calls of a process killed before it
folded them.)

Durability: in the default mode (`synchronous=NORMAL` with WAL) a commit
survives a kill of the process; in strict mode (`synchronous=FULL`) it also
survives a power loss. WAL checkpoints (copying the log into the database
file, with fsyncs) run on a background connection, not inside a commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import pickle
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kitaru_core.errors import (
    DocumentConflictError,
    StorageError,
)
from kitaru_core.ids import SHOWN_MATCHES, one_artifact, one_execution, prefix_range
from kitaru_core.interfaces import ComponentContext, FlavorConfig, Registry
from kitaru_core.records import (
    ArtifactRecord,
    CallRecord,
    DocumentRecord,
    ExecutionRecord,
    LogChunk,
    MemoryRecord,
    MetadataEntry,
    WaitRecord,
)

from . import sqlite_errors
from .configs import SqliteRegistryConfig

# Version 2: `calls` without rowid, and artifact versions counted in `artifact_versions`
# (kept by a trigger) instead of an index over (name, version). Both mean fewer pages
# written per checkpoint call. Version 3: `artifacts.data`, small payloads kept inline.
# Version 4: the `memory` table (kitaru.memory), created by _SCHEMA like any missing table.
# Version 5: the `journal` (see the module doc); versions counted by `_insert_artifact_rows`,
# once per name and commit, instead of by a trigger once per artifact.
# Version 6: the `documents` table (deployments, secrets, API keys), created by _SCHEMA.
# Version 7: `executions.runner`, the launched runner the watchdog follows.
# Version 8: executions listed by the index (created_at, exec_id) (keyset pages) instead of
# (created_at) with the rowid.
# An older file is migrated in place when opened.
SCHEMA_VERSION = 8
_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    exec_id TEXT PRIMARY KEY, flow_name TEXT NOT NULL, status TEXT NOT NULL,
    flow_ref TEXT, stack TEXT, inputs_artifact TEXT, result_artifact TEXT, failure TEXT,
    original_exec_id TEXT, replay TEXT, owner TEXT, lease_expires REAL,
    created_at REAL, started_at REAL, ended_at REAL, version INTEGER NOT NULL DEFAULT 0,
    runner TEXT
);
CREATE INDEX IF NOT EXISTS executions_keyset ON executions(created_at, exec_id);
CREATE TABLE IF NOT EXISTS calls (
    exec_id TEXT NOT NULL, call_id TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL,
    status TEXT NOT NULL, type TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL, ended_at REAL, output_artifact TEXT, error TEXT, cache_key TEXT, task TEXT,
    PRIMARY KEY (exec_id, call_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS calls_cache ON calls(cache_key) WHERE cache_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS artifacts (
    artifact_id TEXT PRIMARY KEY, exec_id TEXT NOT NULL, call_id TEXT, name TEXT NOT NULL,
    direction TEXT NOT NULL, key TEXT NOT NULL, serializer TEXT NOT NULL, type_name TEXT,
    size INTEGER, version INTEGER NOT NULL, created_at REAL, metadata TEXT, data BLOB
);
CREATE INDEX IF NOT EXISTS artifacts_exec ON artifacts(exec_id);
CREATE TABLE IF NOT EXISTS artifact_versions (
    name TEXT PRIMARY KEY, latest INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS waits (
    exec_id TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,
    question TEXT, schema TEXT, metadata TEXT, value TEXT, timeout REAL,
    created_at REAL, answered_at REAL, PRIMARY KEY (exec_id, name)
);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, exec_id TEXT NOT NULL, call_id TEXT,
    stream TEXT NOT NULL, text TEXT NOT NULL, key TEXT, created_at REAL
);
CREATE INDEX IF NOT EXISTS logs_exec ON logs(exec_id, seq);
CREATE TABLE IF NOT EXISTS metadata (
    id INTEGER PRIMARY KEY AUTOINCREMENT, exec_id TEXT NOT NULL, call_id TEXT,
    key TEXT NOT NULL, value TEXT, created_at REAL
);
CREATE INDEX IF NOT EXISTS metadata_exec ON metadata(exec_id);
CREATE TABLE IF NOT EXISTS memory (
    scope TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, artifact_id TEXT,
    deleted INTEGER NOT NULL DEFAULT 0, exec_id TEXT, call_id TEXT, created_at REAL,
    PRIMARY KEY (scope, key, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
    created_at REAL, updated_at REAL, PRIMARY KEY (kind, name)
) WITHOUT ROWID;
"""
_MIGRATE_FROM_1 = (
    "INSERT OR REPLACE INTO artifact_versions (name, latest) "
    "SELECT name, MAX(version) FROM artifacts GROUP BY name",
    "DROP INDEX IF EXISTS artifacts_name",
)
_MIGRATE_FROM_2 = ("ALTER TABLE artifacts ADD COLUMN data BLOB",)
_MIGRATE_TO_5 = ("DROP TRIGGER IF EXISTS artifacts_version",)
_MIGRATE_TO_7 = ("ALTER TABLE executions ADD COLUMN runner TEXT",)
_MIGRATE_TO_8 = ("DROP INDEX IF EXISTS executions_created",)

_EXEC_COLS = (
    "exec_id", "flow_name", "status", "flow_ref", "stack", "inputs_artifact", "result_artifact",
    "failure", "original_exec_id", "replay", "owner", "lease_expires", "created_at",
    "started_at", "ended_at", "version", "runner",
)
_EXEC_JSON = {"flow_ref", "stack", "failure", "replay", "runner"}
_CALL_COLS = (
    "exec_id", "call_id", "name", "seq", "status", "type", "attempts", "started_at", "ended_at",
    "output_artifact", "error", "cache_key", "task",
)
_ART_COLS = (
    "artifact_id", "exec_id", "call_id", "name", "direction", "key", "serializer", "type_name",
    "size", "version", "created_at", "metadata", "data",
)
# The columns in ArtifactRecord's field order (metadata, then data, last), so a row builds
# a record positionally (resume reads every artifact of an execution).
_ART_SELECT = ", ".join(f.name for f in dataclasses.fields(ArtifactRecord))
_WAIT_COLS = (
    "exec_id", "name", "seq", "status", "question", "schema", "metadata", "value", "timeout",
    "created_at", "answered_at",
)
# An upsert rewrites the row in place (INSERT OR REPLACE would delete it and insert it
# again, dirtying the primary-key index too): fewer pages per commit.
_INSERT_CALL = (
    f"INSERT INTO calls ({', '.join(_CALL_COLS)}) "
    f"VALUES ({', '.join('?' * len(_CALL_COLS))}) ON CONFLICT (exec_id, call_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _CALL_COLS[2:])
)
_INSERT_ART = f"INSERT INTO artifacts ({', '.join(_ART_COLS)}) VALUES ({', '.join('?' * len(_ART_COLS))})"
_VERSION_AT = _ART_COLS.index("version")
_BUMP_VERSION = (
    "INSERT INTO artifact_versions (name, latest) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET latest = excluded.latest"
)
_INSERT_JOURNAL = "INSERT INTO journal (record) VALUES (?)"
#: Journal rows (completed calls) this process appends before it folds them itself.
_FOLD_EVERY = 256
_INSERT_LOG = (
    "INSERT INTO logs (exec_id, call_id, stream, text, key, created_at) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_META = "INSERT INTO metadata (exec_id, call_id, key, value, created_at) VALUES (?, ?, ?, ?, ?)"
_MEM_COLS = "scope, key, version, artifact_id, deleted, exec_id, call_id, created_at"


_CHECKPOINT_EVERY = 512  # commits between two background checkpoints (a WAL of ~10 MB)
# In strict mode a commit that extends the WAL file costs about twice one that reuses it
# (its fsync commits file-system metadata too), and each process starts a new WAL file:
# checkpoints four times as often keep the growing part short (bench/README.md).
_STRICT_CHECKPOINT_EVERY = 128
_AUTOCHECKPOINT_PAGES = 8000  # the writer checkpoints itself past this WAL size (32 MB)


class _Checkpointer:
    """Copies the WAL into the database file from a thread and connection of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses its
    threshold, fsyncs included, so every few hundred checkpoint calls one of
    them would pay for it. A passive checkpoint blocks no reader or writer,
    so here it runs beside the flow instead. `committed` is called with the
    registry's lock held, outside a transaction.

    The writer catches up after each background checkpoint: while that ran, the
    flow went on appending to the WAL, so it never ends fully copied, and SQLite
    starts the WAL over from its first frame only when it is. A WAL that is never
    started over grows by every commit, and a commit that extends the file makes
    its fsync commit the file system's metadata too: in strict mode that doubled
    the cost of every checkpoint call. The catch-up copies only the frames written
    meanwhile (one passive checkpoint on the writer's own connection, lock held,
    so nothing is appended during it); the next write then reuses the file.
    """

    def __init__(self, path: str, busy_timeout: float, every: int) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._every = every
        self._commits = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._finished = False  # a background checkpoint ended since the writer caught up

    def committed(self, conn: sqlite3.Connection) -> None:
        self._commits += 1
        if self._finished:
            self._finished = False
            with contextlib.suppress(sqlite3.Error):  # busy: the WAL grows until the next one
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        if self._commits < self._every or self._closed:
            return
        self._commits = 0
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="kitaru-sqlite-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        conn = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closed:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self._finished = True
                except sqlite3.Error:
                    pass  # busy: the next wake-up tries again, and the writer's safety net remains
        finally:
            conn.close()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)


_ENCODER = json.JSONEncoder(default=repr)  # built once: json.dumps(default=...) builds one per call
# The C encoder `_ENCODER.encode` makes for every value, made once (the same text). Without
# circular-reference markers, so a cycle is a RecursionError, answered by `_ENCODER` itself.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_encode: Any = (
    _C_ENCODER(None, repr, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    if _C_ENCODER is not None else None
)


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    if _encode is not None:
        try:
            return "".join(_encode(value, 0))
        except RecursionError:
            pass
    return _ENCODER.encode(value)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _artifact_row(a: ArtifactRecord) -> list[Any]:
    """An artifact's `_ART_COLS` values, its version not yet numbered."""
    return [
        a.artifact_id, a.exec_id, a.call_id, a.name, a.direction, a.key, a.serializer,
        a.type_name, a.size, 0, a.created_at, None if a.metadata is None else _dumps(a.metadata),
        a.data,
    ]


class _PlainUnpickler(pickle.Unpickler):
    """Reads journal records: tuples and lists of str, bytes, numbers and None only.

    Pickle, not JSON, because it writes floats and bytes as they are (JSON's float repr
    and escaping were a fifth of a call's CPU); no class is ever looked up, so a record
    can build nothing but plain values.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a journal record names {module}.{name}; it holds plain values only")


def _pack(record: tuple[Any, ...]) -> bytes:
    return pickle.dumps(record, protocol=5)


def _unpack(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()



class SqliteRegistry(Registry):
    """Registry in one SQLite file, safe for many threads and processes."""

    config: SqliteRegistryConfig

    @classmethod
    def reach(cls, config: FlavorConfig) -> str:
        """A SQLite file on this machine: its other processes can use it, nothing elsewhere."""
        return "machine"

    def __init__(self, config: SqliteRegistryConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.path = Path(config.path).expanduser() if config.path else context.home / "kitaru.db"
        self._lock = threading.RLock()
        self._strict = context.strict
        self.inline_limit = config.inline_max_bytes
        #: True when the file (or its folder) cannot be written: reads work, writes raise
        #: a one-line `StorageError`.
        self.read_only = not sqlite_errors.writable(self.path)
        sqlite_errors.check_not_truncated(self.path)
        self._checkpointer = _Checkpointer(
            str(self.path), config.busy_timeout,
            _STRICT_CHECKPOINT_EVERY if context.strict else _CHECKPOINT_EVERY,
        )
        self._journaled = 0  # journal rows this process appended and has not folded yet
        try:
            if self.read_only:
                self._conn = self._connect_read_only(config.busy_timeout)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(
                    str(self.path), timeout=config.busy_timeout, isolation_level=None,
                    check_same_thread=False, cached_statements=256,
                )
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute(f"PRAGMA synchronous={'FULL' if context.strict else 'NORMAL'}")
                # Checkpoints run in _Checkpointer; the automatic one stays as a safety net.
                self._conn.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
            self._create_schema()
        except sqlite3.Error as exc:
            raise sqlite_errors.translate(exc, self.path) from exc

    def _connect_read_only(self, busy_timeout: float) -> sqlite3.Connection:
        """Open a database nobody here may write: shared read-only if SQLite can keep its
        WAL index, else as immutable (a read-only home has no other writer)."""
        if not self.path.exists():
            raise StorageError(
                f"there is no registry at {self.path} and its folder is read-only; make the "
                "kitaru home writable (or set KITARU_HOME to a writable folder) and run `kitaru init`"
            )
        uri = self.path.resolve().as_uri()
        for mode in ("mode=ro", "immutable=1"):
            conn = sqlite3.connect(
                f"{uri}?{mode}", uri=True, timeout=busy_timeout, isolation_level=None,
                check_same_thread=False, cached_statements=256,
            )
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError:
                conn.close()
                if mode == "immutable=1":
                    raise
        raise AssertionError("unreachable")

    def _create_schema(self) -> None:
        with self._lock:
            if self._schema_version() >= SCHEMA_VERSION:
                return
            if self.read_only:
                raise StorageError(
                    f"the registry at {self.path} needs an upgrade (schema "
                    f"{self._schema_version()} -> {SCHEMA_VERSION}) but its folder is read-only; "
                    "open it once from a writable kitaru home"
                )
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                found = self._schema_version()  # another process may have done it meanwhile
                if found < SCHEMA_VERSION:
                    for stmt in _SCHEMA.strip().split(";"):
                        if stmt.strip():
                            self._conn.execute(stmt)
                    if found == 1:
                        for stmt in _MIGRATE_FROM_1:
                            self._conn.execute(stmt)
                    if found in (1, 2):
                        for stmt in _MIGRATE_FROM_2:
                            self._conn.execute(stmt)
                    for stmt in _MIGRATE_TO_5:
                        self._conn.execute(stmt)
                    columns = {r[1] for r in self._conn.execute("PRAGMA table_info(executions)")}
                    if "runner" not in columns:  # a new file got it from _SCHEMA
                        for stmt in _MIGRATE_TO_7:
                            self._conn.execute(stmt)
                    for stmt in _MIGRATE_TO_8:
                        self._conn.execute(stmt)
                    self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    class _Tx:
        """One write transaction; a SQLite failure leaves as a typed kitaru error."""

        __slots__ = ("checkpointer", "conn", "fold", "lock", "path")

        def __init__(
            self, conn: sqlite3.Connection, lock: threading.RLock, checkpointer: _Checkpointer,
            path: Path, fold: Any,
        ) -> None:
            self.conn = conn
            self.lock = lock
            self.checkpointer = checkpointer
            self.path = path
            self.fold = fold  # folds the journal first (see the module doc)

        def __enter__(self) -> sqlite3.Connection:
            self.lock.acquire()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    self.fold()
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                    raise
            except BaseException as exc:
                self.lock.release()
                if isinstance(exc, sqlite3.Error):
                    raise sqlite_errors.translate(exc, self.path) from exc
                raise
            return self.conn

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            try:
                if exc_type:
                    with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back itself
                        self.conn.execute("ROLLBACK")
                else:
                    try:
                        self.conn.execute("COMMIT")
                    except sqlite3.Error as err:
                        if self.conn.in_transaction:
                            with contextlib.suppress(sqlite3.Error):
                                self.conn.execute("ROLLBACK")
                        raise sqlite_errors.translate(err, self.path) from err
                    self.checkpointer.committed(self.conn)
            finally:
                self.lock.release()
            if isinstance(exc, sqlite3.Error):
                translated = sqlite_errors.translate(exc, self.path)
                if translated is not exc:
                    raise translated from exc

    def _tx(self) -> SqliteRegistry._Tx:
        return SqliteRegistry._Tx(self._conn, self._lock, self._checkpointer, self.path,
                                  self._fold_journal)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._conn
            try:
                if not self.read_only and conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM journal)"
                ).fetchone()[0]:
                    if conn.in_transaction:
                        self._fold_journal()
                    else:
                        with self._tx():  # folds
                            pass
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise sqlite_errors.translate(exc, self.path) from exc

    def close(self) -> None:
        self._checkpointer.close()
        with self._lock:
            try:
                if self._journaled:
                    with self._tx():  # leave the file folded
                        pass
            except (sqlite3.Error, StorageError):
                pass  # the next process to open the file folds it
            finally:
                self._conn.close()

    # -- the journal ------------------------------------------------------------------------
    def _journal_call(self, row: tuple[Any, ...], artifacts: Sequence[ArtifactRecord]) -> None:
        """Commit a completed call and its artifact references as one journal row."""
        record = _pack((row, [_artifact_row(a) for a in artifacts]))
        with self._lock:
            try:
                self._conn.execute(_INSERT_JOURNAL, (record,))
            except sqlite3.Error as exc:
                raise sqlite_errors.translate(exc, self.path) from exc
            self._checkpointer.committed(self._conn)
            self._journaled += 1
            if self._journaled >= _FOLD_EVERY:
                with self._tx():  # folds
                    pass

    def _fold_journal(self) -> None:
        """Move every journal row into `calls` and `artifacts`, oldest first.

        Runs inside a write transaction, with the lock held.
        """
        conn = self._conn
        rows = conn.execute("SELECT id, record FROM journal ORDER BY id").fetchall()
        self._journaled = 0
        if not rows:
            return
        calls: list[Any] = []
        arts: list[Any] = []
        for journal_id, record in rows:
            try:
                call_row, art_rows = _unpack(record)
            except Exception as exc:
                raise StorageError(
                    f"the registry at {self.path} has a damaged journal record ({journal_id}: "
                    f"{exc}); restore the file from a backup, or delete that row of its `journal` table"
                ) from None
            calls.append(call_row)
            arts.extend(art_rows)
        conn.executemany(_INSERT_CALL, calls)
        self._insert_artifact_rows(conn, arts)
        conn.execute("DELETE FROM journal WHERE id <= ?", (rows[-1][0],))

    # -- executions ---------------------------------------------------------------
    def create_execution(
        self, record: ExecutionRecord, artifacts: Sequence[ArtifactRecord] = ()
    ) -> None:
        values = [
            _dumps(getattr(record, c)) if c in _EXEC_JSON else getattr(record, c)
            for c in _EXEC_COLS
        ]
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO executions ({', '.join(_EXEC_COLS)}) "
                f"VALUES ({', '.join('?' * len(_EXEC_COLS))})",
                values,
            )
            if artifacts:
                self._insert_artifacts(conn, artifacts)

    @staticmethod
    def _exec(row: tuple[Any, ...]) -> ExecutionRecord:
        data = dict(zip(_EXEC_COLS, row, strict=True))
        for c in _EXEC_JSON:
            data[c] = _loads(data[c])
        data["flow_ref"] = data["flow_ref"] or {}
        data["stack"] = data["stack"] or {}
        return ExecutionRecord(**data)

    def get_execution(self, exec_id: str) -> ExecutionRecord:
        cols = ", ".join(_EXEC_COLS)
        return one_execution(
            exec_id,
            exact=lambda given: [self._exec(r) for r in self._query(
                f"SELECT {cols} FROM executions WHERE exec_id = ?", (given,))],
            by_prefix=lambda given: [
                self._exec(r) for r in self._by_prefix("executions", "exec_id", cols, given)],
            where=str(self.path),
        )

    def _by_prefix(self, table: str, column: str, cols: str, prefix: str) -> list[tuple[Any, ...]]:
        """Rows whose `column` starts with `prefix`, taken literally (no LIKE or GLOB
        patterns): a range of the primary key, then an exact comparison of the start."""
        low, high = prefix_range(prefix)
        return self._query(
            f"SELECT {cols} FROM {table} WHERE {column} >= ? AND {column} < ? "
            f"AND substr({column}, 1, ?) = ? ORDER BY {column} LIMIT ?",
            (low, high, len(prefix), prefix, SHOWN_MATCHES + 1),
        )

    def list_executions(
        self,
        *,
        flow_name: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRecord]:
        where: list[str] = []
        params: list[Any] = []
        if flow_name:
            where.append("flow_name = ?")
            params.append(flow_name)
        if status:
            where.append("status = ?")
            params.append(status)
        if before is not None:
            # `created_at <= ?` bounds the scan of the (created_at, exec_id) index.
            created, exec_id = float(before[0]), str(before[1])
            where.append("created_at <= ? AND (created_at < ? OR exec_id < ?)")
            params.extend((created, created, exec_id))
        sql = f"SELECT {', '.join(_EXEC_COLS)} FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, exec_id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._exec(r) for r in self._query(sql, params)]

    def claim_execution(
        self, exec_id: str, *, owner: str, lease_expires: float, expected_version: int
    ) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE executions SET owner = ?, lease_expires = ?, status = 'running', "
                "failure = NULL, ended_at = NULL, version = version + 1 "
                "WHERE exec_id = ? AND version = ?",
                (owner, lease_expires, exec_id, expected_version),
            )
            return cur.rowcount == 1

    def renew_lease(self, exec_id: str, *, owner: str, lease_expires: float) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE executions SET lease_expires = ? WHERE exec_id = ? AND owner = ? "
                "AND status IN ('running', 'waiting')",
                (lease_expires, exec_id, owner),
            )
            return cur.rowcount == 1

    def update_execution(
        self,
        exec_id: str,
        fields: dict[str, Any],
        *,
        owner: str | None = None,
        statuses: tuple[str, ...] | None = None,
        expected_version: int | None = None,
    ) -> bool:
        sql, params = self._update_sql(exec_id, fields, owner, statuses, expected_version)
        with self._tx() as conn:
            return conn.execute(sql, params).rowcount == 1

    def record_outcome(
        self,
        exec_id: str,
        fields: dict[str, Any],
        artifacts: Sequence[ArtifactRecord] = (),
        *,
        owner: str | None = None,
        statuses: tuple[str, ...] | None = None,
    ) -> bool:
        sql, params = self._update_sql(exec_id, fields, owner, statuses, None)
        with self._tx() as conn:
            if artifacts:
                self._insert_artifacts(conn, artifacts)
            return conn.execute(sql, params).rowcount == 1

    @staticmethod
    def _update_sql(
        exec_id: str, fields: dict[str, Any], owner: str | None,
        statuses: tuple[str, ...] | None, expected_version: int | None,
    ) -> tuple[str, list[Any]]:
        sets = ", ".join(f"{k} = ?" for k in fields)
        params = [_dumps(v) if k in _EXEC_JSON else v for k, v in fields.items()]
        sql = f"UPDATE executions SET {sets}, version = version + 1 WHERE exec_id = ?"
        params.append(exec_id)
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        if statuses is not None:
            sql += f" AND status IN ({', '.join('?' * len(statuses))})"
            params.extend(statuses)
        if expected_version is not None:
            sql += " AND version = ?"
            params.append(expected_version)
        return sql, params

    # -- calls ---------------------------------------------------------------------------
    def get_calls(self, exec_id: str) -> list[CallRecord]:
        rows = self._query(
            f"SELECT {', '.join(_CALL_COLS)} FROM calls WHERE exec_id = ? ORDER BY seq, started_at",
            (exec_id,),
        )
        return [self._call(r) for r in rows]

    @staticmethod
    def _call(row: tuple[Any, ...]) -> CallRecord:
        c = CallRecord(*row)
        c.error = _loads(c.error)  # type: ignore[arg-type]
        c.task = _loads(c.task)  # type: ignore[arg-type]
        return c

    def save_call(
        self,
        call: CallRecord,
        artifacts: Sequence[ArtifactRecord] = (),
        logs: Sequence[LogChunk] = (),
        metadata: Sequence[MetadataEntry] = (),
    ) -> None:
        row = (
            call.exec_id, call.call_id, call.name, call.seq, call.status, call.type,
            call.attempts, call.started_at, call.ended_at, call.output_artifact,
            None if call.error is None else _dumps(call.error), call.cache_key,
            None if call.task is None else _dumps(call.task),
        )
        if artifacts and not logs and not metadata and call.status == "completed":
            self._journal_call(row, artifacts)
            return
        if not (artifacts or logs or metadata):
            # A single statement is its own transaction (the "running" record of every
            # call): no BEGIN/COMMIT round trips.
            with self._lock:
                if self._journaled:  # this process's journal first: records keep their order
                    with self._tx():
                        pass
                try:
                    if self._strict and call.status == "running":
                        self._commit_unsynced(row)
                    else:
                        self._conn.execute(_INSERT_CALL, row)
                except sqlite3.Error as exc:
                    raise sqlite_errors.translate(exc, self.path) from exc
                self._checkpointer.committed(self._conn)
            return
        with self._tx() as conn:
            conn.execute(_INSERT_CALL, row)
            if artifacts:
                self._insert_artifacts(conn, artifacts)
            if logs:
                self._insert_logs(conn, logs)
            if metadata:
                conn.executemany(
                    _INSERT_META,
                    [(m.exec_id, m.call_id, m.key, _dumps(m.value), m.created_at) for m in metadata],
                )

    def _commit_unsynced(self, row: tuple[Any, ...]) -> None:
        """Commit a running record in strict mode without waiting for the disk.

        A running record reports progress only: lost in a power cut, the call
        runs again, which it would anyway, since it had not completed. The next
        synced commit (the call's completed record) makes it durable too, since
        a WAL fsync covers every frame written before it. Saves one fsync per call.
        """
        conn = self._conn
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            conn.execute(_INSERT_CALL, row)
        finally:
            conn.execute("PRAGMA synchronous=FULL")

    def find_cached_call(self, cache_key: str) -> CallRecord | None:
        rows = self._query(
            f"SELECT {', '.join(_CALL_COLS)} FROM calls WHERE cache_key = ? "
            "AND status = 'completed' ORDER BY ended_at DESC LIMIT 1",
            (cache_key,),
        )
        return self._call(rows[0]) if rows else None

    # -- artifacts --------------------------------------------------------------------------
    @classmethod
    def _insert_artifacts(cls, conn: sqlite3.Connection, artifacts: Sequence[ArtifactRecord]) -> None:
        cls._insert_artifact_rows(conn, [_artifact_row(a) for a in artifacts])

    @staticmethod
    def _insert_artifact_rows(conn: sqlite3.Connection, rows: list[list[Any]]) -> None:
        """Insert artifact rows (`_ART_COLS` order, version unset), numbering each name's
        versions on from the latest; inside a write transaction."""
        names = list({r[3] for r in rows})
        latest: dict[str, int] = {}
        for i in range(0, len(names), 500):  # SQLite's limit on bound parameters
            chunk = names[i:i + 500]
            latest.update(conn.execute(
                f"SELECT name, latest FROM artifact_versions WHERE name IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall())
        for r in rows:
            version = latest.get(r[3], 0) + 1
            latest[r[3]] = r[_VERSION_AT] = version
        conn.executemany(_INSERT_ART, rows)
        conn.executemany(_BUMP_VERSION, [(n, latest[n]) for n in names])

    def add_artifacts(self, artifacts: list[ArtifactRecord]) -> None:
        with self._tx() as conn:
            self._insert_artifacts(conn, artifacts)

    @staticmethod
    def _art(row: tuple[Any, ...]) -> ArtifactRecord:
        # Columns selected in the record's field order (_ART_SELECT): ..., metadata, data.
        meta = row[-2]
        return ArtifactRecord(*row[:-2], None if meta is None else json.loads(meta), row[-1])

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        cols = _ART_SELECT
        return one_artifact(
            artifact_id,
            exact=lambda given: [self._art(r) for r in self._query(
                f"SELECT {cols} FROM artifacts WHERE artifact_id = ?", (given,))],
            by_prefix=lambda given: [
                self._art(r) for r in self._by_prefix("artifacts", "artifact_id", cols, given)],
        )

    def list_artifacts(
        self, *, exec_id: str | None = None, name: str | None = None, call_id: str | None = None
    ) -> list[ArtifactRecord]:
        where, params = [], []
        for col, val in (("exec_id", exec_id), ("name", name), ("call_id", call_id)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        sql = f"SELECT {_ART_SELECT} FROM artifacts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, rowid"
        return [self._art(r) for r in self._query(sql, params)]

    # -- waits --------------------------------------------------------------------------------
    def create_wait(self, wait: WaitRecord) -> WaitRecord:
        with self._tx() as conn:
            conn.execute(
                f"INSERT OR IGNORE INTO waits ({', '.join(_WAIT_COLS)}) "
                f"VALUES ({', '.join('?' * len(_WAIT_COLS))})",
                (
                    wait.exec_id, wait.name, wait.seq, wait.status, wait.question,
                    _dumps(wait.schema), _dumps(wait.metadata), _dumps(wait.value), wait.timeout,
                    wait.created_at, wait.answered_at,
                ),
            )
        return next(w for w in self.get_waits(wait.exec_id) if w.name == wait.name)

    def get_waits(self, exec_id: str) -> list[WaitRecord]:
        rows = self._query(
            f"SELECT {', '.join(_WAIT_COLS)} FROM waits WHERE exec_id = ? ORDER BY seq",
            (exec_id,),
        )
        return [self._wait(row) for row in rows]

    def pending_waits(self, exec_ids: Sequence[str]) -> list[WaitRecord]:
        ids = list(dict.fromkeys(exec_ids))
        first: dict[str, WaitRecord] = {}
        for i in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[i:i + 500]
            for row in self._query(
                f"SELECT {', '.join(_WAIT_COLS)} FROM waits WHERE status = 'pending' AND "
                f"exec_id IN ({', '.join('?' * len(chunk))}) ORDER BY seq",
                chunk,
            ):
                wait = self._wait(row)
                first.setdefault(wait.exec_id, wait)
        return [first[e] for e in ids if e in first]

    @staticmethod
    def _wait(row: tuple[Any, ...]) -> WaitRecord:
        data = dict(zip(_WAIT_COLS, row, strict=True))
        for c in ("schema", "metadata", "value"):
            data[c] = _loads(data[c])
        return WaitRecord(**data)

    def answer_wait(self, exec_id: str, name: str, value: Any) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE waits SET status = 'answered', value = ?, answered_at = ? "
                "WHERE exec_id = ? AND name = ? AND status = 'pending'",
                (json.dumps(value), time.time(), exec_id, name),
            )
            return cur.rowcount == 1

    def suspend_at_wait(self, exec_id: str, *, owner: str, wait_name: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE executions SET status = 'waiting', owner = NULL, lease_expires = NULL, "
                "version = version + 1 WHERE exec_id = ? AND owner = ? "
                "AND status IN ('running', 'waiting') AND EXISTS (SELECT 1 FROM waits "
                "WHERE exec_id = ? AND name = ? AND status = 'pending')",
                (exec_id, owner, exec_id, wait_name),
            )
            return cur.rowcount == 1

    # -- logs and metadata ------------------------------------------------------------------------
    @staticmethod
    def _insert_logs(conn: sqlite3.Connection, chunks: Sequence[LogChunk]) -> None:
        conn.executemany(
            _INSERT_LOG,
            [(c.exec_id, c.call_id, c.stream, c.text, c.key, c.created_at) for c in chunks],
        )

    def append_logs(self, chunks: list[LogChunk]) -> None:
        with self._tx() as conn:
            self._insert_logs(conn, chunks)

    def get_logs(
        self, exec_id: str, *, call_id: str | None = None, after: int = 0
    ) -> list[LogChunk]:
        sql = (
            "SELECT exec_id, call_id, seq, stream, text, created_at, key FROM logs "
            "WHERE exec_id = ? AND seq > ?"
        )
        params: list[Any] = [exec_id, after]
        if call_id is not None:
            sql += " AND call_id = ?"
            params.append(call_id)
        return [LogChunk(*r) for r in self._query(sql + " ORDER BY seq", params)]

    def add_metadata(self, entries: list[MetadataEntry]) -> None:
        with self._tx() as conn:
            conn.executemany(
                _INSERT_META,
                [(m.exec_id, m.call_id, m.key, _dumps(m.value), m.created_at) for m in entries],
            )

    def get_metadata(self, exec_id: str) -> list[MetadataEntry]:
        rows = self._query(
            "SELECT exec_id, call_id, key, value, created_at FROM metadata WHERE exec_id = ? "
            "ORDER BY id",
            (exec_id,),
        )
        return [MetadataEntry(r[0], r[1], r[2], _loads(r[3]), r[4]) for r in rows]

    # -- housekeeping -------------------------------------------------------------------------------
    def delete_executions(self, exec_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(exec_ids))
        removed = 0
        with self._tx() as conn:
            for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
                batch = ids[start:start + 500]
                marks = ", ".join("?" * len(batch))
                for table in ("calls", "waits", "logs", "metadata"):
                    conn.execute(f"DELETE FROM {table} WHERE exec_id IN ({marks})", batch)
                # Memory outlives executions: keep the references its versions point at.
                conn.execute(
                    f"DELETE FROM artifacts WHERE exec_id IN ({marks}) AND artifact_id NOT IN "
                    "(SELECT artifact_id FROM memory WHERE artifact_id IS NOT NULL)",
                    batch,
                )
                removed += conn.execute(
                    f"DELETE FROM executions WHERE exec_id IN ({marks})", batch
                ).rowcount
        return removed

    def referenced_blob_keys(self) -> set[str]:
        rows = self._query(
            "SELECT key FROM artifacts UNION SELECT key FROM logs WHERE key IS NOT NULL"
        )
        return {r[0] for r in rows}

    def check_integrity(self, *, full: bool = False) -> list[str] | None:
        pragma = "integrity_check" if full else "quick_check"
        try:
            with self._lock:
                rows = self._conn.execute(f"PRAGMA {pragma}").fetchall()
        except sqlite3.Error as exc:
            return [f"{self.path}: {exc}"]
        problems = [str(r[0]) for r in rows if r[0] != "ok"]
        return [f"{self.path}: {p}" for p in problems]

    # -- memory -------------------------------------------------------------------------------------
    @staticmethod
    def _mem(row: tuple[Any, ...]) -> MemoryRecord:
        scope, key, version, artifact_id, deleted, exec_id, call_id, created_at = row
        return MemoryRecord(scope, key, version, artifact_id, bool(deleted), exec_id, call_id,
                            created_at)

    def put_memory(self, record: MemoryRecord, artifact: ArtifactRecord | None) -> MemoryRecord:
        with self._tx() as conn:
            if record.call_id is not None:
                done = conn.execute(
                    f"SELECT {_MEM_COLS} FROM memory WHERE scope = ? AND key = ? AND exec_id = ? "
                    "AND call_id = ? ORDER BY version LIMIT 1",
                    (record.scope, record.key, record.exec_id, record.call_id),
                ).fetchone()
                if done is not None:
                    return self._mem(done)
            latest = conn.execute(
                "SELECT MAX(version) FROM memory WHERE scope = ? AND key = ?",
                (record.scope, record.key),
            ).fetchone()[0]
            stored = dataclasses.replace(record, version=(latest or 0) + 1)
            if artifact is not None:
                self._insert_artifacts(conn, [artifact])
            conn.execute(
                f"INSERT INTO memory ({_MEM_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (stored.scope, stored.key, stored.version, stored.artifact_id, int(stored.deleted),
                 stored.exec_id, stored.call_id, stored.created_at),
            )
        return stored

    def get_memory(self, scope: str, key: str, version: int | None = None) -> MemoryRecord | None:
        if version is None:
            rows = self._query(
                f"SELECT {_MEM_COLS} FROM memory WHERE scope = ? AND key = ? "
                "ORDER BY version DESC LIMIT 1",
                (scope, key),
            )
        else:
            rows = self._query(
                f"SELECT {_MEM_COLS} FROM memory WHERE scope = ? AND key = ? AND version = ?",
                (scope, key, version),
            )
        return self._mem(rows[0]) if rows else None

    def list_memory(self, scope: str, *, include_deleted: bool = False) -> list[MemoryRecord]:
        rows = self._query(
            f"SELECT {_MEM_COLS} FROM memory AS m WHERE scope = ? AND version = "
            "(SELECT MAX(version) FROM memory WHERE scope = m.scope AND key = m.key) "
            + ("" if include_deleted else "AND deleted = 0 ") + "ORDER BY key",
            (scope,),
        )
        return [self._mem(r) for r in rows]

    def memory_history(self, scope: str, key: str) -> list[MemoryRecord]:
        rows = self._query(
            f"SELECT {_MEM_COLS} FROM memory WHERE scope = ? AND key = ? ORDER BY version",
            (scope, key),
        )
        return [self._mem(r) for r in rows]

    def list_memory_scopes(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT scope FROM memory ORDER BY scope")]

    # -- documents ------------------------------------------------------------------------------
    @staticmethod
    def _doc(row: tuple[Any, ...]) -> DocumentRecord:
        kind, name, version, body, created_at, updated_at = row
        return DocumentRecord(kind, name, version, json.loads(body), created_at, updated_at)

    def put_document(
        self, kind: str, name: str, body: dict[str, Any], *, expected_version: int | None = None
    ) -> DocumentRecord:
        text = json.dumps(body)
        now = time.time()
        with self._tx() as conn:
            row = conn.execute(
                "SELECT version, created_at FROM documents WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
            current, created = (row[0], row[1]) if row else (0, now)
            if expected_version is not None and expected_version != current:
                raise DocumentConflictError.of(kind, name, expected_version, current)
            conn.execute(
                "INSERT OR REPLACE INTO documents (kind, name, version, body, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (kind, name, current + 1, text, created, now),
            )
        return DocumentRecord(kind, name, current + 1, json.loads(text), created, now)

    def get_document(self, kind: str, name: str) -> DocumentRecord | None:
        rows = self._query(f"SELECT {_DOC_COLS} FROM documents WHERE kind = ? AND name = ?",
                           (kind, name))
        return self._doc(rows[0]) if rows else None

    def list_documents(self, kind: str, *, prefix: str = "") -> list[DocumentRecord]:
        rows = self._query(
            f"SELECT {_DOC_COLS} FROM documents WHERE kind = ? AND substr(name, 1, ?) = ? "
            "ORDER BY name",
            (kind, len(prefix), prefix),
        )
        return [self._doc(r) for r in rows]

    def delete_document(self, kind: str, name: str, *, expected_version: int | None = None) -> bool:
        with self._tx() as conn:
            row = conn.execute("SELECT version FROM documents WHERE kind = ? AND name = ?",
                               (kind, name)).fetchone()
            if row is None:
                return False
            if expected_version is not None and expected_version != row[0]:
                raise DocumentConflictError.of(kind, name, expected_version, row[0])
            conn.execute("DELETE FROM documents WHERE kind = ? AND name = ?", (kind, name))
        return True


_DOC_COLS = "kind, name, version, body, created_at, updated_at"

