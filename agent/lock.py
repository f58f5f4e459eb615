"""The device lock: an exclusive flock on <workdir>/lock, its holder named in
<workdir>/lock.holder (docs/protocol.md "Device lock").

The lock file is opened with O_NOFOLLOW and must be a regular file of this user with one link:
a symlink or hard link planted there (a shared board, a workdir under /tmp) is refused, never
followed. The lock file's bytes are never written or truncated; the holder info goes to a temp
file renamed over lock.holder, which replaces a planted symlink instead of writing through it.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import time
from typing import Any, Callable, Dict, Optional

try:
    import fcntl
except ImportError:  # not on POSIX: the device lock is skipped (logged)
    fcntl = None  # type: ignore[assignment]

from .facts import _read
from .output import log
from .protocol import DEVICE_BUSY, LOCK_HOLDER_NAME, LOCK_NAME, AgentError, describe_holder
from .safepath import safe_workdir


def read_lock_holder(path: str, tries: int = 10) -> Optional[Dict[str, Any]]:
    """The holder info of the lock at `path` (from lock.holder beside it; retried briefly: the
    holder writes it just after taking the lock); None when there is none."""
    holder = os.path.join(os.path.dirname(path), LOCK_HOLDER_NAME)
    for i in range(tries):
        if not os.path.islink(holder):
            text = _read(holder, 8192)
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


def check_workdir(workdir: str) -> str:
    """The workdir as a real absolute path, made 0700 where missing; AgentError UnsafeWorkdir
    when another user could change what is in it (safepath.safe_workdir: another user's
    directory or symlink on the way, a directory others may write to)."""
    return safe_workdir(workdir)


def _open_lock(path: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            raise AgentError("UnsafeWorkdir", "the device lock %s is a symlink; refusing to"
                             " follow it (someone planted it? remove it: rm %s)" % (path, path))
        raise AgentError("InternalError", "cannot open the device lock %s: %s (another login "
                         "user's workdir? give each user its own workdir)" % (path, e))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
        os.close(fd)
        raise AgentError("UnsafeWorkdir", "the device lock %s is not a plain file of this user"
                         " (%s, %d links, uid %d); refusing to use it (remove it: rm %s)"
                         % (path, "regular" if stat.S_ISREG(st.st_mode) else "special",
                            st.st_nlink, st.st_uid, path))
    return fd


def _write_holder(workdir: str, holder: Dict[str, Any]) -> None:
    path = os.path.join(workdir, LOCK_HOLDER_NAME)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o644)
        try:
            os.write(fd, (json.dumps(holder, sort_keys=True) + "\n").encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:  # the holder info is a courtesy: the flock is the lock
        log("cannot write %s: %s" % (path, e))
        try:
            os.unlink(tmp)
        except OSError:
            pass


def acquire_lock(workdir: str, holder: Dict[str, Any], wait_s: float = 0.0,
                 on_wait: Optional[Callable[[Optional[Dict[str, Any]], float], None]] = None,
                 poll_s: float = 0.2, note_every_s: float = 10.0) -> Optional[int]:
    """Take the exclusive flock on <workdir>/lock (waiting up to wait_s) and name `holder` in
    lock.holder; the fd, or AgentError DeviceBusy naming the holder. The kernel drops the lock
    when every process holding the fd is gone, so a dead holder never leaves a stale lock."""
    if fcntl is None:
        log("no fcntl on this platform: running without the device lock")
        return None
    workdir = check_workdir(workdir)
    path = os.path.join(workdir, LOCK_NAME)
    fd = _open_lock(path)
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
            raise AgentError(DEVICE_BUSY, describe_holder(current, exited) + waited,
                             {"holder": current, "lock_path": path})
        if on_wait is not None and now >= next_note:
            on_wait(read_lock_holder(path), left)
            next_note = now + note_every_s
        time.sleep(min(poll_s, left))
    _write_holder(workdir, holder)
    return fd


def release_lock(fd: Optional[int], workdir: Optional[str] = None) -> None:
    """Remove the holder info (while still holding the lock) and drop the lock."""
    if fd is None:
        return
    if workdir is not None:
        try:
            os.unlink(os.path.join(os.path.abspath(os.path.expanduser(workdir)),
                                   LOCK_HOLDER_NAME))
        except OSError:
            pass
    try:
        os.close(fd)
    except OSError:
        pass
