"""A run whose controller died (kill -9) is `abandoned`, and `last`, labels and `--baseline`
pick complete runs only (issue 16: one crashed nightly used to blind the next)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from procs import alive, wait_dead
from test_run_local import edge_bench

FAST = ["--model", "builtin:digits", "--variants", "fp32", "--runs", "3", "--warmup", "0",
        "--min-seconds", "0", "--processes", "1"]


def _runs(db: Any) -> List[Dict[str, Any]]:
    """The runs as stored, read directly (not through the Store, which would reap them)."""
    if str(db).startswith("postgresql://"):
        import psycopg
        from psycopg.rows import dict_row
        try:
            with psycopg.connect(str(db), row_factory=dict_row) as con:
                return con.execute("SELECT run_id, label, status FROM runs ORDER BY id").fetchall()
        except psycopg.errors.UndefinedTable:
            return []
    con = sqlite3.connect(str(db), timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT run_id, label, status FROM runs ORDER BY id")]
    finally:
        con.close()


def _pids_mentioning(text: str) -> List[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_killed_run_is_abandoned_and_never_the_baseline(tmp_path: Path, kind: str,
                                                       request: pytest.FixtureRequest) -> None:
    """The same on both stores: the embedded SQLite file and a real PostgreSQL server."""
    db = tmp_path / "r.sqlite" if kind == "sqlite" else request.getfixturevalue("pg_url")
    p = edge_bench(["run", *FAST, "--db", str(db), "--label", "nightly"], tmp_path)
    assert p.returncode == 0, p.stderr
    good = _runs(db)[0]["run_id"]

    # the next nightly: its controller is killed with SIGKILL mid-run
    env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path / "home2"))
    env.pop("EDGE_BENCH_CONFIG", None)
    ctl = subprocess.Popen([sys.executable, "-m", "edge_bench.cli", "run", *FAST[:-6],
                            "--runs", "1000000", "--min-seconds", "60", "--max-seconds", "60",
                            "--processes", "1", "--db", str(db), "--label", "nightly"],
                           env=env, cwd=str(tmp_path), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_runs(db)) < 2:
            assert ctl.poll() is None, "the controller ended by itself"
            time.sleep(0.1)
        rows = _runs(db)
        assert len(rows) == 2 and rows[1]["status"] == "running"
        bad = rows[1]["run_id"]
        ctl.send_signal(signal.SIGKILL)
        ctl.wait(timeout=30)
    finally:
        if ctl.poll() is None:
            ctl.kill()
            ctl.wait()
        # its local agent (own session) may still time; stop exactly those processes
        for pid in _pids_mentioning(str(tmp_path / "home2")):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert wait_dead(_pids_mentioning(str(tmp_path / "home2")), timeout=30)

    p = edge_bench(["history", "--db", str(db)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert {r["run_id"]: r["status"] for r in _runs(db)} == {good: "ok", bad: "abandoned"}
    assert "abandoned" in p.stdout

    for ref in ("last", "nightly"):
        p = edge_bench(["compare", ref, ref, "--db", str(db), "--json", "-"], tmp_path)
        assert p.returncode == 0, p.stderr
        cmp = json.loads(p.stdout)
        assert cmp["base"]["run_id"] == cmp["cand"]["run_id"] == good
    p = edge_bench(["compare", "last~1", "last", "--db", str(db)], tmp_path)
    assert p.returncode == 2 and "not that many complete runs" in p.stderr
    assert f"{bad} abandoned" in p.stderr                   # says what it skipped

    # the next night's --baseline last compares with the last complete run
    p = edge_bench(["run", *FAST, "--db", str(db), "--label", "nightly", "--baseline", "last",
                    "--json", str(tmp_path / "c.json")], tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"compare {good}" in " ".join(p.stdout.split()), p.stdout
    assert not any(alive(pid) for pid in _pids_mentioning(str(tmp_path / "home2")))


LOCKER = r"""
import sqlite3, sys, time
db = sys.argv[1]
con = sqlite3.connect(db, timeout=60, isolation_level=None)
while not con.execute("SELECT 1 FROM runs WHERE status = 'running'").fetchone():
    time.sleep(0.02)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()            # hold the lock until the test closes stdin
con.execute("ROLLBACK")
"""


def test_store_locked_by_another_process_loses_no_result(tmp_path: Path) -> None:
    """The store is locked (another process holds an exclusive transaction) for the whole run:
    the benchmark goes on, every result reaches the table and --json, the run ends `partial`
    with the reason and exit 3; it never says `ok`, and no traceback."""
    db = tmp_path / "r.sqlite"
    p = edge_bench(["run", *FAST, "--db", str(db)], tmp_path)        # creates the store
    assert p.returncode == 0, p.stderr
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        out = tmp_path / "out.json"
        # a 5 s busy timeout instead of the default 30 s: the same path, a minute less of CI
        p = edge_bench(["run", "--model", "builtin:digits", "--variants", "fp32,dynamic-int8",
                        "--runs", "3", "--warmup", "0", "--min-seconds", "1", "--processes", "1",
                        "--db", str(db), "--json", str(out)], tmp_path,
                       env={"EDGE_BENCH_DB_BUSY_S": "5"})
    finally:
        locker.stdin.close()
        locker.wait(timeout=60)
    assert "locked" in locker.stdout.read()
    assert p.returncode == 3, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    doc = json.loads(out.read_text())
    assert doc["status"] == "partial" and "not in the results store" in doc["store_error"]
    assert sorted(r["variant"] for r in doc["results"]) == ["dynamic-int8", "fp32"]
    assert all(r["status"] == "ok" for r in doc["results"])
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith("result device=local")]
    assert len(rows) == 2                                   # both results reached the table
    assert "not in the results store" in p.stderr and str(out) in p.stderr
    stored = {r["run_id"]: r["status"] for r in _runs(db)}
    assert "ok" not in [s for rid, s in stored.items() if rid == doc["run_id"]]


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "ten", "3601"])
def test_a_bad_busy_timeout_is_one_line(tmp_path: Path, value: str) -> None:
    from edge_bench.results.store import Store
    Store(tmp_path / "r.sqlite").close()
    p = edge_bench(["history", "--db", str(tmp_path / "r.sqlite")], tmp_path,
                   env={"EDGE_BENCH_DB_BUSY_S": value})
    assert p.returncode == 2 and "EDGE_BENCH_DB_BUSY_S" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) <= 2, p.stderr
