from __future__ import annotations

import numpy as np

from edge_bench.stats import bootstrap_median_ci, summarize


def test_summarize_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    a = rng.gamma(5.0, 0.2, size=1001)
    s = summarize(a.tolist())
    assert s["median"] == np.median(a)
    assert s["p95"] == np.percentile(a, 95)
    assert s["min"] == a.min() and s["max"] == a.max()
    assert abs(s["std"] - a.std(ddof=1)) < 1e-12
    assert abs(s["cov"] - a.std(ddof=1) / a.mean()) < 1e-12


def test_empty_and_single() -> None:
    assert summarize([])["median"] is None
    one = summarize([2.0])
    assert one["median"] == 2.0 and one["std"] == 0.0
    assert bootstrap_median_ci([1.0]) == (None, None)


def test_bootstrap_ci_contains_median() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(10, 1, size=400)
    lo, hi = bootstrap_median_ci(a.tolist())
    assert lo < np.median(a) < hi
    assert hi - lo < 0.5
