"""Statistics on raw latency samples. All statistics live on the host, never in the agent."""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

PERCENTILES = (90, 95, 99)
#: bootstrap_median_ci resamples up to this many samples; above it uses the exact limit
BOOTSTRAP_RESAMPLE_MAX = 500


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
    """Percentile-bootstrap confidence interval of the median.

    Up to BOOTSTRAP_RESAMPLE_MAX samples: resampled n_boot times. Above that, the limit that
    resampling converges to, computed directly: the number of resampled values at or below the
    k-th smallest sample is Binomial(n, k/n), so the bootstrap median's quantiles are the order
    statistics of rank n/2 -/+ z*sqrt(n)/2 (normal approximation, exact enough for n > 500).
    Same interval, O(n) instead of O(n_boot * n): resampling 10000 samples 2000 times cost the
    controller ~0.3 s of CPU and 160 MB per result."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size < 2:
        return (None, None)
    n = int(a.size)
    if n > BOOTSTRAP_RESAMPLE_MAX:
        from statistics import NormalDist
        z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
        half = z * math.sqrt(n) / 2
        r = n // 2 + 1 - 0.5          # resampled median <= x_(k) iff Bin(n, k/n) >= n//2 + 1
        j = min(n - 1, max(0, int(math.ceil(r - half)) - 1))    # 0-based ranks
        k = min(n - 1, max(0, int(math.ceil(r + half)) - 1))
        part = np.partition(a, (j, k))
        return (float(part[j]), float(part[k]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    meds = np.median(a[idx], axis=1)
    lo = (1 - confidence) / 2
    return (float(np.quantile(meds, lo)), float(np.quantile(meds, 1 - lo)))


def finite_or_none(x: Optional[float]) -> Optional[float]:
    return x if x is not None and math.isfinite(x) else None


# --- autocorrelation-aware comparison helpers (used by edge_bench.compare) -------------------
#
# Latency samples of one run are a time series, not independent draws: CPU frequency, thermal
# state, cache and page-cache effects and other load make neighbouring samples alike (drift).
# A test that treats thousands of such samples as independent is wildly over-confident. The
# helpers below cut a series into contiguous blocks longer than its correlation time ("batch
# means", standard in simulation output analysis), summarize each block by its median, and run
# the tests and the bootstrap on block medians, which are close to independent.

MIN_BLOCKS = 8
MAX_BLOCKS = 50


def autocorr_time(samples: Sequence[float], max_lag: Optional[int] = None) -> float:
    """Integrated autocorrelation time of a series (1.0 = independent), on ranks for robustness.

    Sums the autocorrelation function from lag 1 until it first drops below zero
    (initial-positive-sequence style truncation). Returns tau = 1 + 2 * sum(rho_k).
    """
    a = np.asarray(samples, dtype=np.float64)
    n = a.size
    if n < 8:
        return 1.0
    r = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    r -= r.mean()
    var = float(np.dot(r, r))
    if var <= 0:
        return 1.0
    max_lag = min(max_lag or n // 4, n - 1)
    # autocorrelation by FFT (O(n log n); n can be 100k for a microsecond model)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(r, size)
    acf = np.fft.irfft(f * np.conj(f), size)[: max_lag + 1] / var
    tau = 1.0
    for k in range(1, max_lag + 1):
        if acf[k] <= 0:
            break
        tau += 2.0 * float(acf[k])
    return max(1.0, tau)


def block_size(samples: Sequence[float]) -> int:
    """Block length for `block_medians`: >= 2x the autocorrelation time, at most MAX_BLOCKS
    blocks, at least MIN_BLOCKS blocks when there are enough samples."""
    n = len(samples)
    if n < 2 * MIN_BLOCKS:
        return 1
    tau = autocorr_time(samples)
    b = max(1 if tau < 1.5 else int(np.ceil(2.0 * tau)), int(np.ceil(n / MAX_BLOCKS)))
    return int(min(b, n // MIN_BLOCKS))


def block_medians(samples: Sequence[float], size: Optional[int] = None) -> np.ndarray:
    """Medians of contiguous blocks of the series, in time order (the tail remainder is spread
    over the blocks, so no sample is dropped)."""
    return block_quantiles(samples, 0.5, size)


def block_quantiles(samples: Sequence[float], q: float = 0.5, size: Optional[int] = None) -> np.ndarray:
    """The q-quantile of each contiguous block of the series (q=0.5: `block_medians`)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        return a
    b = block_size(a) if size is None else max(1, int(size))
    if b <= 1:
        return a.copy()
    k = max(1, a.size // b)
    if q == 0.5:
        return np.array([np.median(chunk) for chunk in np.array_split(a, k)], dtype=np.float64)
    return np.array([np.quantile(chunk, q) for chunk in np.array_split(a, k)], dtype=np.float64)


def ratio_of_medians_ci(base_ms: Sequence[float], cand_ms: Sequence[float],
                        confidence: float = 0.95, n_boot: int = 4000,
                        seed: int = 0, q: float = 0.5) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """(ratio, lo, hi): cand median / base median with a block-bootstrap confidence interval.

    The ratio is of the plain sample medians; the interval comes from resampling block medians
    of each run independently (so it widens when a run drifts) and is centred on that ratio.
    With q != 0.5 the same for another quantile (q=0.25: the fast quartile): ratio of the
    sample q-quantiles, interval from the blocks' q-quantiles.
    """
    a = np.asarray(base_ms, dtype=np.float64)
    b = np.asarray(cand_ms, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return (None, None, None)
    ma, mb = float(np.quantile(a, q)), float(np.quantile(b, q))
    if ma <= 0:
        return (None, None, None)
    ratio = mb / ma
    ba, bb = block_quantiles(a, q), block_quantiles(b, q)
    if ba.size < 2 or bb.size < 2 or mb <= 0:
        return (ratio, None, None)
    rng = np.random.default_rng(seed)
    mba = np.median(ba[rng.integers(0, ba.size, size=(n_boot, ba.size))], axis=1)
    mbb = np.median(bb[rng.integers(0, bb.size, size=(n_boot, bb.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logr = np.log(mbb) - np.log(mba)
    logr = logr[np.isfinite(logr)]
    if logr.size == 0:
        return (ratio, None, None)
    centre = float(np.log(np.median(bb)) - np.log(np.median(ba)))
    q = (1 - confidence) / 2
    lo, hi = np.quantile(logr, [q, 1 - q])
    shift = np.log(ratio) - centre
    return (ratio, float(np.exp(lo + shift)), float(np.exp(hi + shift)))


def block_mannwhitney(base_ms: Sequence[float], cand_ms: Sequence[float],
                      q: float = 0.5) -> Optional[float]:
    """Two-sided Mann-Whitney U p-value on the block medians (q=0.5) or other block quantiles
    of two runs (None if too few)."""
    ba, bb = block_quantiles(base_ms, q), block_quantiles(cand_ms, q)
    if ba.size < 3 or bb.size < 3:
        return None
    from scipy.stats import mannwhitneyu
    if np.ptp(np.concatenate([ba, bb])) == 0:
        return 1.0
    return float(mannwhitneyu(bb, ba, alternative="two-sided").pvalue)
