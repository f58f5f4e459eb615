"""A job whose controller is gone stops by itself (issue 16): `kill -9` of `edge-bench run` while
the device's worker is timing leaves no agent process on the device and frees the device lock
within seconds, so the next run gets the device without --lock-wait.

How the job knows: the host keeps the job's stdin open for the life of the job; EOF on it (the
controller died, its SSH connection or adb shell went away) makes the agent stop its workers
(TERM, then KILL), release the lock and exit 4 (docs/protocol.md "Controller gone").

Real components: `edge-bench run` as a subprocess, the real agent zipapp and LiteRT worker, the
`local` transport and a real OpenSSH sshd (tests/sshd.py); the agent processes are found in
/proc by the test's own workdir path in their command line.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from procs import kill_all, pids_with
from test_run_local import edge_bench
from test_run_ssh import fleet_yaml

pytestmark = pytest.mark.timeout(400)

#: a task that would time for 60 s: far longer than the bounds below
LONG = ["--model", "builtin:digits", "--variants", "fp32", "--runs", "1000000", "--warmup", "0",
        "--min-seconds", "60", "--max-seconds", "60", "--processes", "1"]
#: "within a few seconds": TERM, at worst KILL after 2 s, on a loaded 2-core host (measured
#: 0.1-0.3 s). Before the fix both were still there after 6 s: the job noticed its controller's
#: death only when a write failed (its next heartbeat, every 10 s here, or its result)
GONE_WITHIN_S = 6.0




def lock_free(lock: Path) -> bool:
    """True when nobody holds the device's flock (tried for real, and let go at once)."""
    try:
        fd = os.open(str(lock), os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    finally:
        os.close(fd)


def config(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Dict[str, Any]:
    if kind == "local":
        wd = tmp_path / "local-workdir"
        cfg = tmp_path / "devices.yaml"
        cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n    workdir: {wd}\n")
        return {"cfg": cfg, "workdir": wd}
    cfg = fleet_yaml(tmp_path, request.getfixturevalue("sshd_server"))
    return {"cfg": cfg, "workdir": tmp_path / "remote-workdir"}


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_kill_9_of_the_controller_stops_the_job_and_frees_the_lock(
        tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    c = config(kind, tmp_path, request)
    wd: Path = c["workdir"]
    env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path / "home"))
    env.pop("EDGE_BENCH_CONFIG", None)
    ctl = subprocess.Popen([sys.executable, "-m", "edge_bench.cli", "run", "--config",
                            str(c["cfg"]), "--devices", "box", *LONG, "--no-store"],
                           env=env, cwd=str(tmp_path), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not [p for p in pids_with(str(wd)) if "--worker" in _cmd(p)]:
            assert ctl.poll() is None, "the controller ended by itself: " + ctl.stderr.read()
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.05)
        on_device = pids_with(str(wd))          # the job process and its worker
        assert len(on_device) >= 2, [_cmd(p) for p in on_device]
        assert not lock_free(wd / "lock")
        ctl.send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        ctl.wait(timeout=30)
        deadline = t_kill + GONE_WITHIN_S
        while (pids_with(str(wd)) or not lock_free(wd / "lock")) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        gone_s = time.monotonic() - t_kill
        left = pids_with(str(wd))
        assert left == [], (kind, [_cmd(p) for p in left])
        assert lock_free(wd / "lock"), "the device lock is still held"
        print(f"{kind}: job and worker gone, lock free {gone_s:.2f} s after kill -9")
    finally:
        if ctl.poll() is None:
            ctl.kill()
            ctl.wait()
        kill_all(pids_with(str(wd)))    # only this test's own device processes
    assert not (wd / "lock.holder").exists()   # the job released the lock itself
    # the next run gets the device at once (no --lock-wait)
    out = tmp_path / "next.json"
    p = edge_bench(["run", "--config", str(c["cfg"]), "--devices", "box", "--model",
                    "builtin:digits", "--variants", "fp32", "--runs", "3", "--min-seconds", "0",
                    "--processes", "1", "--no-store", "--json", str(out)], tmp_path)
    assert p.returncode == 0, p.stderr
    (r,) = json.loads(out.read_text())["results"]
    assert r["status"] == "ok", r["error"]


def _cmd(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
