"""The results store: one SQLite file, every result committed the moment it arrives.

Layout (schema version in `meta`, upgraded by the ordered MIGRATIONS list in migrations.py):

- `runs`: one row per `edge-bench run` (run_id, label, times, status, host, argv).
- `results`: one row per device x model x variant x threads, with the columns that queries
  filter on, the whole result document as JSON (`doc`, without the samples) and the raw latency
  samples packed as little-endian float64 (`samples`), so later comparisons run real statistics.
  A failed result's `error_detail` is also in columns (`error_type`, `error_exit_code`,
  `error_signal`, `error_process`; schema version 3) for queries such as "every timeout",
  and how busy the device was (`other_cores`, schema version 4) for "runs a busy device spoiled".

The database is in WAL mode and each `add_result` is its own transaction: a run that is killed
(SIGKILL, power cut of the host process) keeps every result that had been added.
One connection is shared by all threads behind a lock (results arrive from device threads).
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from ..errors import StoreError, UsageError
from .controller import controller_alive, controller_id
from edge_bench_agent.accel_spec import result_accelerator

from .cells import json_cell, number_cell, samples_cell
from .dburl import redact_argv
from .where import busy_timeout_s, default_db_path  # noqa: F401 (default_db_path: imported from here)
from .migrations import MIGRATIONS, SCHEMA_VERSION, check_not_newer

SCHEMA = "edge-bench/run/1"


_REF_LAST = re.compile(r"^last(?:~(\d+))?$")

#: run statuses of a run its controller finished; `last`, `last~N` and labels pick only these
#: (a `running` run is being made or its controller died, `abandoned` is the latter,
#: `interrupted` was stopped by Ctrl-C): one crashed nightly must not become the next baseline
COMPLETE = ("ok", "partial", "finished")
_COMPLETE_SQL = "status IN (" + ", ".join(f"'{s}'" for s in COMPLETE) + ")"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pack_samples(samples: Optional[Sequence[float]]) -> Optional[bytes]:
    if samples is None:
        return None
    return np.asarray(samples, dtype="<f8").tobytes()


def unpack_samples(blob: Optional[bytes], where: str = "a samples blob") -> List[float]:
    return samples_cell(blob, where)


def _json(x: Any) -> str:
    return json.dumps(x, separators=(",", ":"), default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


class Store:
    """A results store in one SQLite file. Safe to share between threads."""

    def __init__(self, path: Union[str, os.PathLike, None] = None, *, create: bool = True) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        if not self.path.exists():
            if not create:
                raise UsageError(f"no results store at {self.path}",
                                 hint="run `edge-bench run` first, or pass --db PATH / set EDGE_BENCH_DB")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the directory of the results store {self.path}: {e}")
        self._lock = threading.RLock()
        busy = busy_timeout_s()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=busy, isolation_level=None,
                                       check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(busy * 1000)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a network filesystem: still correct, just slower
                self._db.execute("PRAGMA journal_mode = DELETE")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a usable edge-bench results store: {e}",
                             hint="pass another --db PATH") from e

    # --- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._lock:
            db = self._db
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            check_not_newer(version, self.path)
            for i in range(version, SCHEMA_VERSION):
                db.execute("BEGIN IMMEDIATE")
                try:
                    # re-read inside the write lock: another process may have migrated meanwhile
                    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                    if row and int(row[0]) > i:
                        db.execute("COMMIT")
                        continue
                    for stmt in _split_sql(MIGRATIONS[i]):
                        db.execute(stmt)
                    db.execute("INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                               "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(i + 1),))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise

    @property
    def schema_version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(self._db)
                    self._db.execute("COMMIT")
                    return out
                except BaseException:
                    # not after the COMMIT went through (an interrupt right after it): that
                    # ROLLBACK would fail and turn a stored result into a "not stored" one
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise StoreError(f"cannot write to the results store {self.path}: {e}") from e

    def _read(self, sql: str, params: Sequence[Any] = ()) -> List[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"cannot read the results store {self.path}: {e}") from e

    # --- writing --------------------------------------------------------------------------
    def check_writable(self) -> None:
        """A real (no-op) write, so that a read-only or locked store fails before a run."""
        self._write(lambda db: db.execute(
            "UPDATE meta SET value = value WHERE key = 'schema_version'"))

    def begin_run(self, run_meta: Dict[str, Any]) -> str:
        """Record a new run. run_meta: run_id (made if missing), label, started_at, host, argv,
        status (default "running"); any other keys except results are kept too."""
        meta = dict(run_meta)
        run_id = str(meta.get("run_id") or _new_run_id())
        known = {"schema", "run_id", "label", "started_at", "finished_at", "status", "host",
                 "argv", "results"}
        extra = {k: v for k, v in meta.items() if k not in known}
        if (meta.get("status") or "running") == "running":
            extra["_controller"] = controller_id()

        def op(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise StoreError(f"run {run_id} is already in the results store {self.path}")
            db.execute(
                "INSERT INTO runs(run_id, label, started_at, finished_at, status, host, argv, extra)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, meta.get("label"), meta.get("started_at") or _now(), meta.get("finished_at"),
                 meta.get("status") or "running", _json(meta.get("host") or {}),
                 _json(redact_argv(meta.get("argv") or [])), _json(extra)))
        self._write(op)
        return run_id

    def add_result(self, run_id: str, result: Dict[str, Any]) -> int:
        """Store one result (committed before returning). Returns its row id."""
        r = dict(result)
        samples = r.pop("samples_ms", None) or []
        for k in ("device", "model", "variant"):
            if r.get(k) is None:
                raise StoreError(f"a result without `{k}` cannot be stored")
        lat = r.get("latency_ms") or {}
        rt = r.get("runtime") or {}
        ci = r.get("median_ci_ms") or [None, None]
        if (ci[0] is None) and len(samples) >= 2:
            from ..analysis.stats import bootstrap_median_ci
            lo, hi = bootstrap_median_ci(samples, n_boot=1000)
            ci = [lo, hi]
            r["median_ci_ms"] = ci if lo is not None else None
        blob = pack_samples(samples)
        det = r.get("error_detail") or {}

        def op(db: sqlite3.Connection) -> int:
            if not db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise StoreError(f"unknown run {run_id}: call begin_run first")
            cur = db.execute(
                "INSERT INTO results(run_id, device, model, variant, threads, status, error,"
                " model_sha256, runtime, runtime_version, agent_version, median_ms, n_samples,"
                " added_at, doc, samples, median_ci_lo, median_ci_hi, error_type,"
                " error_exit_code, error_signal, error_process, other_cores, accelerator)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, r["device"], r["model"], r["variant"], r.get("threads"),
                 r.get("status") or "ok", r.get("error"), r.get("model_sha256"), rt.get("name"),
                 rt.get("version"), r.get("agent_version"), lat.get("median"), len(samples),
                 _now(), _json(r), blob, ci[0], ci[1], det.get("type"), det.get("exit_code"),
                 det.get("signal"), det.get("process"),
                 (r.get("interference") or {}).get("other_cores"), result_accelerator(r)))
            return int(cur.lastrowid)
        return self._write(op)

    def finish_run(self, run_id: str, status: str, finished_at: Optional[str] = None) -> None:
        def op(db: sqlite3.Connection) -> None:
            cur = db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                             (status, finished_at or _now(), run_id))
            if cur.rowcount == 0:
                raise StoreError(f"unknown run {run_id}")
        self._write(op)

    def annotate_run(self, run_id: str, key: str, value: Any) -> None:
        """Set one field of a run's document after the fact (kept in its `extra` JSON; e.g. the
        `confirmations` that `run --fail-on-regression` made after the run's last result)."""
        def op(db: Any) -> None:
            row = db.execute("SELECT extra FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"unknown run {run_id}")
            extra = json_cell(row[0], dict, f"run {run_id}: column extra")
            extra[key] = value
            db.execute("UPDATE runs SET extra = ? WHERE run_id = ?", (_json(extra), run_id))
        self._write(op)

    def reap_abandoned(self) -> List[str]:
        """Mark `abandoned` every `running` run whose controller on this host is gone (killed,
        crashed, power cut). Returns their run ids. A read-only store is left as it is."""
        gone = []
        for row in self._read("SELECT run_id, extra FROM runs WHERE status = 'running'"):
            try:
                ctl = json_cell(row["extra"], dict, "extra").get("_controller")
            except StoreError:
                continue
            if controller_alive(ctl) is False:
                gone.append(str(row["run_id"]))
        if gone:
            def op(db: sqlite3.Connection) -> None:
                for run_id in gone:
                    db.execute("UPDATE runs SET status = 'abandoned', finished_at = COALESCE("
                               "(SELECT MAX(added_at) FROM results WHERE run_id = ?), started_at)"
                               " WHERE run_id = ? AND status = 'running'", (run_id, run_id))
            try:
                self._write(op)
            except StoreError:
                pass
        return gone

    # --- reading --------------------------------------------------------------------------
    #: newest first by the store's own insertion order, never by a controller's clock (a run
    #: whose controller was a year ahead would otherwise stay `last`; started_at is only shown)
    _ORDER = "ORDER BY id DESC"

    def list_runs(self, limit: Optional[int] = 20, label: Optional[str] = None) -> List[Dict[str, Any]]:
        """Newest first: run_id, label, started_at, finished_at, status, n_results, n_ok."""
        self.reap_abandoned()
        sql = ("SELECT r.*, (SELECT COUNT(*) FROM results x WHERE x.run_id = r.run_id) AS n_results,"
               " (SELECT COUNT(*) FROM results x WHERE x.run_id = r.run_id AND x.status = 'ok') AS n_ok"
               " FROM runs r")
        params: List[Any] = []
        if label is not None:
            sql += " WHERE label = ?"
            params.append(label)
        sql += " " + self._ORDER
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._run_meta(row, counts=True) for row in self._read(sql, params)]

    def resolve(self, ref: str, exclude: Optional[str] = None, *, complete: bool = True) -> str:
        """A run id from a ref: a run id (or a unique prefix of one), `last`, `last~N` (N runs
        before the last), or a label (its newest run). `exclude` leaves one run out of `last`
        and of labels (the run being made, when it is compared with `--baseline last`).
        With `complete` (the default, for baselines and comparisons), `last` and labels pick
        only runs in COMPLETE; a run id always resolves."""
        ref = str(ref).strip()
        if not ref:
            raise UsageError("empty run reference")
        self.reap_abandoned()
        m = _REF_LAST.match(ref)
        if m and len(m.group(1) or "") > 9:
            self._unknown(ref, "there are not that many complete runs")
        if m:
            n = int(m.group(1) or 0)
            sql = f"SELECT run_id FROM runs WHERE {_COMPLETE_SQL if complete else '1 = 1'}"
            params: List[Any] = []
            if exclude:
                sql += " AND run_id != ?"
                params.append(exclude)
            sql += f" {self._ORDER} LIMIT 1 OFFSET ?"
            params.append(n)
            rows = self._read(sql, params)
            if rows:
                return str(rows[0]["run_id"])
            self._unknown(ref, "there are not that many complete runs"
                          + self._incomplete_note())
        rows = self._read("SELECT run_id FROM runs WHERE run_id = ?", (ref,))
        if rows:
            return str(rows[0]["run_id"])
        sql = f"SELECT run_id FROM runs WHERE label = ? AND {_COMPLETE_SQL if complete else '1 = 1'}"
        params = [ref]
        if exclude:
            sql += " AND run_id != ?"
            params.append(exclude)
        rows = self._read(sql + f" {self._ORDER} LIMIT 1", params)
        if rows:
            return str(rows[0]["run_id"])
        if self._read("SELECT 1 FROM runs WHERE label = ? LIMIT 1", (ref,)):
            self._unknown(ref, "no complete run has this label" + self._incomplete_note(ref))
        like = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._read("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\'", (like,))
        if len(rows) == 1:
            return str(rows[0]["run_id"])
        if len(rows) > 1:
            self._unknown(ref, f"it matches {len(rows)} run ids")
        self._unknown(ref, None)
        raise AssertionError("unreachable")

    def _incomplete_note(self, label: Optional[str] = None) -> str:
        sql = f"SELECT run_id, status FROM runs WHERE NOT {_COMPLETE_SQL}"
        params: List[Any] = []
        if label is not None:
            sql += " AND label = ?"
            params.append(label)
        rows = self._read(sql + f" {self._ORDER} LIMIT 3", params)
        if not rows:
            return ""
        return (" (skipped, not complete: "
                + ", ".join(f"{r['run_id']} {r['status']}" for r in rows)
                + "; name one by its run id to use it anyway)")

    def _unknown(self, ref: str, why: Optional[str]) -> None:
        recent = self.list_runs(limit=8)
        if recent:
            lines = ", ".join(f"{r['run_id']}" + (f" ({r['label']})" if r.get("label") else "")
                              for r in recent)
            hint = f"recent runs, newest first: {lines}; or use last, last~N, a label, or a --json file"
        else:
            hint = f"the results store {self.path} has no runs yet"
        msg = f"no run `{ref}` in {self.path}" + (f": {why}" if why else "")
        raise UsageError(msg, hint=hint)

    def get_run(self, ref: str, *, samples: bool = True) -> Dict[str, Any]:
        """The run as an "edge-bench/run/1" document with all its results (samples included)."""
        run_id = self.resolve(ref, complete=False)
        rows = self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        doc = self._run_meta(rows[0])
        res = self._read("SELECT * FROM results WHERE run_id = ? ORDER BY id", (run_id,))
        doc["results"] = [self._result(row, samples=samples) for row in res]
        return doc

    def history(self, device: Optional[str] = None, model: Optional[str] = None,
                variant: Optional[str] = None, threads: Optional[int] = None,
                last: Optional[int] = None, *, accelerator: Optional[str] = None,
                label: Optional[str] = None,
                status: Optional[str] = None, error_type: Optional[str] = None,
                samples: bool = False, before: Optional[str] = None) -> List[Dict[str, Any]]:
        """Results across runs, oldest first. Each row: run_id, label, started_at, device,
        model, variant, threads, accelerator, status, error, error_type, error_exit_code, error_signal,
        error_process, median_ms, ci_lo, ci_hi, n_samples,
        model_sha256, runtime, runtime_version, agent_version, result (the result document).
        `last` keeps only the N most recent runs that have a matching result; `before` (an
        ISO time) only runs started at or before it."""
        where, params = [], []
        for col, val in (("x.device", device), ("x.model", model), ("x.variant", variant),
                         ("x.threads", threads), ("x.accelerator", accelerator),
                         ("x.status", status),
                         ("x.error_type", error_type)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if label is not None:
            where.append("x.run_id IN (SELECT run_id FROM runs WHERE label = ?)")
            params.append(label)
        if before is not None:
            where.append("x.run_id IN (SELECT run_id FROM runs WHERE started_at <= ?)")
            params.append(before)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        sql = ("SELECT x.*, r.label, r.started_at, r.status AS run_status, r.id AS run_seq"
               " FROM results x JOIN runs r ON r.run_id = x.run_id" + cond)
        if last is not None:
            sql += (" AND" if cond else " WHERE") + (
                " x.run_id IN (SELECT r2.run_id FROM runs r2 WHERE EXISTS (SELECT 1 FROM results x"
                " WHERE x.run_id = r2.run_id" + ("".join(" AND " + w for w in where)) + ")"
                " ORDER BY r2.id DESC LIMIT ?)")
            params = params + params + [int(last)]
        sql += " ORDER BY r.id, x.id"
        out = []
        for row in self._read(sql, params):
            res = self._result(row, samples=samples)
            out.append({
                "run_id": row["run_id"], "label": row["label"], "started_at": row["started_at"],
                "device": row["device"], "model": row["model"], "variant": row["variant"],
                "threads": row["threads"], "accelerator": row["accelerator"],
                "status": row["status"], "error": row["error"],
                "error_type": row["error_type"], "error_exit_code": row["error_exit_code"],
                "error_signal": row["error_signal"], "error_process": row["error_process"],
                "other_cores": row["other_cores"],
                "median_ms": number_cell(row["median_ms"], f"{_row_name(row)}: column median_ms"),
                "ci_lo": number_cell(row["median_ci_lo"], f"{_row_name(row)}: column median_ci_lo"),
                "ci_hi": number_cell(row["median_ci_hi"], f"{_row_name(row)}: column median_ci_hi"),
                "n_samples": row["n_samples"],
                "model_sha256": row["model_sha256"], "runtime": row["runtime"],
                "runtime_version": row["runtime_version"], "agent_version": row["agent_version"],
                "result": res,
            })
        return out

    def _run_meta(self, row: sqlite3.Row, counts: bool = False) -> Dict[str, Any]:
        doc: Dict[str, Any] = {"schema": SCHEMA, "run_id": row["run_id"], "label": row["label"],
                               "started_at": row["started_at"], "finished_at": row["finished_at"],
                               "status": row["status"]}
        run = f"run {row['run_id']} in {self.path}"
        doc["host"] = json_cell(row["host"], dict, f"{run}: column host")
        doc["argv"] = redact_argv(json_cell(row["argv"], list, f"{run}: column argv"))  # old rows
        extra = json_cell(row["extra"], dict, f"{run}: column extra")
        for k, v in extra.items():
            if not k.startswith("_"):
                doc.setdefault(k, v)
        if counts:
            doc["n_results"] = row["n_results"]
            doc["n_ok"] = row["n_ok"]
        return doc

    @staticmethod
    def _result(row: sqlite3.Row, samples: bool = True) -> Dict[str, Any]:
        r = json_cell(row["doc"], dict, f"{_row_name(row)}: column doc")
        r["samples_ms"] = unpack_samples(row["samples"], f"{_row_name(row)}: column samples") \
            if samples else []
        return r


def _row_name(row: Any) -> str:
    """A result row as a message names it."""
    try:
        return f"result {row['id']} of run {row['run_id']}"
    except (IndexError, KeyError):
        return "a result"


def _split_sql(script: str) -> Iterable[str]:
    for stmt in script.split(";"):
        if stmt.strip():
            yield stmt


def _new_run_id() -> str:
    from .record import new_run_id
    return new_run_id()
