"""Where the SQLite results store is and how long a write waits for another process's lock
(both from the environment); store.py uses them."""
from __future__ import annotations

import os
from pathlib import Path


def default_db_path() -> Path:
    """EDGE_BENCH_DB, else $XDG_DATA_HOME/edge-bench/results.sqlite (~/.local/share by default)."""
    env = os.environ.get("EDGE_BENCH_DB")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "edge-bench" / "results.sqlite"


#: how long a write waits for another process's lock on the SQLite store before it gives up
#: (the result is then kept for the end of the run, see app/run.py StoreWriter)
DEFAULT_BUSY_TIMEOUT_S = 30.0


def busy_timeout_s() -> float:
    """$EDGE_BENCH_DB_BUSY_S (seconds, 0 < x <= 3600), else DEFAULT_BUSY_TIMEOUT_S."""
    raw = os.environ.get("EDGE_BENCH_DB_BUSY_S")
    if raw is None or not raw.strip():
        return DEFAULT_BUSY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (0 < value <= 3600):    # NaN fails too
        from ..errors import UsageError
        raise UsageError(f"EDGE_BENCH_DB_BUSY_S={raw!r} is not a number of seconds in (0, 3600]",
                         hint="unset it (default 30) or give e.g. EDGE_BENCH_DB_BUSY_S=10")
    return value
