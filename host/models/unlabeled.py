"""Accuracy without labels: inputs on which every variant is compared with the fp32 baseline.

Most models from the wild come without a labelled eval set. Every variant still reports how far
its outputs moved from the fp32 baseline (per output tensor: SNR in dB, cosine similarity, max
abs error; see accuracy.py), on, in this order of preference:

1. the user's `--eval FILE` (labels optional);
2. the first `EVAL_SAMPLES` samples of the user's `--calibration FILE`;
3. `EVAL_SAMPLES` seeded random inputs (the agent's random-input rule: floats uniform in
   [-1, 1), small integer types over their range, int32/int64 in [0, 100) as token ids or
   lengths, bools 0/1; dynamic (-1) dims become 1).

The derived inputs are written once to `$EDGE_BENCH_CACHE/eval/<sha256>.npz` (content-addressed)
and pushed like a user's eval file, so the device runs them through each variant and the host
scores the outputs against the fp32 model it runs itself.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import ModelError
from ..hashing import sha256_file

EVAL_SAMPLES = 4
SEED = 0


def random_inputs(model_path: Path, n: int = EVAL_SAMPLES, seed: int = SEED,
                  signature: Optional[str] = None) -> Dict[str, np.ndarray]:
    """{input name: [n, *sample shape]} of seeded random data (the agent's rule)."""
    from .modelinfo import model_inputs
    from .quantize import random_calibration
    try:
        return random_calibration(model_inputs(model_path, signature), n, seed)
    except ModelError as e:
        raise ModelError(f"{Path(model_path).name}: {e}") from e


def derived_inputs(model_path: Path, calibration: Optional[str],
                   signature: Optional[str] = None) -> Tuple[Dict[str, np.ndarray], str]:
    """(inputs, where they came from): calibration samples when a calibration file is given,
    else seeded random inputs."""
    from .quantize import RANDOM, load_calibration

    if calibration and str(calibration) != RANDOM:
        arrays = load_calibration(calibration, model_path, signature)
        arrays = {k: v[:EVAL_SAMPLES] for k, v in arrays.items()}
        n = len(next(iter(arrays.values())))
        from .imagedata import display_name
        return arrays, f"calibration ({n} samples of {display_name(calibration)})"
    return random_inputs(model_path, signature=signature), f"random inputs ({EVAL_SAMPLES} samples, seed {SEED})"


def write_npz(arrays: Dict[str, np.ndarray], cache_dir: Optional[Path] = None) -> Tuple[Path, str]:
    """Save `arrays` under a name derived from their content; returns (path, file sha256)."""
    from .quantcache import default_cache_dir, write_atomic

    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    base = cache_dir or default_cache_dir().parent / "eval"
    path = base / f"{h.hexdigest()[:24]}.npz"
    if not path.is_file():
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_atomic(path, buf.getvalue())
    return path, sha256_file(path)
