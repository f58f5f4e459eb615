"""Statistics on raw latency samples. All statistics live on the host, never in the agent."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

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


def iqr_over_median(samples: Sequence[float]) -> Optional[float]:
    """The robust spread: interquartile range over the median (None under 4 samples). CoV
    (std / mean) is ruled by a single outlier (2000% for a steady 1.5 µs model with one stall in
    10,000 samples); this is not. Shown beside or instead of CoV wherever a spread is shown."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size < 4:
        return None
    q1, med, q3 = (float(v) for v in np.percentile(s, [25, 50, 75]))
    return (q3 - q1) / med if med > 0 else None


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


# --- autocorrelation-aware comparison helpers (used by edge_bench.analysis.verdict) -------------------
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
    return quantile_ratio_ci([np.asarray(base_ms, dtype=np.float64)],
                             [np.asarray(cand_ms, dtype=np.float64)],
                             q=q, confidence=confidence, n_boot=n_boot, seed=seed)


def block_mannwhitney(base_ms: Sequence[float], cand_ms: Sequence[float],
                      q: float = 0.5) -> Optional[float]:
    """Two-sided Mann-Whitney U p-value on the block medians (q=0.5) or other block quantiles
    of two runs (None if too few)."""
    return mannwhitney_blocks([block_quantiles(base_ms, q)], [block_quantiles(cand_ms, q)])


# --- several worker processes per result ---------------------------------------------------
#
# A fresh process can land at its own level for ALL of its samples (memory layout and page
# alignment, the core it is scheduled on): measured here, 2-3% of processes ran 4-18% slower
# than their siblings (docs/benchmarks.md), and always slower, never faster. No statistic of one
# process's samples can see that, so results are timed in several processes (`process_runs`
# says how many samples each gave). The fast quartile of all their samples pooled then comes
# from the processes that were not unlucky (`quantile_ratio_ci`). Blocks never span two
# processes.


def split_processes(samples: Sequence[float], process_runs: Optional[Sequence[int]]
                    ) -> List[np.ndarray]:
    """The samples of each worker process (in order); one group when `process_runs` is missing
    or does not add up to the number of samples (older results). Non-finite values dropped."""
    a = np.asarray(samples, dtype=np.float64)
    counts = [int(c) for c in process_runs or []]
    if len(counts) < 2 or sum(counts) != a.size or min(counts) < 0:
        groups = [a]
    else:
        groups = np.split(a, np.cumsum(counts)[:-1])
    groups = [g[np.isfinite(g)] for g in groups]
    return [g for g in groups if g.size] or [a[np.isfinite(a)]]


def process_quantiles(groups: Sequence[np.ndarray], q: float = 0.5) -> np.ndarray:
    """The q-quantile of each process's samples."""
    return np.array([float(np.quantile(g, q)) for g in groups if g.size], dtype=np.float64)


def process_blocks(groups: Sequence[np.ndarray], q: float = 0.5) -> List[np.ndarray]:
    """`block_quantiles` of each process (no block spans two processes)."""
    return [block_quantiles(g, q) for g in groups if g.size]


def _concat(blocks: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(blocks) if len(blocks) else np.zeros(0)


def _boot_blocks(blocks: Sequence[np.ndarray], n_boot: int,
                 rng: np.random.Generator) -> Tuple[np.ndarray, float]:
    """Bootstrap replicates of the median of the blocks' quantiles, blocks resampled within
    each process (stratified), and the same statistic on the blocks as they are."""
    allb = _concat(blocks)
    idx, off = [], 0
    for b in blocks:
        idx.append(off + rng.integers(0, b.size, size=(n_boot, b.size)))
        off += b.size
    return np.median(allb[np.hstack(idx)], axis=1), float(np.median(allb))


def quantile_ratio_ci(base: Sequence[np.ndarray], cand: Sequence[np.ndarray], q: float = 0.5,
                      confidence: float = 0.95, n_boot: int = 4000, seed: int = 0,
                      blocks: Optional[Tuple[List[np.ndarray], List[np.ndarray]]] = None
                      ) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """(ratio, lo, hi): the q-quantile of all the candidate's samples / that of the baseline's
    (each given as a list of per-process sample arrays), with a block-bootstrap interval:
    blocks are cut and resampled within each process, and the interval is centred on the
    plain ratio. Pooling is what makes an unlucky process harmless: it runs SLOWER for all its
    samples, so it hardly reaches the pooled fast quartile (one of three processes offset moves
    the pooled p25 to about the others' p37.5; two of three to about their p75).
    `blocks`: the two sides' `process_blocks(..., q)` when the caller has them already."""
    a = _concat([np.asarray(g, dtype=np.float64) for g in base])
    b = _concat([np.asarray(g, dtype=np.float64) for g in cand])
    if a.size == 0 or b.size == 0:
        return (None, None, None)
    ma, mb = float(np.quantile(a, q)), float(np.quantile(b, q))
    if ma <= 0:
        return (None, None, None)
    ratio = mb / ma
    qa, qb = blocks if blocks is not None else (process_blocks(base, q), process_blocks(cand, q))
    if sum(x.size for x in qa) < 2 or sum(x.size for x in qb) < 2 or mb <= 0:
        return (ratio, None, None)
    rng = np.random.default_rng(seed)
    mba, ca_ = _boot_blocks(qa, n_boot, rng)
    mbb, cb = _boot_blocks(qb, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        logr = np.log(mbb) - np.log(mba)
    logr = logr[np.isfinite(logr)]
    if logr.size == 0 or ca_ <= 0 or cb <= 0:
        return (ratio, None, None)
    shift = math.log(ratio) - (math.log(cb) - math.log(ca_))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(logr, [alpha, 1 - alpha])
    return (ratio, float(math.exp(lo + shift)), float(math.exp(hi + shift)))


def mannwhitney_blocks(base_blocks: Sequence[np.ndarray], cand_blocks: Sequence[np.ndarray]
                       ) -> Optional[float]:
    """Two-sided Mann-Whitney U p-value on the block quantiles of two results (each a list of
    per-process block arrays, `process_blocks`); None if too few."""
    ba, bb = _concat(base_blocks), _concat(cand_blocks)
    if ba.size < 3 or bb.size < 3:
        return None
    from scipy.stats import mannwhitneyu
    if np.ptp(np.concatenate([ba, bb])) == 0:
        return 1.0
    return float(mannwhitneyu(bb, ba, alternative="two-sided").pvalue)
