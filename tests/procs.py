"""Process helpers shared by the tests that check nothing is left running."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterable, List


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (zombies are dead but maybe not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_dead(pids: Iterable[int], timeout: float = 10.0) -> bool:
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def pids_with(text: str) -> List[int]:
    """Live processes (not this one) whose command line, arguments joined by spaces, contains
    `text`."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmd and alive(int(d.name)):
            out.append(int(d.name))
    return out


def kill_all(pids: Iterable[int]) -> None:
    """SIGKILL each of `pids` that still exists (a test's clean-up of its own processes)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
