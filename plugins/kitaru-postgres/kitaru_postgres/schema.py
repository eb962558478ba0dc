"""The `postgres` registry's tables, as numbered migrations applied in order.

Each migration is a list of statements run in one transaction together with the
bump of `kitaru_schema.version`, under an advisory lock, so that many runners
starting at once migrate a database exactly once. A migration is never edited
after release; a change is a new entry at the end.

Ids are `COLLATE "C"`: id-prefix lookups are byte-order range scans on the
primary key (`id >= prefix AND id < prefix || U+10FFFF`), never `LIKE` on user text.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    # 1: the record as the sqlite registry's schema v4 holds it.
    [
        """CREATE TABLE executions (
            exec_id TEXT COLLATE "C" PRIMARY KEY, flow_name TEXT NOT NULL, status TEXT NOT NULL,
            flow_ref JSONB, stack JSONB, inputs_artifact TEXT, result_artifact TEXT,
            failure JSONB, original_exec_id TEXT, replay JSONB, owner TEXT,
            lease_expires DOUBLE PRECISION, created_at DOUBLE PRECISION,
            started_at DOUBLE PRECISION, ended_at DOUBLE PRECISION,
            version INTEGER NOT NULL DEFAULT 0, row_order BIGSERIAL
        )""",
        "CREATE INDEX executions_created ON executions (created_at DESC, row_order DESC)",
        "CREATE INDEX executions_flow ON executions (flow_name, created_at DESC)",
        "CREATE INDEX executions_status ON executions (status, created_at DESC)",
        """CREATE TABLE calls (
            exec_id TEXT COLLATE "C" NOT NULL, call_id TEXT NOT NULL, name TEXT NOT NULL,
            seq INTEGER NOT NULL, status TEXT NOT NULL, type TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, started_at DOUBLE PRECISION,
            ended_at DOUBLE PRECISION, output_artifact TEXT, error JSONB, cache_key TEXT,
            task JSONB, PRIMARY KEY (exec_id, call_id)
        )""",
        "CREATE INDEX calls_cache ON calls (cache_key) WHERE cache_key IS NOT NULL",
        """CREATE TABLE artifacts (
            artifact_id TEXT COLLATE "C" PRIMARY KEY, exec_id TEXT COLLATE "C" NOT NULL,
            call_id TEXT, name TEXT NOT NULL, direction TEXT NOT NULL, key TEXT NOT NULL,
            serializer TEXT NOT NULL, type_name TEXT, size BIGINT, version INTEGER NOT NULL,
            created_at DOUBLE PRECISION, metadata JSONB, data BYTEA, row_order BIGSERIAL
        )""",
        "CREATE INDEX artifacts_exec ON artifacts (exec_id, row_order)",
        "CREATE INDEX artifacts_name ON artifacts (name, row_order)",
        "CREATE TABLE artifact_versions (name TEXT PRIMARY KEY, latest INTEGER NOT NULL)",
        """CREATE TABLE waits (
            exec_id TEXT COLLATE "C" NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL,
            status TEXT NOT NULL, question TEXT, schema JSONB, metadata JSONB, value JSONB,
            timeout DOUBLE PRECISION, created_at DOUBLE PRECISION,
            answered_at DOUBLE PRECISION, PRIMARY KEY (exec_id, name)
        )""",
        """CREATE TABLE logs (
            seq BIGSERIAL PRIMARY KEY, exec_id TEXT COLLATE "C" NOT NULL, call_id TEXT,
            stream TEXT NOT NULL, text TEXT NOT NULL, key TEXT, created_at DOUBLE PRECISION
        )""",
        "CREATE INDEX logs_exec ON logs (exec_id, seq)",
        """CREATE TABLE metadata (
            id BIGSERIAL PRIMARY KEY, exec_id TEXT COLLATE "C" NOT NULL, call_id TEXT,
            key TEXT NOT NULL, value JSONB, created_at DOUBLE PRECISION
        )""",
        "CREATE INDEX metadata_exec ON metadata (exec_id, id)",
        """CREATE TABLE memory (
            scope TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, artifact_id TEXT,
            deleted BOOLEAN NOT NULL DEFAULT FALSE, exec_id TEXT, call_id TEXT,
            created_at DOUBLE PRECISION, PRIMARY KEY (scope, key, version)
        )""",
        "CREATE INDEX memory_writer ON memory (scope, key, exec_id, call_id)",
    ],
    # 2: documents (deployments, secrets, API keys), `Registry.put_document`.
    [
        """CREATE TABLE documents (
            kind TEXT COLLATE "C" NOT NULL, name TEXT COLLATE "C" NOT NULL, version INTEGER NOT NULL,
            body JSONB NOT NULL, created_at DOUBLE PRECISION, updated_at DOUBLE PRECISION,
            PRIMARY KEY (kind, name)
        )""",
    ],
    # 3: the launched runner the watchdog follows (ExecutionRecord.runner).
    ["ALTER TABLE executions ADD COLUMN runner JSONB"],
    # 4: executions listed newest first by (created_at, exec_id), a keyset for stable pages
    # (`list_executions(before=)`), also under a flow or status filter.
    [
        "CREATE INDEX executions_keyset ON executions (created_at, exec_id)",
        "DROP INDEX executions_created",
        "CREATE INDEX executions_flow_keyset ON executions (flow_name, created_at, exec_id)",
        "DROP INDEX executions_flow",
        "CREATE INDEX executions_status_keyset ON executions (status, created_at, exec_id)",
        "DROP INDEX executions_status",
    ],
    # 5: artifact versions numbered by a sequence per name (`registry.version_sequence`),
    # starting after the counter kept until now; the counters' table goes.
    [
        """DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT name, latest FROM artifact_versions LOOP
                EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I START WITH %s',
                               'kitaru_av_' || left(md5(r.name), 24), r.latest + 1);
            END LOOP;
        END $$""",
        "DROP TABLE artifact_versions",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
