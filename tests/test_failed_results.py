"""Failed results carry their facts as fields (`error_detail`): in `--json`, in the store and in
the schema, so CI tells a timeout from a crash without parsing text.

End to end on the `local` device: the real agent, the real LiteRT interpreter, a real worker
process that really crashes (SIGSEGV from outside, with Python's faulthandler writing its
report to stderr) or really runs past timeout_s.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from edge_bench.errors import (AgentError, DeviceError, RemoteCommandError, TransportError,
                               detail_of)
from edge_bench.results.document import validate
from edge_bench.results.store import Store

RUN = ["run", "--devices", "box", "--model", "builtin:digits", "--variants", "fp32",
       "--threads", "1", "--processes", "2", "--warmup", "0", "--min-seconds", "60",
       "--max-seconds", "120", "--max-runs", "100000000", "--runs", "10"]


def write_config(tmp: Path, **fields: Any) -> Path:
    cfg = tmp / "devices.yaml"
    extra = "".join(f"    {k}: {v}\n" for k, v in fields.items())
    cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n"
                   f"    workdir: {tmp / 'wd'}\n" + extra)
    return cfg


def start(tmp: Path, cfg: Path) -> subprocess.Popen:
    env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp / "cache"), HOME=str(tmp / "home"))
    env.pop("EDGE_BENCH_CONFIG", None)
    return subprocess.Popen([sys.executable, "-m", "edge_bench.cli", *RUN, "--config", str(cfg),
                             "--json", str(tmp / "out.json"), "--db", str(tmp / "r.sqlite")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(tmp))


def worker_pids(workdir: Path) -> List[int]:
    """Agent worker processes (`<agent> --worker`) started from this test's workdir."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--worker" in argv and any(str(workdir).encode() in a for a in argv):
            out.append(int(d.name))
    return out


def wait_for_timing_worker(workdir: Path, p: subprocess.Popen, timeout: float = 180) -> int:
    """The pid of the worker once it has the LiteRT runtime loaded (so it is past interpreter
    start-up and faulthandler is armed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in worker_pids(workdir):
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                continue
            if "ai_edge_litert" in maps or "tflite" in maps:
                return pid
        if p.poll() is not None:
            raise AssertionError("edge-bench ended before the worker started: " + p.stderr.read())
        time.sleep(0.05)
    raise AssertionError("no worker process with a loaded runtime appeared")


def finish(p: subprocess.Popen) -> str:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 3, err + out   # a failed task: exit 3
    return err


def stored_error_columns(db: Path) -> Dict[str, Any]:
    con = sqlite3.connect(str(db))
    con.row_factory = sqlite3.Row
    try:
        (row,) = con.execute("SELECT status, error_type, error_exit_code, error_signal,"
                             " error_process FROM results").fetchall()
        return dict(row)
    finally:
        con.close()


def the_result(tmp: Path) -> Dict[str, Any]:
    doc = json.loads((tmp / "out.json").read_text())
    validate(doc, where="out.json")          # the schema accepts the new fields
    (r,) = doc["results"]
    assert r["status"] == "error" and r["error"]
    return r


def test_a_crashing_worker_is_a_structured_failed_result(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, env="{PYTHONFAULTHANDLER: '1'}")
    p = start(tmp_path, cfg)
    try:
        pid = wait_for_timing_worker(tmp_path / "wd", p)
        os.kill(pid, signal.SIGSEGV)
        finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    r = the_result(tmp_path)
    d = r["error_detail"]
    assert d["type"] == "WorkerCrashed"
    assert d["signal"] == signal.SIGSEGV and d["signal_name"] == "SIGSEGV"
    assert d["exit_code"] is None and d["process"] == 0
    assert "Segmentation fault" in (d["stderr_tail"] or ""), d   # faulthandler's report
    # the store has the same facts, as columns and in the stored document
    assert stored_error_columns(tmp_path / "r.sqlite") == {
        "status": "error", "error_type": "WorkerCrashed", "error_exit_code": None,
        "error_signal": signal.SIGSEGV, "error_process": 0}
    with Store(tmp_path / "r.sqlite", create=False) as st:
        (row,) = st.history(error_type="WorkerCrashed")
        assert row["result"]["error_detail"] == d
        assert st.history(error_type="Timeout") == []


def test_a_worker_past_timeout_s_is_a_timeout_not_a_crash(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, timeout_s=4)
    p = start(tmp_path, cfg)
    try:
        err = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    r = the_result(tmp_path)
    d = r["error_detail"]
    assert d["type"] == "Timeout", (d, err)
    assert d["process"] == 0 and d["signal"] is None and d["exit_code"] is None
    assert "timeout_s=4" in d["message"]
    assert stored_error_columns(tmp_path / "r.sqlite") == {
        "status": "error", "error_type": "Timeout", "error_exit_code": None,
        "error_signal": None, "error_process": 0}
    assert not worker_pids(tmp_path / "wd"), "the timed-out worker must be killed"


def test_old_documents_without_error_detail_stay_valid() -> None:
    doc = {"schema": "edge-bench/run/1", "run_id": "r1", "started_at": "2026-01-01T00:00:00+00:00",
           "results": [{"device": "d", "model": "m", "variant": "fp32", "threads": 1,
                        "status": "error", "error": "WorkerCrashed: worker killed by SIGSEGV"}]}
    validate(doc)
    doc["results"][0]["error_detail"] = {"type": "WorkerCrashed", "signal": 0}
    with pytest.raises(Exception):
        validate(doc)   # a signal number is >= 1


# --- the exceptions: fields in the constructor, text built when printed ---------------------
def test_device_name_is_a_field_not_part_of_the_message() -> None:
    e = DeviceError("pi4", "cannot create directory x", hint="check the workdir")
    assert e.device == "pi4" and e.message == "cannot create directory x"
    assert e.detail() == "cannot create directory x (check the workdir)"
    assert str(e) == "pi4: cannot create directory x (check the workdir)"


def test_transport_error_says_how_many_attempts_when_printed() -> None:
    e = TransportError("pi4", "connection refused by h:22", retryable=True, attempts=3)
    assert e.retryable and e.attempts == 3
    assert str(e) == "pi4: connection refused by h:22 (gave up after 3 attempts)"
    assert TransportError("pi4", "x").retryable is False


def test_detail_of_maps_errors_to_result_fields() -> None:
    a = AgentError("pi4", "WorkerCrashed", "worker killed by SIGKILL", signal=9,
                   signal_name="SIGKILL", stderr_tail="boom", process=2)
    assert str(a) == "pi4: WorkerCrashed: worker killed by SIGKILL"
    assert detail_of(a) == {"type": "WorkerCrashed", "message": "worker killed by SIGKILL",
                            "exit_code": None, "signal": 9, "signal_name": "SIGKILL",
                            "stderr_tail": "boom", "process": 2}
    rc: Optional[Dict[str, Any]] = detail_of(RemoteCommandError("p", "benchmark_model", -11, "x"))
    assert rc["type"] == "RemoteCommandError" and rc["signal"] == 11 and rc["exit_code"] is None
    assert detail_of(ValueError("bad"))["type"] == "InternalError"
