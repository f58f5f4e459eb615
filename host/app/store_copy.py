"""`edge-bench store copy SRC DST`: move a history between stores (SQLite -> PostgreSQL).

Rows are copied column by column (run metadata, each result's document, its raw samples and the
time it was added), each run with its results in one transaction of the destination, in the
order the source stored them (that order, not a controller's clock, decides `last`). Runs the
destination already has complete are skipped, so a copy that was interrupted can simply be run
again. A run still being made (`running`, `queued`) is not copied yet: it is named, and the next
copy brings it whole. A run an older copy left incomplete there (status not in COMPLETE) is
brought up to date: its row updated, its results replaced.
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any, Dict, List, Sequence

from ..results.backend import open_store
from ..results.store import COMPLETE

#: run statuses of a run its controller is still making: copied only once it has ended
UNFINISHED = ("running", "queued")


@dataclass
class CopyReport:
    source: str
    destination: str
    runs: int = 0
    results: int = 0
    skipped: int = 0
    unfinished: List[str] = field(default_factory=list)   # run ids not copied yet


def _columns(store: Any, table: str) -> List[str]:
    from ..results.pg import table_columns
    return [c for c, _ in table_columns(store, table) if c != "id"]


def copy_store(src_ref: str, dst_ref: str) -> CopyReport:
    src = open_store(src_ref, create=False)
    dst = open_store(dst_ref)
    try:
        report = CopyReport(str(src.path), str(dst.path))
        run_cols = [c for c in _columns(src, "runs") if c in set(_columns(dst, "runs"))]
        res_cols = [c for c in _columns(src, "results") if c in set(_columns(dst, "results"))]
        src.reap_abandoned()  # a run whose controller died here is copied as `abandoned`
        have: Dict[str, str] = {r[0]: r[1] for r in dst._read("SELECT run_id, status FROM runs")}
        for run in src._read("SELECT * FROM runs ORDER BY id"):
            rid = run["run_id"]
            if run["status"] in UNFINISHED:
                report.unfinished.append(rid)
                continue
            if rid in have and (have[rid] in COMPLETE or have[rid] == run["status"]):
                report.skipped += 1
                continue
            results = src._read("SELECT * FROM results WHERE run_id = ? ORDER BY id", (rid,))

            def op(db: Any, run: Any = run, results: Sequence[Any] = results,
                   again: bool = rid in have) -> None:
                cells = [_run_cell(c, run[c]) for c in run_cols]
                if again:  # an older copy took it mid-run: same row, every result anew
                    sets = ", ".join(f"{c} = ?" for c in run_cols)
                    db.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*cells, run["run_id"]))
                    db.execute("DELETE FROM results WHERE run_id = ?", (run["run_id"],))
                else:
                    _insert(db, "runs", run_cols, cells)
                for r in results:
                    _insert(db, "results", res_cols, [r[c] for c in res_cols])
            dst._write(op)
            report.runs += 1
            report.results += len(results)
        return report
    finally:
        src.close()
        dst.close()


def _run_cell(col: str, value: Any) -> Any:
    """A runs cell as copied: argv redacted (a row an older version wrote may hold a password)."""
    if col != "argv" or not value:
        return value
    import json
    from ..results.cells import json_cell
    from ..results.dburl import redact_argv
    return json.dumps(redact_argv(json_cell(value, list, "a run's argv")), separators=(",", ":"))


def _insert(db: Any, table: str, cols: Sequence[str], values: Sequence[Any]) -> None:
    marks = ", ".join("?" for _ in cols)
    db.execute(f"INSERT INTO {table}({', '.join(cols)}) VALUES ({marks})", tuple(values))
