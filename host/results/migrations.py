"""The store's schema: the ordered migrations, shared by SQLite (store.py) and PostgreSQL (pg.py)."""
from __future__ import annotations

from typing import Any, List

from ..errors import StoreError

# Each migration takes the database from version i to i+1. Never edit a released one: append.
MIGRATIONS: List[str] = [
    # 1: runs and results
    """
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id      TEXT NOT NULL UNIQUE,
        label       TEXT,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        status      TEXT NOT NULL DEFAULT 'running',
        host        TEXT NOT NULL DEFAULT '{}',
        argv        TEXT NOT NULL DEFAULT '[]',
        extra       TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_label ON runs(label);
    CREATE INDEX runs_started ON runs(started_at);
    CREATE TABLE results (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id       TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        device       TEXT NOT NULL,
        model        TEXT NOT NULL,
        variant      TEXT NOT NULL,
        threads      INTEGER,
        status       TEXT NOT NULL,
        error        TEXT,
        model_sha256 TEXT,
        runtime      TEXT,
        runtime_version TEXT,
        agent_version TEXT,
        median_ms    REAL,
        n_samples    INTEGER NOT NULL DEFAULT 0,
        added_at     TEXT NOT NULL,
        doc          TEXT NOT NULL,
        samples      BLOB
    );
    CREATE INDEX results_run ON results(run_id);
    CREATE INDEX results_key ON results(device, model, variant, threads);
    """,
    # 2: the median's confidence interval as columns, for cheap history queries
    """
    ALTER TABLE results ADD COLUMN median_ci_lo REAL;
    ALTER TABLE results ADD COLUMN median_ci_hi REAL;
    """,
    # 3: a failed result's structured facts (error_detail) as columns, so history and CI can
    # select crashes vs timeouts by type, exit code or signal without parsing `error`
    """
    ALTER TABLE results ADD COLUMN error_type TEXT;
    ALTER TABLE results ADD COLUMN error_exit_code INTEGER;
    ALTER TABLE results ADD COLUMN error_signal INTEGER;
    ALTER TABLE results ADD COLUMN error_process INTEGER;
    """,
    # 4: how busy the device was while the result was timed (other processes' CPU time in
    # cores, interference.other_cores), so history can find the runs a busy device spoiled
    """
    ALTER TABLE results ADD COLUMN other_cores REAL;
    """,
    # 5: the accelerator a result ran on is part of its key (cpu: the Interpreter path, also
    # every result stored before accelerators existed)
    """
    ALTER TABLE results ADD COLUMN accelerator TEXT NOT NULL DEFAULT 'cpu';
    CREATE INDEX results_key_accel ON results(device, model, variant, threads, accelerator);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def check_not_newer(version: int, where: Any) -> None:
    """A store written by a newer edge-bench is refused, never downgraded or misread."""
    if version > SCHEMA_VERSION:
        from .. import __version__
        raise StoreError(
            f"the results store {where} has schema version {version}, newer than this "
            f"edge-bench {__version__} understands (version {SCHEMA_VERSION})",
            hint="upgrade edge-bench (pip install -U edge-bench), or pass another --db")
