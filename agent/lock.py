"""The device lock: an exclusive flock on <workdir>/lock naming its holder (docs/protocol.md)."""
from __future__ import annotations

import errno
import json
import os
import time
from typing import Any, Callable, Dict, Optional

try:
    import fcntl
except ImportError:  # not on POSIX: the device lock is skipped (logged)
    fcntl = None  # type: ignore[assignment]

from .facts import _read
from .output import log
from .protocol import LOCK_NAME, AgentError, describe_holder


def read_lock_holder(path: str, tries: int = 10) -> Optional[Dict[str, Any]]:
    """The holder info in a lock file (retried briefly: the holder writes it just after
    taking the lock); None when unreadable."""
    for i in range(tries):
        text = _read(path, 8192)
        if text and text.strip():
            try:
                data = json.loads(text)
                if isinstance(data, dict):
                    return data
            except ValueError:
                pass
        if i + 1 < tries:
            time.sleep(0.02)
    return None


def _pid_alive(pid: Any) -> Optional[bool]:
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: exists, another user's
        return True


def acquire_lock(workdir: str, holder: Dict[str, Any], wait_s: float = 0.0,
                 on_wait: Optional[Callable[[Optional[Dict[str, Any]], float], None]] = None,
                 poll_s: float = 0.2, note_every_s: float = 10.0) -> Optional[int]:
    """Take the exclusive flock on <workdir>/lock (waiting up to wait_s) and write `holder`
    into it; the fd, or AgentError DeviceBusy naming the holder. The kernel drops the lock
    when every process holding the fd is gone, so a dead holder never leaves a stale lock."""
    if fcntl is None:
        log("no fcntl on this platform: running without the device lock")
        return None
    path = os.path.join(workdir, LOCK_NAME)
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    except OSError as e:
        raise AgentError("InternalError", "cannot open the device lock %s: %s (another login "
                         "user's workdir? give each user its own workdir)" % (path, e))
    start = time.monotonic()
    next_note = start
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise AgentError("InternalError", "cannot lock %s: %s" % (path, e))
        now = time.monotonic()
        left = start + wait_s - now
        if left <= 0:
            current = read_lock_holder(path)
            os.close(fd)
            waited = " after waiting %.0f s" % wait_s if wait_s else ""
            exited = isinstance(current, dict) and _pid_alive(current.get("pid")) is False
            raise AgentError("DeviceBusy", describe_holder(current, exited) + waited,
                             {"holder": current, "lock_path": path})
        if on_wait is not None and now >= next_note:
            on_wait(read_lock_holder(path), left)
            next_note = now + note_every_s
        time.sleep(min(poll_s, left))
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(holder, sort_keys=True) + "\n").encode("utf-8"))
    return fd


def release_lock(fd: Optional[int]) -> None:
    if fd is None:
        return
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass
