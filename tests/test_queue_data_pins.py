"""Issue 25 item 6: a queued job pins its data files (--eval, --calibration, --reference) by
sha256 as it pins models: replacing evalA.npz between `submit` and the worker's run gives a
refused job with one line, never a result scored on other data."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import team
from edge_bench.errors import UsageError
from test_run_local import REPO

DATA = REPO / "host" / "models" / "builtin" / "data"
DIGITS = DATA / "digits.tflite"


def _eval_files(tmp: Path) -> None:
    ev = np.load(DATA / "digits_eval.npz")
    np.savez(tmp / "evalA.npz", x=ev["x"], y=ev["y"])
    np.savez(tmp / "evalB.npz", x=ev["x"][::-1].copy(), y=ev["y"])   # other data, same shape
    cal = np.load(DATA / "digits_calib.npz")
    (tmp / "calib").mkdir()
    for i in range(4):                                   # a folder: one .npy per sample
        np.save(tmp / "calib" / f"{i}.npy", cal["x"][i])


def _config(tmp: Path) -> Path:
    cfg = tmp / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n"
                   f"    workdir: {tmp / 'work'}\n")
    return cfg


def _options(tmp: Path, **kw: Any) -> Any:
    from edge_bench.app.jobspec import job_options, request_from_args
    args = argparse.Namespace(model=[str(DIGITS)], variants="fp32", runs=3, warmup=0,
                              min_seconds=0.0, processes=1, **kw)
    return job_options(request_from_args(args))


@pytest.mark.parametrize("flag", ["eval", "calibration", "reference"])
def test_worker_refuses_data_changed_after_submit(tmp_path: Path, flag: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_bench.app.jobspec import plan_device
    monkeypatch.setenv("EDGE_BENCH_CACHE", str(tmp_path / "cache"))
    _eval_files(tmp_path)
    ref = tmp_path / "ref.tflite"
    ref.write_bytes(DIGITS.read_bytes())
    given = {"eval": str(tmp_path / "evalA.npz"), "calibration": str(tmp_path / "calib"),
             "reference": [str(ref)]}[flag]
    opts = _options(tmp_path, **{flag: given})
    config = str(_config(tmp_path))
    plan_device(opts, "box", "default", config, skip=set())        # unchanged: planned
    if flag == "eval":
        (tmp_path / "evalB.npz").replace(tmp_path / "evalA.npz")
    elif flag == "calibration":
        np.save(tmp_path / "calib" / "0.npy", np.zeros(64, np.float32))
    else:
        ref.write_bytes(DIGITS.read_bytes() + b"\0")
    with pytest.raises(UsageError, match=f"--{flag} .* not the file that was submitted"):
        plan_device(opts, "box", "default", config, skip=set())


def test_queued_eval_replaced_before_the_worker_runs_is_refused(tmp_path: Path,
                                                                pg_url: str) -> None:
    """End to end on the real PostgreSQL queue: submit, swap the eval file, run the worker."""
    _eval_files(tmp_path)
    cfg = _config(tmp_path)
    s = team.cli(["submit", "--config", str(cfg), "--devices", "box", "--model", str(DIGITS),
                  "--variants", "fp32", "--runs", "3", "--warmup", "0", "--min-seconds", "0",
                  "--processes", "1", "--eval", str(tmp_path / "evalA.npz")], tmp_path, pg_url)
    assert s.returncode == 0, s.stdout + s.stderr
    (tmp_path / "evalB.npz").replace(tmp_path / "evalA.npz")
    w = team.cli(["worker", "--lab", "default", "--config", str(cfg), "--once"], tmp_path, pg_url)
    assert not team.query(pg_url, "SELECT id FROM results WHERE status = 'ok'")
    notes = [r[0] for r in team.query(pg_url, "SELECT note FROM edge_bench_job_notes")]
    assert len(notes) == 1 and "--eval" in notes[0] and "not the file that was submitted" in notes[0]
