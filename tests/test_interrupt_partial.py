"""Ctrl-C keeps what has been measured (issue 24): with the default interleaving, every model's
worker processes alternate (t1 proc 1, t2 proc 1, t1 proc 2, ...), so no task has its full
`result` before the last round. The agent sends each finished process's samples as a `part`
event; an interrupted run keeps them as `partial` results (never `ok`), in --json and in the
store. A real `edge-bench run` on `local` (the agent in a subprocess, the real LiteRT
interpreter), SIGINT sent once both tasks have a finished process (read from its progress
lines, no fixed sleep).
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import List

import numpy as np

import pytest

from test_fleet_faults import Run, no_traceback

pytestmark = pytest.mark.timeout(300)


def test_ctrl_c_mid_interleaved_run_keeps_the_finished_processes_as_partial(
        tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n  local:\n    transport: local\n"
                   f"    workdir: {tmp_path / 'wd'}\n")
    # 2 tasks x 3 processes, interleaved (the default): a task's result would come in round 3
    run = Run(tmp_path, cfg, "--processes", "3", devices="local", threads="1,2",
              min_seconds=6.0, label="partial")
    lines: List[str] = []
    assert run.proc.stderr is not None

    def read() -> None:
        for line in iter(run.proc.stderr.readline, ""):
            lines.append(line)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    while sum("proc 1/3 done" in x for x in lines) < 2:   # round 1 over: t1 and t2 have one
        assert run.proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "round 1 never finished\n" + "".join(lines)
        time.sleep(0.05)
    run.proc.send_signal(signal.SIGINT)
    run.proc.wait(timeout=120)
    reader.join(10)
    run.code, run.stderr = run.proc.returncode, "".join(lines)
    assert run.proc.stdout is not None
    run.stdout = run.proc.stdout.read()
    assert run.code == 130, run.why()
    doc = run.doc
    assert doc["status"] == "interrupted"
    rows = doc["results"]
    assert len(rows) == 2, rows
    for r in rows:
        # what ran is kept, and said to be partial: never `ok` for a task cut short
        assert r["status"] == "partial", r
        assert r["error_detail"]["type"] == "Partial", r
        done = len(r["process_runs"])
        assert 1 <= done < 3 and r["processes"] == done, r
        assert f"after {done} of 3 worker processes" in r["error"], r
        assert r["runs"] == len(r["samples_ms"]) == sum(r["process_runs"]) > 0, r
        assert r["latency_ms"]["median"] > 0, r
    assert "partial (the samples measured so far)" in run.stderr, run.why()
    from edge_bench.results.document import read_json, validation_errors
    assert validation_errors(read_json(run.out)) == []     # the schema knows `partial`
    st = run.stored()
    assert st["status"] == "interrupted"
    assert sorted((r["threads"], r["status"], r["runs"]) for r in st["results"]) == \
        sorted((r["threads"], r["status"], r["runs"]) for r in rows)
    no_traceback(run)


def test_a_partial_candidate_is_missing_in_compare_not_a_regression() -> None:
    """A key an interrupted run measured only in part is not compared (fewer processes than
    the baseline) and never counted as a failure or a regression."""
    from edge_bench.analysis.verdict import compare_results
    from synth import fake_result
    rng = np.random.default_rng(0)
    base = fake_result(list(1.0 + 0.01 * rng.random(300)))
    cand = fake_result(list(1.0 + 0.01 * rng.random(100)), status="partial",
                       error="the run was interrupted after 1 of 3 worker processes")
    row = compare_results(base, cand)
    assert row["verdict"] == "missing" and row["regression"] is False, row
    assert row["notes"] == ["candidate partial: the run was interrupted after 1 of 3 worker"
                            " processes"], row
