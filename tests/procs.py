"""Process helpers shared by the tests that check nothing is left running."""
from __future__ import annotations

import time
from typing import Iterable


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
