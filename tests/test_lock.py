"""One benchmark at a time per device, across controllers: the agent's flock on <workdir>/lock.

Real processes only: two concurrent `edge-bench run` on the same `local` device and workdir (the
second fails fast naming the first, or queues with --lock-wait), kill -9 of a holder (the next
job runs: the kernel drops a dead holder's flock), and the agent on its own.

The holder is kept busy cheaply: its agent sees a fake 90 C thermal zone
(EDGE_BENCH_AGENT_SYSROOT) and waits out a cooldown configured in devices.yaml, holding the lock.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from procs import wait_dead

from edge_bench.fleet.artifact import agent_artifact

REPO = Path(__file__).resolve().parents[1]
AGENT = agent_artifact()[0]  # the built agent zipapp
HOLD_S = 20  # how long the first job sits in its cooldown while holding the lock

pytestmark = pytest.mark.timeout(300)


@pytest.fixture()
def box(tmp_path: Path) -> Path:
    """devices.yaml with a `local` device `box` whose SoC reads 90 C and must cool below 50 C."""
    root = tmp_path / "root"
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("90000\n")
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(f"""version: 1
devices:
  box:
    transport: local
    workdir: {tmp_path / 'wd'}
    cooldown_temp_c: 50
    cooldown_max_s: {HOLD_S}
    env:
      EDGE_BENCH_AGENT_SYSROOT: "{root}"
""")
    return cfg


def _env(cwd: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("EDGE_BENCH_CONFIG", None)
    env["EDGE_BENCH_CACHE"] = str(cwd / "cache")
    return env


RUN = ["run", "--devices", "box", "--model", "builtin:digits", "--variants", "fp32",
       "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--no-store"]


def start(cfg: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge_bench.cli", *RUN, "--config", str(cfg),
                             "--json", str(out), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(cfg.parent),
                            cwd=str(cfg.parent))


def run(cfg: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", *RUN, "--config", str(cfg),
                           "--json", str(out), *extra], capture_output=True, text=True,
                          env=_env(cfg.parent), cwd=str(cfg.parent), timeout=240)


def wait_for_holder(lock: Path, proc: Optional[subprocess.Popen] = None,
                    timeout: float = 120) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    holder_file = lock.parent / "lock.holder"   # the lock file itself is never written
    while time.monotonic() < deadline:
        try:
            data = json.loads(holder_file.read_text())
            if data.get("pid"):
                return data
        except (OSError, ValueError):
            pass
        if proc is not None and proc.poll() is not None:
            raise AssertionError("holder exited early: " + proc.stderr.read())
        time.sleep(0.1)
    raise AssertionError(f"no holder in {lock} after {timeout} s")


def results(path: Path) -> List[Dict[str, Any]]:
    return json.loads(path.read_text())["results"]


def test_second_run_fails_fast_naming_the_first_then_lock_wait_queues(box: Path) -> None:
    tmp = box.parent
    first = start(box, tmp / "first.json")
    holder = wait_for_holder(tmp / "wd" / "lock", first)
    assert holder["job_id"].endswith("-box") and holder["controller_host"]
    second = run(box, tmp / "second.json")
    # failed fast: it ended while the first run still holds the device (no clock involved)
    assert first.poll() is None, "the first run must still hold the device"
    assert second.returncode == 3, second.stderr
    expected = (f"device box is busy: held by job {holder['job_id']} (pid {holder['pid']},"
                f" since {holder['since']}) from controller ")
    (r,) = results(tmp / "second.json")
    assert r["status"] == "error" and r["error"].startswith(expected), r["error"]
    assert "--lock-wait" in r["error"]
    assert expected in second.stderr  # the device's status line
    assert expected in second.stdout  # the table's status column

    # a third run queues behind the first with --lock-wait and runs when the lock is free
    third = run(box, tmp / "third.json", "--lock-wait", "200", "--cooldown-max-s", "0")
    first_out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert third.returncode == 0, third.stderr
    assert "waiting for the device lock: held by job " + holder["job_id"] in third.stderr
    (r3,) = results(tmp / "third.json")
    (r1,) = results(tmp / "first.json")
    assert r1["status"] == "ok" and r1["cooldown_s"] >= HOLD_S - 1
    # once per model (before its first worker process), not once per process
    assert r1["processes"] == 3 and r1["cooldown_s"] < 2 * HOLD_S
    assert r3["status"] == "ok" and r3["cooldown_s"] < 1.0


def test_kill_9_holder_does_not_leave_a_stale_lock(box: Path) -> None:
    tmp = box.parent
    lock = tmp / "wd" / "lock"
    first = start(box, tmp / "first.json")
    holder = wait_for_holder(lock, first)
    # kill -9 the agent (its own session: pid == process group), then the controller (in this
    # order: a controller killed first closes the job's stdin and the job ends by itself,
    # releasing the lock: tests/test_orphan.py)
    os.killpg(holder["pid"], signal.SIGKILL)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    assert wait_dead([holder["pid"]], timeout=60)
    # the dead holder's info is still there: recovery comes from flock, not from cleanup
    assert json.loads((lock.parent / "lock.holder").read_text())["pid"] == holder["pid"]
    nxt = run(box, tmp / "next.json", "--cooldown-max-s", "0")
    assert nxt.returncode == 0, nxt.stderr
    (r,) = results(tmp / "next.json")
    assert r["status"] == "ok"
    assert lock.read_text() == ""  # the lock file is never written
    assert not (lock.parent / "lock.holder").exists()  # removed by the job that ended normally


# ------------------------------------------------------------------------------ agent alone

def events(out: bytes) -> List[Dict[str, Any]]:
    return [json.loads(ln) for ln in out.decode().splitlines() if ln.strip()]


def run_agent(job: Dict[str, Any]) -> tuple:
    p = subprocess.run([sys.executable, str(AGENT)], input=json.dumps(job).encode(),
                       capture_output=True, timeout=60)
    return p.returncode, events(p.stdout)


def test_agent_worker_keeps_the_lock_after_its_job_process_dies(tmp_path: Path) -> None:
    """The lock fd is inherited by the worker: while it is still timing, the device is busy even
    if the job process was killed; the message says so. Once the worker is gone, jobs run."""
    wd = tmp_path / "wd"
    pidfile = tmp_path / "worker.pid"
    slow = tmp_path / "slow_worker.py"
    slow.write_text(f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
                    "time.sleep(120)\n")
    job = {"proto": 1, "job_id": "J1", "python": [sys.executable, str(slow)],
           "workdir": str(wd), "controller": {"host": "ctl", "user": "alice"},
           "tasks": [{"id": "t0", "model": {"path": "m.tflite"}}]}
    p = subprocess.Popen([sys.executable, str(AGENT)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(json.dumps(job).encode())
    p.stdin.close()
    holder = wait_for_holder(wd / "lock")
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = int(pidfile.read_text())
    try:
        os.kill(p.pid, signal.SIGKILL)  # the job process only
        p.wait(10)
        rc, evs = run_agent({"proto": 1, "job_id": "J2", "workdir": str(wd), "tasks": []})
        assert rc == 3
        err = [e for e in evs if e["event"] == "error"][0]
        assert err["type"] == "DeviceBusy" and err["task"] is None
        assert err["message"].startswith(f"held by job J1 (pid {holder['pid']}, since ")
        assert "from controller alice@ctl" in err["message"]
        assert "exited but a worker" in err["message"]
        assert err["holder"]["job_id"] == "J1" and evs[-1]["event"] == "bye"
    finally:
        os.kill(worker, signal.SIGKILL)
    assert wait_dead([worker], timeout=60)  # the event itself, not a fixed sleep
    rc, evs = run_agent({"proto": 1, "job_id": "J3", "workdir": str(wd), "tasks": []})
    assert rc == 0 and [e["event"] for e in evs] == ["hello", "bye"]


def test_agent_lock_wait_gives_up_with_device_busy(tmp_path: Path) -> None:
    import fcntl
    wd = tmp_path / "wd"
    wd.mkdir()
    with open(wd / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another holder, no info written
        t0 = time.monotonic()
        rc, evs = run_agent({"proto": 1, "job_id": "J", "workdir": str(wd), "tasks": [],
                             "lock_wait_s": 1.0})
        waited = time.monotonic() - t0
    assert rc == 3 and waited >= 1.0
    prog = [e for e in evs if e["event"] == "progress"]
    assert prog and prog[0]["done"] == 0 and "waiting_for_lock" in prog[0]
    err = [e for e in evs if e["event"] == "error"][0]
    assert err["message"] == ("held by another process (no holder info in the lock file)"
                              " after waiting 1 s")


def test_bad_lock_wait_is_bad_job(tmp_path: Path) -> None:
    rc, evs = run_agent({"proto": 1, "workdir": str(tmp_path), "tasks": [], "lock_wait_s": -1})
    assert rc == 2 and [e for e in evs if e["event"] == "error"][0]["type"] == "BadJob"


def test_a_second_release_waits_for_the_first_to_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cause of a flaky test_orphan run (lock.holder left although the lock was free): the
    stdin watcher thread took the held lock and was still unlinking lock.holder when the main
    thread's release() returned at once and the process exited (the kernel freed the flock,
    the holder file stayed). A release() must return only once the lock is released."""
    import threading
    from edge_bench_agent import job, lock
    released: List[str] = []
    entered = threading.Event()

    def slow_release(fd: Optional[int], workdir: Optional[str] = None) -> None:
        entered.set()
        time.sleep(0.3)
        released.append(str(workdir))

    monkeypatch.setattr(lock, "release_lock", slow_release)
    held = job._HeldLock()
    held.set(7, "/wd")
    first = threading.Thread(target=held.release)
    first.start()
    assert entered.wait(5)
    held.release()              # the main thread: must not return before the holder is gone
    assert released == ["/wd"]
    first.join(5)
    assert released == ["/wd"]  # released exactly once
