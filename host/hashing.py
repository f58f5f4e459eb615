"""sha256 of files, cached by (path, size, mtime) so big models are hashed once per change."""
from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from pathlib import Path
from typing import Dict, Tuple

_cache: Dict[Tuple[str, int, int], str] = {}
_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    """sha256 of a regular file; OSError for anything else (a FIFO would block the read forever,
    a device never end)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or socket?)", str(path))
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _cache.get(key)
    if hit:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _lock:
        _cache[key] = digest
    return digest


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
