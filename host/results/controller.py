"""Who is making a run (host, pid, process start time) and whether that process still lives:
a run whose controller is gone is marked `abandoned` (store.py)."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional


def controller_id() -> Dict[str, Any]:
    """Who is making a run: host name, pid and the process's start time (so a reused pid is
    not taken for the controller)."""
    import platform
    return {"node": platform.node(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def _process_start(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]       # field 22: starttime in clock ticks


def controller_alive(ctl: Dict[str, Any]) -> Optional[bool]:
    """True/False for a controller on this host, None when it ran elsewhere (unknown)."""
    import platform
    if not isinstance(ctl, dict) or ctl.get("node") != platform.node():
        return None
    try:
        pid = int(ctl.get("pid"))
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        return None if not isinstance(ctl.get("pid"), int) else True
    start = ctl.get("start")
    return start is None or _process_start(pid) in (None, start)
