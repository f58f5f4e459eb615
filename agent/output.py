"""The protocol stream: protocol lines on the real stdout, everything else on stderr."""
from __future__ import annotations

import json
import os
import sys
from typing import IO, Any, Dict, Optional

try:
    import numpy as np
except Exception:  # noqa: BLE001 - reported in hello / as NoRuntime, never a bare traceback
    np = None  # type: ignore[assignment]

from .protocol import message

_OUT: Optional[IO[str]] = None


def protect_stdout() -> None:
    """Keep the real stdout for protocol lines only; send fd 1 (Python and C prints) to stderr."""
    global _OUT
    if _OUT is not None:
        return
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001
        pass
    try:
        fd = os.dup(1)
        os.dup2(2, 1)
        _OUT = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
    except OSError:
        _OUT = sys.stdout
    sys.stdout = sys.stderr


def _json_default(o: Any) -> Any:
    if np is not None:
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    return str(o)


def write_line(msg: Dict[str, Any]) -> None:
    """Write one protocol object as a line on the protocol stream and flush it."""
    write_raw(json.dumps(msg, separators=(",", ":"), default=_json_default) + "\n")


def write_raw(line: str) -> None:
    out = _OUT if _OUT is not None else sys.stdout
    out.write(line)
    out.flush()


def emit(event: str, **fields: Any) -> None:
    write_line(message(event, **fields))


def emit_error(task: Optional[str], type_: str, message: str,
               tb: Optional[str] = None, **extra: Any) -> None:
    emit("error", task=task, type=type_, message=message, traceback=tb, **extra)


def log(text: str) -> None:
    try:
        sys.stderr.write("edge-bench-agent: " + text + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
