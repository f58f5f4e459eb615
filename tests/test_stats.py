from __future__ import annotations

import numpy as np
import pytest

from edge_bench.analysis.stats import bootstrap_median_ci, summarize


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


def test_split_processes_and_pooled_quantile_ratio() -> None:
    from edge_bench.analysis.stats import (process_quantiles, quantile_ratio_ci, ratio_of_medians_ci,
                                  split_processes)
    s = [1.0, 1.0, 5.0, 5.0, 5.0, 2.0]
    g = split_processes(s, [2, 3, 1])
    assert [x.tolist() for x in g] == [[1.0, 1.0], [5.0, 5.0, 5.0], [2.0]]
    assert process_quantiles(g, 0.5).tolist() == [1.0, 5.0, 2.0]
    assert len(split_processes(s, [2, 2])) == 1          # counts that do not add up: one series
    assert len(split_processes(s, None)) == 1
    assert [x.tolist() for x in split_processes([1.0, float("nan"), 3.0], [2, 1])] == [[1.0], [3.0]]
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(0, 0.1, 400), rng.lognormal(0.1, 0.1, 400)
    # one process per result: exactly the single-series interval
    assert quantile_ratio_ci([a], [b], q=0.25, seed=3) == ratio_of_medians_ci(a, b, q=0.25, seed=3)
    # split into processes: the same pooled point estimate, an interval that still covers it
    r, lo, hi = quantile_ratio_ci(np.split(a, 4), np.split(b, 2), q=0.25, seed=3)
    assert r == pytest.approx(float(np.quantile(b, 0.25) / np.quantile(a, 0.25)))
    assert lo < r < hi
