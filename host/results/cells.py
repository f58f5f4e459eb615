"""Reading the cells of a results store without trusting them: a store is a file anyone with
write access can edit (or a disk can damage), so every JSON cell, samples blob and number is
checked here when it is read. A bad cell is one StoreError naming the run, the row and the
column (exit 2), never a traceback (malformed or 100,000-deep JSON, an odd-length blob, text
where a number belongs)."""
from __future__ import annotations

import json
import math
from typing import Any, List, Optional

import numpy as np

from ..errors import StoreError

_HINT = "the store was edited or damaged: restore it from a backup, or delete that row"
_KINDS = {dict: "object", list: "array"}


def json_cell(value: Any, kind: type, where: str) -> Any:
    """The JSON text `value` decoded, which must be a `kind` (dict or list); empty: an empty one."""
    if value is None or value == "":
        return kind()
    try:
        got = json.loads(value)
    except (ValueError, TypeError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else "not valid JSON"
        raise StoreError(f"{where} is {why}", hint=_HINT) from None
    if not isinstance(got, kind):
        raise StoreError(f"{where} is a JSON {type(got).__name__}, expected an {_KINDS[kind]}",
                         hint=_HINT)
    return got


def samples_cell(blob: Any, where: str) -> List[float]:
    """A samples blob: little-endian float64s."""
    if not blob:
        return []
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) % 8:
        size = len(blob) if isinstance(blob, (bytes, bytearray, memoryview, str)) else "?"
        raise StoreError(f"{where} is {size} bytes, not a whole number of 8-byte samples",
                         hint=_HINT)
    return np.frombuffer(bytes(blob), dtype="<f8").tolist()


def number_cell(value: Any, where: str) -> Optional[float]:
    """A REAL cell (SQLite keeps whatever was written): a finite number or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StoreError(f"{where} is {str(value)[:40]!r}, not a number", hint=_HINT)
    return float(value)
