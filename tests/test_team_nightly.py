"""The nightly job on ephemeral CI runners with a shared PostgreSQL history (issue 14, "Done when"):
last night's run came from another machine (another HOME, cache and no SQLite file); tonight's
run with `--baseline last --fail-on-regression` finds it in PostgreSQL and exits 1 on a real
regression (the same model path, bytes that do about 3x the work). history/compare/report read the
same store through EDGE_BENCH_DB."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

import team
from test_regression_e2e import SLOWER_EXTRA, TIMING, _build_model

# exclusive: the nightly verdict compares the speed of two runs; nothing else runs beside it
# (conftest.py)
pytestmark = pytest.mark.exclusive


def machine(tmp: Path, name: str) -> Dict[str, str]:
    """A fresh CI runner: its own HOME, data dir and model cache; no devices.yaml."""
    home = tmp / name
    home.mkdir()
    e = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_BENCH_", "PG"))}
    e.update(HOME=str(home), XDG_DATA_HOME=str(home / "share"),
             EDGE_BENCH_CACHE=str(home / "cache"))
    return e


def eb(args: List[str], env: Dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", *args], capture_output=True,
                          text=True, env=env, cwd=str(cwd), timeout=600)


def test_nightly_on_postgresql_catches_a_regression_from_another_machine(
        tmp_path: Path, pg_url: str) -> None:
    model_a = tmp_path / "a" / "net.tflite"
    a = machine(tmp_path, "a")
    model_a.write_bytes(_build_model(0))
    p = eb(["run", "--model", "net.tflite", *TIMING, "--db", pg_url, "--label", "nightly-1"],
           a, model_a.parent)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not list((tmp_path / "a").rglob("*.sqlite")), "the run must not fall back to SQLite"

    b = machine(tmp_path, "b")
    b["EDGE_BENCH_DB"] = pg_url  # the CI secret/variable way of naming the store
    model_b = tmp_path / "b" / "net.tflite"
    model_b.write_bytes(_build_model(SLOWER_EXTRA))
    p = eb(["run", "--model", "net.tflite", *TIMING, "--label", "nightly-2",
            "--baseline", "last", "--fail-on-regression"], b, model_b.parent)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "REGRESSION" in p.stdout and "slower" in p.stdout
    assert "nightly-1" in p.stdout or "model_sha256" in p.stdout
    assert not list((tmp_path / "b").rglob("*.sqlite"))

    # every reading command sees both machines' runs in the shared store
    h = eb(["history", "--csv", "-"], b, tmp_path)
    assert h.returncode == 0, h.stderr
    rows = list(csv.DictReader(h.stdout.splitlines()))
    assert [r["label"] for r in rows] == ["nightly-1", "nightly-2"]
    c = eb(["compare", "nightly-1", "nightly-2", "--json", "-", "--fail-on-regression"], b, tmp_path)
    assert c.returncode == 1, c.stderr
    (row,) = json.loads(c.stdout)["rows"]
    from edge_bench.analysis.verdict import DEFAULT_THRESHOLD   # not a CPU-dependent size
    assert row["verdict"] == "slower" and row["ratio"] > 1 + DEFAULT_THRESHOLD \
        and row["ci_lo"] > 1.0
    r = eb(["report", "last", "--csv", str(tmp_path / "r.csv")], b, tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list(csv.DictReader((tmp_path / "r.csv").open()))) == 1

    # the same verdict through the queue: a worker serves `local` (lab `default`), and
    # `submit --wait` exits with run's codes (0 and 3 are in test_team_queue.py)
    w = team.Workers(tmp_path, pg_url)
    try:
        w.start("default", None)
        s = eb(["submit", "--model", "net.tflite", *TIMING, "--label", "nightly-3",
                "--baseline", "nightly-1", "--fail-on-regression", "--wait"], b, model_b.parent)
        assert s.returncode == 1, s.stdout + s.stderr
        assert "REGRESSION" in s.stdout and "slower" in s.stdout
    finally:
        w.close()
    h = eb(["history", "--csv", "-"], b, tmp_path)
    assert [r["label"] for r in csv.DictReader(h.stdout.splitlines())] == \
        ["nightly-1", "nightly-2", "nightly-3"]
