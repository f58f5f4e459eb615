"""Statistics on raw latency samples. All statistics live on the host, never in the agent."""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

PERCENTILES = (90, 95, 99)


def summarize(samples_ms: Sequence[float]) -> Dict[str, Optional[float]]:
    """mean, std, min, median, p90, p95, p99, max, cov (std/mean) of latency samples in ms."""
    keys = ["mean", "std", "min", "median"] + [f"p{p}" for p in PERCENTILES] + ["max", "cov"]
    if len(samples_ms) == 0:
        return {k: None for k in keys}
    a = np.asarray(samples_ms, dtype=np.float64)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    out: Dict[str, Optional[float]] = {
        "mean": mean, "std": std, "min": float(a.min()), "median": float(np.median(a)),
    }
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(a, p))
    out["max"] = float(a.max())
    out["cov"] = std / mean if mean > 0 else None
    return out


def bootstrap_median_ci(samples_ms: Sequence[float], confidence: float = 0.95,
                        n_boot: int = 2000, seed: int = 0) -> Tuple[Optional[float], Optional[float]]:
    """Percentile-bootstrap confidence interval of the median."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size < 2:
        return (None, None)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    meds = np.median(a[idx], axis=1)
    lo = (1 - confidence) / 2
    return (float(np.quantile(meds, lo)), float(np.quantile(meds, 1 - lo)))


def finite_or_none(x: Optional[float]) -> Optional[float]:
    return x if x is not None and math.isfinite(x) else None
