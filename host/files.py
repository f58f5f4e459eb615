"""Files the user asked for (quantized models, --json, --csv, --html) get the mode a plain
`open()` would give them: 0666 minus the user's umask. They are written to a temp file
(mkstemp: always 0600) and renamed into place, so the mode is set before the rename."""
from __future__ import annotations

import os
from typing import Optional

_MODE: Optional[int] = None


def user_file_mode() -> int:
    """0666 & ~umask. Read from /proc (Linux) without touching the process umask; elsewhere
    set and restored once (os.umask is the only getter) and remembered."""
    global _MODE
    if _MODE is None:
        mask = None
        try:
            with open("/proc/self/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("Umask:"):
                        mask = int(line.split()[1], 8)
                        break
        except (OSError, ValueError, IndexError):
            mask = None
        if mask is None:
            mask = os.umask(0o022)
            os.umask(mask)
        _MODE = 0o666 & ~mask
    return _MODE


def chmod_for_user(fd: int) -> None:
    """Give a temp file (open as `fd`) the mode of a file the user created."""
    os.fchmod(fd, user_file_mode())
