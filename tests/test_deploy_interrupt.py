"""Ctrl-C / SIGTERM during `edge-bench deploy`: every device stops at once. A running bootstrap
(minutes of pip on a real board) is killed on the device instead of being waited for, a wait
between connection attempts ends, and the report says what each device got to (exit 130 for
SIGINT, 143 for SIGTERM, as `run`). Real local and SSH devices (an OpenSSH sshd in its own
network namespace, tests/netns.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List

import pytest

#: the bootstrap would run this long: a deploy that waited for it fails the test's timeout
SCRIPT_SECONDS = 300


def start_deploy(cfg: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("EDGE_BENCH_CONFIG", None)
    return subprocess.Popen([sys.executable, "-m", "edge_bench.cli", "deploy", "--config", str(cfg),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=str(cfg.parent))


def read_until(proc: subprocess.Popen, needle: str) -> List[str]:
    """stdout lines up to and including the first that holds `needle` (the event itself)."""
    assert proc.stdout is not None
    seen: List[str] = []
    for line in proc.stdout:
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"deploy ended before {needle!r}:\n{''.join(seen)}{proc.stderr.read()}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie nobody reaped yet is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def gone_within(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


@pytest.mark.parametrize("kind,sig,code", [("local", signal.SIGINT, 130),
                                           ("ssh", signal.SIGTERM, 143)])
def test_signal_kills_a_running_bootstrap_and_reports_it(tmp_path: Path, make_fleet: Any,
                                                         kind: str, sig: int, code: int) -> None:
    pidfile = tmp_path / "sleep.pid"
    script = tmp_path / "slow_bootstrap.sh"
    script.write_text(f"echo 'bootstrap: installing'\nsleep {SCRIPT_SECONDS} &\n"
                      f"echo $! > {pidfile}\necho 'bootstrap: started'\nwait\n"
                      "echo 'bootstrap: done'\n")
    cfg = tmp_path / "devices.yaml"
    if kind == "local":
        cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n"
                       f"    workdir: {tmp_path / 'wd'}\n    bootstrap: {script}\n")
    else:
        fleet = make_fleet(1, names=["box"])
        fleet.write_yaml(cfg, per_device={"box": {"bootstrap": str(script)}})
    proc = start_deploy(cfg, "--devices", "box", "--bootstrap")
    try:
        before = read_until(proc, "[box] bootstrap: started")
        sleeper = int(pidfile.read_text())
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)    # far less than the script's 300 s
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(before) + out
    assert proc.returncode == code, out + err
    assert "edge-bench: interrupted" in err and "Traceback" not in err, err
    assert gone_within(sleeper, 15), "the bootstrap's child still runs on the device"
    assert "[box] bootstrap: done" not in out
    assert "box: bootstrap slow_bootstrap.sh: stopped after" in out, out
    assert "box: interrupted: stopped before it finished (run deploy again to finish it)" in out
    assert "box: NOT ready" in out


def test_signal_ends_the_wait_between_connection_attempts(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(2, names=["up", "down"])
    fleet[1].sshd.stop()                                  # connection refused, retried
    cfg = fleet.write_yaml(tmp_path / "devices.yaml",
                           per_device={"down": {"retries": 3, "retry_backoff_s": 600}})
    proc = start_deploy(cfg, "--devices", "up,down")
    try:
        before = read_until(proc, "retrying in 600 s")   # its first refusal, then the long wait
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)    # far less than the 600 s backoff
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(before) + out
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err, err
    assert "[down] connection refused by" in out and "(attempt 2 of 4)" in out, out
    assert "down: interrupted: stopped before it finished" in out, out
    assert "down: NOT ready" in out
