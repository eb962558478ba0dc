"""The `postgres` registry: the durable record in a PostgreSQL database (psycopg 3, pooled).

Same semantics as the embedded `sqlite` registry, for many machines at once:
state transitions are single conditional UPDATEs (compare-and-set on the row's
`version`, fencing on `owner`), so any number of runners, workers and clients may
share one database. Every commit is durable on the server (`synchronous_commit`
as the server is configured; kitaru does not lower it), so `durability: strict`
needs nothing more here.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from kitaru_core.errors import (
    ConfigError,
    DocumentConflictError,
    KitaruError,
)
from kitaru_core.ids import SHOWN_MATCHES, one_artifact, one_execution, prefix_range
from kitaru_core.interfaces import ComponentContext, Registry
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

from . import prepared
from .config import PostgresRegistryConfig
from .schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import psycopg

_EXEC_COLS = (
    "exec_id", "flow_name", "status", "flow_ref", "stack", "inputs_artifact", "result_artifact",
    "failure", "original_exec_id", "replay", "owner", "lease_expires", "created_at",
    "started_at", "ended_at", "version", "runner",
)
_EXEC_JSON = frozenset({"flow_ref", "stack", "failure", "replay", "runner"})
_EXEC_SELECT = ", ".join(_EXEC_COLS)
_CALL_COLS = (
    "exec_id", "call_id", "name", "seq", "status", "type", "attempts", "started_at", "ended_at",
    "output_artifact", "error", "cache_key", "task",
)
_CALL_SELECT = ", ".join(_CALL_COLS)
_ART_COLS = (
    "artifact_id", "exec_id", "name", "direction", "key", "serializer", "type_name", "size",
    "call_id", "version", "created_at", "metadata", "data",
)  # ArtifactRecord's field order: a row builds a record positionally
_ART_SELECT = ", ".join(_ART_COLS)
_WAIT_COLS = (
    "exec_id", "name", "seq", "status", "question", "schema", "metadata", "value", "timeout",
    "created_at", "answered_at",
)
_MEM_COLS = "scope, key, version, artifact_id, deleted, exec_id, call_id, created_at"

_INSERT_CALL = (
    f"INSERT INTO calls ({_CALL_SELECT}) VALUES ({', '.join(['%s'] * len(_CALL_COLS))}) "
    "ON CONFLICT (exec_id, call_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _CALL_COLS[2:])
)
# The versions of an artifact name come from a sequence of its own (schema migration 5), named
# by `version_sequence`: `nextval` takes no row lock and writes WAL once per 32 numbers, where
# a counter row updated by every checkpoint wrote a new row version each time. Versions are
# unique and increasing per name; a write that fails after taking its number leaves a gap.
_NEXT_VERSION = "SELECT nextval(%s::regclass)"
_INSERT_ART = (
    f"INSERT INTO artifacts ({_ART_SELECT}) VALUES ({', '.join(['%s'] * len(_ART_COLS))})"
)
_INSERT_LOG = (
    "INSERT INTO logs (exec_id, call_id, stream, text, key, created_at) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
_INSERT_META = (
    "INSERT INTO metadata (exec_id, call_id, key, value, created_at) VALUES (%s, %s, %s, %s, %s)"
)
# Log chunks of one execution are appended under a per-execution transaction lock: a
# follower reading `seq > after` then never misses a chunk whose sequence number was taken
# before another's but committed after it.
_LOCK_EXEC_LOGS = "SELECT pg_advisory_xact_lock(hashtextextended('kitaru-logs:' || %s, 0))"
_LOCK_MEMORY_KEY = "SELECT pg_advisory_xact_lock(hashtextextended('kitaru-memory:' || %s, 0))"
_LOCK_MIGRATIONS = "SELECT pg_advisory_xact_lock(hashtextextended('kitaru-schema:' || %s, 0))"


_MAX_FUSED = 4
_ART_CASTS = ("text", "text", "text", "text", "text", "text", "text", "bigint", "text",
              "double precision", "jsonb", "bytea")  # _ART_COLS without version


_T = TypeVar("_T")


@functools.lru_cache(maxsize=4096)  # an artifact name per checkpoint argument and output
def version_sequence(name: str) -> str:
    """The sequence that numbers the versions of artifact `name` (the same md5 as SQL's)."""
    return "kitaru_av_" + hashlib.md5(name.encode()).hexdigest()[:24]


@functools.cache
def _fused_save_call(n_artifacts: int) -> str:
    """One statement that upserts a call and inserts `n_artifacts` artifacts.

    Each artifact's version is the next value of its name's sequence. The artifacts are
    the rows of one INSERT, numbered in their order (data-modifying CTEs of their own would
    run in no defined order). Parameters: per artifact its `_art_row` values then its
    sequence's name; then the call's row.
    """
    if not n_artifacts:
        return _INSERT_CALL
    cols = [c for c in _ART_COLS if c != "version"]
    row = "(" + ", ".join(f"%s::{cast}" for cast in _ART_CASTS) + ", nextval(%s::regclass))"
    return (f"WITH a AS (INSERT INTO artifacts ({', '.join(cols)}, version) VALUES "
            + ", ".join([row] * n_artifacts) + ") " + _INSERT_CALL)


_CALL_ENCODERS = (
    prepared.text, prepared.text, prepared.text, prepared.integer, prepared.text, prepared.text,
    prepared.integer, prepared.double, prepared.double, prepared.text, prepared.jsonb,
    prepared.text, prepared.jsonb,
)  # _CALL_COLS
_FUSED_ART_ENCODERS = (
    prepared.text, prepared.text, prepared.text, prepared.text, prepared.text, prepared.text,
    prepared.text, prepared.integer, prepared.text, prepared.double, prepared.jsonb,
    prepared.bytea,  # `_art_row`: _ART_COLS without version
    prepared.text,  # the name's version sequence
)


@functools.cache
def _fused_statement(n_artifacts: int) -> prepared.PreparedStatement:
    """`_fused_save_call(n_artifacts)`, prepared and sent through libpq (see `prepared`)."""
    return prepared.PreparedStatement(
        f"kitaru_save_call_{n_artifacts}", _fused_save_call(n_artifacts),
        _FUSED_ART_ENCODERS * n_artifacts + _CALL_ENCODERS,
    )


class RegistryUnavailableError(KitaruError):
    """The PostgreSQL server could not be reached or refused the connection."""


def _describe(url: str) -> str:
    """The server and database of a URL, without its password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:
        return "the configured PostgreSQL server"
    host = parts.get("host") or "localhost"
    return f"postgresql://{parts.get('user') or ''}@{host}:{parts.get('port') or 5432}/" \
        f"{parts.get('dbname') or ''}"


class PostgresRegistry(Registry):
    """Registry in a PostgreSQL database, shared by many processes and machines."""

    config: PostgresRegistryConfig

    def __init__(self, config: PostgresRegistryConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        import psycopg
        from psycopg.types.json import Jsonb
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self._jsonb = Jsonb
        self.inline_limit = config.inline_max_bytes
        self.where = _describe(config.url)
        schema = config.db_schema

        # Autocommit connections: a single statement is its own transaction (one round trip,
        # no BEGIN/COMMIT); several statements that must commit together use `_tx()`.
        def configure(conn: psycopg.Connection) -> None:
            conn.execute(f'SET search_path TO "{schema}"')

        self._pool = ConnectionPool(
            config.url, min_size=config.min_connections, max_size=config.max_connections,
            timeout=config.connect_timeout, configure=configure, open=False,
            kwargs={"connect_timeout": max(1, int(config.connect_timeout)), "autocommit": True},
            name=f"kitaru-{context.stack_name}",
        )
        try:
            self._pool.open(wait=True, timeout=config.connect_timeout)
        except Exception as exc:
            self._pool.close()
            raise RegistryUnavailableError(
                f"cannot connect to the registry database {self.where} of stack "
                f"{context.stack_name!r}: {_first_line(exc)}; check that the server runs and the "
                "stack's registry url (user, password, host, database) is right"
            ) from None
        self._closed = threading.Event()
        self._known_versions: set[str] = set()  # names whose version sequence exists
        self._migrate()

    # -- plumbing ----------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._pool.connection() as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.config.db_schema}"')
            with conn.transaction():
                conn.execute(_LOCK_MIGRATIONS, (self.config.db_schema,))
                conn.execute("CREATE TABLE IF NOT EXISTS kitaru_schema (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM kitaru_schema").fetchone()
                found = 0 if row is None else int(row[0])
                if row is None:
                    conn.execute("INSERT INTO kitaru_schema (version) VALUES (0)")
                if found > SCHEMA_VERSION:
                    raise ConfigError(
                        f"the registry database {self.where} has kitaru schema version {found}, "
                        f"newer than this kitaru-postgres understands ({SCHEMA_VERSION}); "
                        "upgrade kitaru-postgres on this machine"
                    )
                for statements in MIGRATIONS[found:]:
                    for stmt in statements:
                        conn.execute(stmt)
                conn.execute("UPDATE kitaru_schema SET version = %s", (SCHEMA_VERSION,))

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).rowcount

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection]:
        """A pooled connection inside one transaction (committed at the end, or rolled back)."""
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def _json(self, value: Any) -> Any:
        return None if value is None else self._jsonb(value)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()

    # -- executions ----------------------------------------------------------------------
    def create_execution(
        self, record: ExecutionRecord, artifacts: Sequence[ArtifactRecord] = ()
    ) -> None:
        values = [
            self._json(getattr(record, c)) if c in _EXEC_JSON else getattr(record, c)
            for c in _EXEC_COLS
        ]
        def write() -> None:
            with self._tx() as conn:
                conn.execute(
                    f"INSERT INTO executions ({_EXEC_SELECT}) "
                    f"VALUES ({', '.join(['%s'] * len(values))})",
                    values,
                )
                if artifacts:
                    self._insert_artifacts(conn, artifacts)

        self._with_versions(artifacts, write)

    @staticmethod
    def _exec(row: tuple[Any, ...]) -> ExecutionRecord:
        data = dict(zip(_EXEC_COLS, row, strict=True))
        data["flow_ref"] = data["flow_ref"] or {}
        data["stack"] = data["stack"] or {}
        return ExecutionRecord(**data)

    def get_execution(self, exec_id: str) -> ExecutionRecord:
        return one_execution(
            exec_id,
            exact=lambda given: [self._exec(r) for r in self._query(
                f"SELECT {_EXEC_SELECT} FROM executions WHERE exec_id = %s", (given,))],
            by_prefix=lambda given: [
                self._exec(r) for r in self._by_prefix("executions", "exec_id", _EXEC_SELECT, given)],
            where=self.where,
        )

    def _by_prefix(self, table: str, column: str, cols: str, prefix: str) -> list[tuple[Any, ...]]:
        """Rows whose `column` starts with `prefix`, taken literally: a range of the key."""
        low, high = prefix_range(prefix)
        return self._query(
            f"SELECT {cols} FROM {table} WHERE {column} >= %s AND {column} < %s "
            f"AND left({column}, %s) = %s ORDER BY {column} LIMIT %s",
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
            where.append("flow_name = %s")
            params.append(flow_name)
        if status:
            where.append("status = %s")
            params.append(status)
        if before is not None:
            # A row comparison: an index condition on (created_at, exec_id), scanned backwards.
            where.append("(created_at, exec_id) < (%s, %s)")
            params.extend((float(before[0]), str(before[1])))
        sql = f"SELECT {_EXEC_SELECT} FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, exec_id DESC"
        if limit:
            sql += " LIMIT %s"
            params.append(int(limit))
        return [self._exec(r) for r in self._query(sql, params)]

    def claim_execution(
        self, exec_id: str, *, owner: str, lease_expires: float, expected_version: int
    ) -> bool:
        return self._write(
            "UPDATE executions SET owner = %s, lease_expires = %s, status = 'running', "
            "failure = NULL, ended_at = NULL, version = version + 1 "
            "WHERE exec_id = %s AND version = %s",
            (owner, lease_expires, exec_id, expected_version),
        ) == 1

    def renew_lease(self, exec_id: str, *, owner: str, lease_expires: float) -> bool:
        return self._write(
            "UPDATE executions SET lease_expires = %s WHERE exec_id = %s AND owner = %s "
            "AND status IN ('running', 'waiting')",
            (lease_expires, exec_id, owner),
        ) == 1

    def update_execution(
        self,
        exec_id: str,
        fields: dict[str, Any],
        *,
        owner: str | None = None,
        statuses: tuple[str, ...] | None = None,
        expected_version: int | None = None,
    ) -> bool:
        unknown = set(fields) - set(_EXEC_COLS)
        if unknown:
            raise ValueError(f"unknown execution fields: {', '.join(sorted(unknown))}")
        sets = ", ".join(f"{k} = %s" for k in fields)
        params: list[Any] = [self._json(v) if k in _EXEC_JSON else v for k, v in fields.items()]
        sql = f"UPDATE executions SET {sets}, version = version + 1 WHERE exec_id = %s"
        params.append(exec_id)
        if owner is not None:
            sql += " AND owner = %s"
            params.append(owner)
        if statuses is not None:
            sql += " AND status = ANY(%s)"
            params.append(list(statuses))
        if expected_version is not None:
            sql += " AND version = %s"
            params.append(expected_version)
        return self._write(sql, params) == 1

    # -- calls ------------------------------------------------------------------------------
    def get_calls(self, exec_id: str) -> list[CallRecord]:
        rows = self._query(
            f"SELECT {_CALL_SELECT} FROM calls WHERE exec_id = %s ORDER BY seq, started_at",
            (exec_id,),
        )
        return [CallRecord(*r) for r in rows]

    @staticmethod
    def _call_values(call: CallRecord) -> tuple[Any, ...]:
        """A call's column values in `_CALL_COLS` order, JSON columns as Python values."""
        return (
            call.exec_id, call.call_id, call.name, call.seq, call.status, call.type,
            call.attempts, call.started_at, call.ended_at, call.output_artifact,
            call.error, call.cache_key, call.task,
        )

    def _call_row(self, call: CallRecord) -> tuple[Any, ...]:
        """`_call_values` with the JSON columns wrapped for psycopg."""
        *head, error, cache_key, task = self._call_values(call)
        return (*head, self._json(error), cache_key, self._json(task))

    def save_call(
        self,
        call: CallRecord,
        artifacts: Sequence[ArtifactRecord] = (),
        logs: Sequence[LogChunk] = (),
        metadata: Sequence[MetadataEntry] = (),
    ) -> None:
        self._with_versions(artifacts, lambda: self._save_call(call, artifacts, logs, metadata))

    def _save_call(
        self,
        call: CallRecord,
        artifacts: Sequence[ArtifactRecord],
        logs: Sequence[LogChunk],
        metadata: Sequence[MetadataEntry],
    ) -> None:
        if not logs and not metadata and len(artifacts) <= _MAX_FUSED:
            # The hot path (a call with its output, nothing printed): one statement, so one
            # round trip and one implicit transaction, artifact versions from their sequences.
            values: list[Any] = []
            for a in artifacts:
                values += (*self._art_values(a), version_sequence(a.name))
            values += self._call_values(call)
            statement = _fused_statement(len(artifacts))
            # getconn/putconn rather than `connection()`: an autocommit statement needs no
            # transaction block around it; putconn still drops a connection that broke.
            conn = self._pool.getconn()
            try:
                if statement.run(conn, values):
                    return
                # Not run: psycopg's own path runs it again and raises its typed error.
                params: list[Any] = []
                for a in artifacts:
                    params += [*self._art_row(a), version_sequence(a.name)]
                conn.execute(statement.sql, [*params, *self._call_row(call)])
            finally:
                self._pool.putconn(conn)
            return
        row = self._call_row(call)
        with self._tx() as conn:
            if logs:
                conn.execute(_LOCK_EXEC_LOGS, (call.exec_id,))
            conn.execute(_INSERT_CALL, row)
            if artifacts:
                self._insert_artifacts(conn, artifacts)
            if logs:
                self._insert_logs(conn, logs)
            if metadata:
                self._insert_metadata(conn, metadata)

    def find_cached_call(self, cache_key: str) -> CallRecord | None:
        rows = self._query(
            f"SELECT {_CALL_SELECT} FROM calls WHERE cache_key = %s AND status = 'completed' "
            "ORDER BY ended_at DESC LIMIT 1",
            (cache_key,),
        )
        return CallRecord(*rows[0]) if rows else None

    # -- artifacts -----------------------------------------------------------------------------
    @staticmethod
    def _art_values(a: ArtifactRecord) -> tuple[Any, ...]:
        """An artifact's column values in `_ART_COLS` order without the version, its
        metadata as a Python value."""
        return (a.artifact_id, a.exec_id, a.name, a.direction, a.key, a.serializer, a.type_name,
                a.size, a.call_id, a.created_at, a.metadata, a.data)

    def _art_row(self, a: ArtifactRecord) -> tuple[Any, ...]:
        """`_art_values` with the metadata wrapped for psycopg."""
        *head, metadata, data = self._art_values(a)
        return (*head, self._json(metadata), data)

    def _ensure_versions(self, artifacts: Sequence[ArtifactRecord]) -> None:
        """Create the version sequences of these artifacts' names not known to exist yet.

        In autocommit, before the write that uses them: a sequence created inside a write's
        transaction would make concurrent first writers of a name abort each other."""
        missing = {a.name for a in artifacts} - self._known_versions
        if not missing:
            return
        psycopg = self._psycopg
        with self._pool.connection() as conn:
            for name in sorted(missing):
                try:
                    conn.execute(f'CREATE SEQUENCE IF NOT EXISTS "{version_sequence(name)}"')
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                    pass  # another process created it at the same moment
        self._known_versions |= missing

    def _with_versions(self, artifacts: Sequence[ArtifactRecord], write: Callable[[], _T]) -> _T:
        """`write()` once the artifacts' version sequences exist; again once if one was gone
        (dropped behind this process's back: a restore, a test's reset)."""
        if not artifacts:
            return write()
        self._ensure_versions(artifacts)
        try:
            return write()
        except self._psycopg.errors.UndefinedTable as exc:
            if "kitaru_av_" not in str(exc):
                raise
        self._known_versions.clear()
        self._ensure_versions(artifacts)
        return write()

    def _insert_artifacts(self, conn: psycopg.Connection, artifacts: Sequence[ArtifactRecord]) -> None:
        """Insert artifacts inside a transaction (their sequences exist: `_with_versions`)."""
        rows = []
        for a in artifacts:
            version = conn.execute(  # type: ignore[index]
                _NEXT_VERSION, (version_sequence(a.name),)).fetchone()[0]
            values = self._art_row(a)
            rows.append((*values[:9], version, *values[9:]))
        with conn.cursor() as cur:
            cur.executemany(_INSERT_ART, rows)

    def add_artifacts(self, artifacts: list[ArtifactRecord]) -> None:
        if not artifacts:
            return

        def write() -> None:
            with self._tx() as conn:
                self._insert_artifacts(conn, artifacts)

        self._with_versions(artifacts, write)

    @staticmethod
    def _art(row: tuple[Any, ...]) -> ArtifactRecord:
        art = ArtifactRecord(*row)
        if art.data is not None:
            art.data = bytes(art.data)
        return art

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        return one_artifact(
            artifact_id,
            exact=lambda given: [self._art(r) for r in self._query(
                f"SELECT {_ART_SELECT} FROM artifacts WHERE artifact_id = %s", (given,))],
            by_prefix=lambda given: [
                self._art(r) for r in self._by_prefix("artifacts", "artifact_id", _ART_SELECT, given)],
        )

    def list_artifacts(
        self, *, exec_id: str | None = None, name: str | None = None, call_id: str | None = None
    ) -> list[ArtifactRecord]:
        where, params = [], []
        for col, val in (("exec_id", exec_id), ("name", name), ("call_id", call_id)):
            if val is not None:
                where.append(f"{col} = %s")
                params.append(val)
        sql = f"SELECT {_ART_SELECT} FROM artifacts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, row_order"
        return [self._art(r) for r in self._query(sql, params)]

    # -- waits ----------------------------------------------------------------------------------
    def create_wait(self, wait: WaitRecord) -> WaitRecord:
        self._write(
            f"INSERT INTO waits ({', '.join(_WAIT_COLS)}) "
            f"VALUES ({', '.join(['%s'] * len(_WAIT_COLS))}) ON CONFLICT (exec_id, name) DO NOTHING",
            (
                wait.exec_id, wait.name, wait.seq, wait.status, wait.question,
                self._json(wait.schema), self._json(wait.metadata), self._json(wait.value),
                wait.timeout, wait.created_at, wait.answered_at,
            ),
        )
        return next(w for w in self.get_waits(wait.exec_id) if w.name == wait.name)

    def get_waits(self, exec_id: str) -> list[WaitRecord]:
        rows = self._query(
            f"SELECT {', '.join(_WAIT_COLS)} FROM waits WHERE exec_id = %s ORDER BY seq",
            (exec_id,),
        )
        return [WaitRecord(*r) for r in rows]

    def pending_waits(self, exec_ids: Sequence[str]) -> list[WaitRecord]:
        ids = list(dict.fromkeys(exec_ids))
        if not ids:
            return []
        # One statement for any number of ids (an array parameter, not one placeholder each).
        rows = self._query(
            f"SELECT DISTINCT ON (exec_id) {', '.join(_WAIT_COLS)} FROM waits "
            "WHERE status = 'pending' AND exec_id = ANY(%s) ORDER BY exec_id, seq",
            (ids,),
        )
        first = {w.exec_id: w for w in (WaitRecord(*r) for r in rows)}
        return [first[e] for e in ids if e in first]

    def answer_wait(self, exec_id: str, name: str, value: Any) -> bool:
        import time

        # JSON null is stored as a JSON value (not SQL NULL), so `value` reads back as given.
        return self._write(
            "UPDATE waits SET status = 'answered', value = %s, answered_at = %s "
            "WHERE exec_id = %s AND name = %s AND status = 'pending'",
            (self._jsonb(value), time.time(), exec_id, name),
        ) == 1

    def suspend_at_wait(self, exec_id: str, *, owner: str, wait_name: str) -> bool:
        # FOR UPDATE locks the wait row: a concurrent answer either committed first (the
        # re-checked row is no longer pending) or waits until this update has committed.
        return self._write(
            "UPDATE executions SET status = 'waiting', owner = NULL, lease_expires = NULL, "
            "version = version + 1 WHERE exec_id = %s AND owner = %s "
            "AND status IN ('running', 'waiting') AND EXISTS (SELECT 1 FROM waits "
            "WHERE exec_id = %s AND name = %s AND status = 'pending' FOR UPDATE)",
            (exec_id, owner, exec_id, wait_name),
        ) == 1

    # -- logs and metadata -----------------------------------------------------------------------
    @staticmethod
    def _insert_logs(conn: psycopg.Connection, chunks: Sequence[LogChunk]) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                _INSERT_LOG,
                [(c.exec_id, c.call_id, c.stream, c.text, c.key, c.created_at) for c in chunks],
            )

    def _insert_metadata(self, conn: psycopg.Connection, entries: Sequence[MetadataEntry]) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                _INSERT_META,
                [(m.exec_id, m.call_id, m.key, self._jsonb(m.value), m.created_at) for m in entries],
            )

    def append_logs(self, chunks: list[LogChunk]) -> None:
        if not chunks:
            return
        with self._tx() as conn:
            for exec_id in sorted({c.exec_id for c in chunks}):
                conn.execute(_LOCK_EXEC_LOGS, (exec_id,))
            self._insert_logs(conn, chunks)

    def get_logs(
        self, exec_id: str, *, call_id: str | None = None, after: int = 0
    ) -> list[LogChunk]:
        sql = (
            "SELECT exec_id, call_id, seq, stream, text, created_at, key FROM logs "
            "WHERE exec_id = %s AND seq > %s"
        )
        params: list[Any] = [exec_id, after]
        if call_id is not None:
            sql += " AND call_id = %s"
            params.append(call_id)
        return [LogChunk(*r) for r in self._query(sql + " ORDER BY seq", params)]

    def add_metadata(self, entries: list[MetadataEntry]) -> None:
        if not entries:
            return
        with self._tx() as conn:
            self._insert_metadata(conn, entries)

    def get_metadata(self, exec_id: str) -> list[MetadataEntry]:
        rows = self._query(
            "SELECT exec_id, call_id, key, value, created_at FROM metadata WHERE exec_id = %s "
            "ORDER BY id",
            (exec_id,),
        )
        return [MetadataEntry(*r) for r in rows]

    # -- housekeeping ------------------------------------------------------------------------------
    def delete_executions(self, exec_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(exec_ids))
        if not ids:
            return 0
        with self._tx() as conn:
            for table in ("calls", "waits", "logs", "metadata"):
                conn.execute(f"DELETE FROM {table} WHERE exec_id = ANY(%s)", (ids,))
            # Memory outlives executions: keep the references its versions point at.
            conn.execute(
                "DELETE FROM artifacts WHERE exec_id = ANY(%s) AND NOT EXISTS "
                "(SELECT 1 FROM memory WHERE memory.artifact_id = artifacts.artifact_id)",
                (ids,),
            )
            return conn.execute("DELETE FROM executions WHERE exec_id = ANY(%s)", (ids,)).rowcount

    def referenced_blob_keys(self) -> set[str]:
        rows = self._query(
            "SELECT key FROM artifacts UNION SELECT key FROM logs WHERE key IS NOT NULL"
        )
        return {r[0] for r in rows}

    def check_integrity(self, *, full: bool = False) -> list[str] | None:
        """The server checks its own storage; here: reachable, and the schema is this version's.

        `full` also checks that every execution's inputs reference is recorded.
        """
        try:
            row = self._query("SELECT version FROM kitaru_schema")
        except Exception as exc:
            return [f"{self.where}: {_first_line(exc)}"]
        problems = []
        if not row or row[0][0] != SCHEMA_VERSION:
            problems.append(f"{self.where}: schema version {row[0][0] if row else None}, "
                            f"expected {SCHEMA_VERSION}")
        if full:
            dangling = self._query(
                "SELECT exec_id FROM executions e WHERE inputs_artifact IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM artifacts a WHERE a.artifact_id = e.inputs_artifact) LIMIT 5"
            )
            problems += [f"{self.where}: execution {r[0]} references inputs that are not recorded"
                         for r in dangling]
        return problems

    # -- memory ------------------------------------------------------------------------------------
    def put_memory(self, record: MemoryRecord, artifact: ArtifactRecord | None) -> MemoryRecord:
        return self._with_versions(
            [artifact] if artifact is not None else [], lambda: self._put_memory(record, artifact))

    def _put_memory(self, record: MemoryRecord, artifact: ArtifactRecord | None) -> MemoryRecord:
        import dataclasses

        with self._tx() as conn:
            conn.execute(_LOCK_MEMORY_KEY, (f"{len(record.scope)}:{record.scope}:{record.key}",))
            if record.call_id is not None:
                done = conn.execute(
                    f"SELECT {_MEM_COLS} FROM memory WHERE scope = %s AND key = %s "
                    "AND exec_id = %s AND call_id = %s ORDER BY version LIMIT 1",
                    (record.scope, record.key, record.exec_id, record.call_id),
                ).fetchone()
                if done is not None:
                    return MemoryRecord(*done)
            latest = conn.execute(
                "SELECT MAX(version) FROM memory WHERE scope = %s AND key = %s",
                (record.scope, record.key),
            ).fetchone()[0]  # type: ignore[index]
            stored = dataclasses.replace(record, version=(latest or 0) + 1)
            if artifact is not None:
                self._insert_artifacts(conn, [artifact])
            conn.execute(
                f"INSERT INTO memory ({_MEM_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (stored.scope, stored.key, stored.version, stored.artifact_id, stored.deleted,
                 stored.exec_id, stored.call_id, stored.created_at),
            )
        return stored

    def get_memory(self, scope: str, key: str, version: int | None = None) -> MemoryRecord | None:
        if version is None:
            rows = self._query(
                f"SELECT {_MEM_COLS} FROM memory WHERE scope = %s AND key = %s "
                "ORDER BY version DESC LIMIT 1",
                (scope, key),
            )
        else:
            rows = self._query(
                f"SELECT {_MEM_COLS} FROM memory WHERE scope = %s AND key = %s AND version = %s",
                (scope, key, version),
            )
        return MemoryRecord(*rows[0]) if rows else None

    def list_memory(self, scope: str, *, include_deleted: bool = False) -> list[MemoryRecord]:
        rows = self._query(
            f"SELECT {_MEM_COLS} FROM (SELECT DISTINCT ON (key) {_MEM_COLS} FROM memory "
            "WHERE scope = %s ORDER BY key, version DESC) AS latest"
            + ("" if include_deleted else " WHERE NOT deleted") + " ORDER BY key",
            (scope,),
        )
        return [MemoryRecord(*r) for r in rows]

    def memory_history(self, scope: str, key: str) -> list[MemoryRecord]:
        rows = self._query(
            f"SELECT {_MEM_COLS} FROM memory WHERE scope = %s AND key = %s ORDER BY version",
            (scope, key),
        )
        return [MemoryRecord(*r) for r in rows]

    def list_memory_scopes(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT scope FROM memory ORDER BY scope")]


    # -- documents ------------------------------------------------------------------------
    # Each write is one statement: the primary key and the version condition make racing
    # writers with the same expected version collide, and exactly one statement wins.
    def put_document(
        self, kind: str, name: str, body: dict[str, Any], *, expected_version: int | None = None
    ) -> DocumentRecord:
        now = time.time()
        doc = self._jsonb(body)
        if expected_version is None:
            sql = (f"INSERT INTO documents ({_DOC_COLS}) VALUES (%s, %s, 1, %s, %s, %s) "
                   "ON CONFLICT (kind, name) DO UPDATE SET version = documents.version + 1, "
                   "body = EXCLUDED.body, updated_at = EXCLUDED.updated_at "
                   f"RETURNING {_DOC_COLS}")
            params: tuple[Any, ...] = (kind, name, doc, now, now)
        elif expected_version == 0:
            sql = (f"INSERT INTO documents ({_DOC_COLS}) VALUES (%s, %s, 1, %s, %s, %s) "
                   f"ON CONFLICT (kind, name) DO NOTHING RETURNING {_DOC_COLS}")
            params = (kind, name, doc, now, now)
        else:
            sql = ("UPDATE documents SET version = version + 1, body = %s, updated_at = %s "
                   f"WHERE kind = %s AND name = %s AND version = %s RETURNING {_DOC_COLS}")
            params = (doc, now, kind, name, expected_version)
        rows = self._query(sql, params)
        if not rows:
            found = self.get_document(kind, name)
            raise DocumentConflictError.of(kind, name, expected_version or 0,
                                           found.version if found else 0)
        return DocumentRecord(*rows[0])

    def get_document(self, kind: str, name: str) -> DocumentRecord | None:
        rows = self._query(f"SELECT {_DOC_COLS} FROM documents WHERE kind = %s AND name = %s",
                           (kind, name))
        return DocumentRecord(*rows[0]) if rows else None

    def list_documents(self, kind: str, *, prefix: str = "") -> list[DocumentRecord]:
        rows = self._query(
            f"SELECT {_DOC_COLS} FROM documents WHERE kind = %s AND starts_with(name, %s) "
            "ORDER BY name",
            (kind, prefix),
        )
        return [DocumentRecord(*r) for r in rows]

    def delete_document(self, kind: str, name: str, *, expected_version: int | None = None) -> bool:
        if expected_version is None:
            return self._write("DELETE FROM documents WHERE kind = %s AND name = %s",
                               (kind, name)) > 0
        if self._write("DELETE FROM documents WHERE kind = %s AND name = %s AND version = %s",
                       (kind, name, expected_version)) > 0:
            return True
        found = self.get_document(kind, name)
        if found is None:
            return False
        raise DocumentConflictError.of(kind, name, expected_version, found.version)


_DOC_COLS = "kind, name, version, body, created_at, updated_at"

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
