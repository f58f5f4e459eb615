"""Limits for the data files a user hands to edge-bench (--eval, --calibration): checked before
numpy reads them, so a huge file or a small .npz that inflates to gigabytes (a "zip bomb") is one
clear error instead of a host that runs out of memory."""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path

from ..errors import UsageError

#: largest --eval / --calibration data, on disk and once decompressed (a calibration set of
#: 500 224x224x3 float32 images is 300 MB)
MAX_DATA_BYTES = 2 << 30


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB"


def check_data_file(path: Path, what: str, limit: int = MAX_DATA_BYTES) -> None:
    """Raise UsageError when `path` (a .npy, .npz or other file) holds more than `limit` bytes,
    on disk or, for a .npz (a zip archive), decompressed."""
    try:
        st = path.stat()
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot read: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read forever
        raise UsageError(f"{what} {path} is not a regular file (a FIFO, device or socket?)",
                         hint="pass a .npz/.npy file")
    size = st.st_size
    if size > limit:
        raise UsageError(f"{what} {path} is {_mb(size)}; at most {_mb(limit)}",
                         hint="use fewer samples (a few hundred are enough)")
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            total = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UsageError(f"{what} {path}: not a readable .npz file ({e})") from e
    if total > limit:
        raise UsageError(f"{what} {path} holds {_mb(total)} once decompressed; at most"
                         f" {_mb(limit)}", hint="use fewer samples (a few hundred are enough)")
