-- The schema as cadenza made it before claims (schema_version 1 in the meta table). Every
-- statement keeps IF NOT EXISTS: a file made by an early cadenza lacks some of these tables,
-- and when such a file is adopted at version 1 this file runs over it to add them.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL,
    created_at REAL NOT NULL, target TEXT NOT NULL DEFAULT '', started_at REAL, ended_at REAL,
    logical_date TEXT, interval_start TEXT, interval_end TEXT, runner_pid INTEGER,
    heartbeat REAL, cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, created_at);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS runs_once_per_interval ON runs (pipeline, logical_date)
    WHERE logical_date IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state);
CREATE TABLE IF NOT EXISTS task_instances (
    run_id TEXT NOT NULL, task TEXT NOT NULL, map_index INTEGER NOT NULL, state TEXT NOT NULL,
    attempt INTEGER NOT NULL, cache_key TEXT, output TEXT, files TEXT, started_at REAL,
    ended_at REAL, error TEXT, PRIMARY KEY (run_id, task, map_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL, task TEXT NOT NULL, map_index INTEGER NOT NULL,
    attempt INTEGER NOT NULL, state TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
    error TEXT, traceback TEXT, log_path TEXT, checks TEXT,
    PRIMARY KEY (run_id, task, map_index, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
    hash TEXT PRIMARY KEY, serializer TEXT NOT NULL, size INTEGER NOT NULL,
    pipeline TEXT NOT NULL, task TEXT NOT NULL, run_id TEXT NOT NULL, created_at REAL NOT NULL,
    name TEXT NOT NULL, uri TEXT, data BLOB
);
CREATE INDEX IF NOT EXISTS artifacts_by_pipeline ON artifacts (pipeline, created_at);
CREATE INDEX IF NOT EXISTS artifacts_by_task ON artifacts (pipeline, task, name, created_at);
CREATE INDEX IF NOT EXISTS artifacts_by_time ON artifacts (created_at);
CREATE TABLE IF NOT EXISTS lineage (
    child TEXT NOT NULL, parent TEXT NOT NULL, PRIMARY KEY (child, parent)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache (
    pipeline TEXT NOT NULL, task TEXT NOT NULL, key TEXT NOT NULL, output TEXT, files TEXT,
    run_id TEXT NOT NULL, created_at REAL NOT NULL, meta TEXT NOT NULL,
    PRIMARY KEY (pipeline, task, key)
);
CREATE INDEX IF NOT EXISTS cache_by_time ON cache (pipeline, task, created_at);
-- Events are never deleted, so a plain INTEGER PRIMARY KEY only grows (AUTOINCREMENT would
-- cost a second write per event).
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, kind TEXT NOT NULL,
    ts REAL NOT NULL, task TEXT, map_index INTEGER NOT NULL, data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, id);
CREATE TABLE IF NOT EXISTS pipelines (
    name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    pipeline TEXT NOT NULL, task TEXT NOT NULL, name TEXT NOT NULL, alias TEXT NOT NULL,
    hash TEXT NOT NULL, at REAL NOT NULL, by TEXT NOT NULL,
    PRIMARY KEY (pipeline, task, name, alias, at)
);
CREATE TABLE IF NOT EXISTS approvals (
    run_id TEXT NOT NULL, task TEXT NOT NULL, approved INTEGER NOT NULL, by TEXT NOT NULL,
    at REAL NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (run_id, task)
);
