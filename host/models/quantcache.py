"""The cache of made variants, shared by both quantizers.

`$EDGE_BENCH_CACHE/quantized/...` (default ~/.cache/edge-bench/quantized): each file next to a
.json sidecar with its size, sha256 and recipe (a hit is served only when the file's size AND
sha256 match the sidecar; anything else is rebuilt); a file is written under a temp name and renamed,
so parallel runs never see a half-written model. Each quantizer builds its own key (quantize.py:
model sha256, variant, calibration sha256, ai-edge-quantizer version; tf_convert.py: the same
with TensorFlow's version).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict

from ..files import chmod_for_user
from ..hashing import sha256_file
from .variants import QuantizeResult


def default_cache_dir() -> Path:
    root = os.environ.get("EDGE_BENCH_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "edge-bench"
    return base / "quantized"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        chmod_for_user(fd)  # a quantized model is the user's file: their umask, not 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cache_get_or_make(out: Path, make: Callable[[str], QuantizeResult],
                      meta_fields: Dict[str, Any]) -> QuantizeResult:
    """The cached file `out` (its size and sha256 checked against its .json sidecar) or `make(tmp_path)` written to a
    temp name and renamed, so parallel runs never see a half-written model. Shared by both
    quantizers (ai-edge-quantizer here, TensorFlow's converter in tf_convert)."""
    meta = out.with_suffix(".json")
    variant = str(meta_fields["variant"])
    if out.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            # size first (cheap), then the bytes themselves: a cached file corrupted in place
            # (same size) would otherwise be benchmarked and scored as the variant
            if info.get("bytes") == out.stat().st_size:
                if sha256_file(out) == info["sha256"]:
                    return QuantizeResult(variant, out, info["bytes"], info["sha256"],
                                          info["recipe_description"], True, info.get("recipe"))
                print(f"edge-bench: warning: cached {out} does not match its sha256 (corrupted);"
                      " making it again", file=sys.stderr)
        except (ValueError, KeyError, OSError, TypeError, AttributeError):
            pass  # a broken entry is simply rebuilt
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".tflite", dir=out.parent)
    os.close(fd)
    try:
        res = make(tmp)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    res = res._replace(path=out)
    write_atomic(meta, json.dumps({
        **meta_fields, "bytes": res.bytes, "sha256": res.sha256,
        "recipe_description": res.recipe_description,
        **({"recipe": res.recipe} if res.recipe is not None else {})}, indent=1).encode())
    return res
