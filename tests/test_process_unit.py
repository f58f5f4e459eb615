"""Processes as the unit of replication (issue 27): the interval a verdict rests on reflects the
spread between worker processes. Quiet runs of builtin:digits had one or two of their three
processes ~40% above the others for all their samples; pooled, two such processes moved the
fast quartile with an interval of +-1% (it counted samples), and quiet pairs were judged
`faster -20.5% [-20.9, -20.5]`. A verdict now needs a majority of each side's processes at its
fast level (analysis/processes.py): such a pair is inconclusive, while a slowdown every process
shows is still `slower`, also beside one odd process."""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from synth import fake_result
from edge_bench.analysis.stats import quantile_ratio_ci, split_processes
from edge_bench.analysis.verdict import compare_results


def _run(levels: List[float], seed: int, n: int = 1500, spread: float = 0.15) -> Dict[str, Any]:
    """A run whose processes sit at `levels`, each with a microsecond model's spread of
    samples (log-sd 0.15: its p75 is 10% above its p25)."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([lv * np.exp(rng.normal(0, spread, n)) for lv in levels])
    return fake_result(s, processes=len(levels), process_runs=[n] * len(levels))


def test_two_slow_processes_of_three_are_not_a_change() -> None:
    """The issue's levels (µs): a run with processes [1.44, 1.44, 1.43] vs one with
    [2.06, 2.06, 1.44]: nothing changed but which processes ran slow."""
    quiet, odd = _run([1.44, 1.44, 1.43], 1), _run([2.06, 2.06, 1.44], 2)
    for base, cand, who in ((quiet, odd, "candidate"), (odd, quiet, "baseline")):
        row = compare_results(base, cand)
        assert row["verdict"] == "same", row
        assert f"{who} processes disagree" in " ".join(row["notes"])
        assert "judged on the 1 of 3 at the fast level" in " ".join(row["notes"])
    # one odd process of three, nothing changed: `same` (pooled over all three: `faster`)
    odd_base = _run([2.06, 1.44, 1.44], 5)
    assert compare_results(odd_base, _run([1.44, 1.45, 1.43], 7))["verdict"] == "same"
    # the pooled rule alone: a confident change
    ga = split_processes(quiet["samples_ms"], quiet["process_runs"])
    gb = split_processes(odd["samples_ms"], odd["process_runs"])
    r, lo, hi = quantile_ratio_ci(ga, gb, q=0.25)
    assert r is not None and r > 1.05 and lo is not None and lo > 1.0


def test_a_slowdown_every_process_shows_is_still_slower() -> None:
    base = _run([1.44, 1.44, 1.43], 3)
    for levels in ([1.58, 1.59, 1.58], [1.58, 2.2, 1.58]):          # +10%, one odd process
        row = compare_results(base, _run(levels, 4))
        assert row["verdict"] == "slower", row
    odd_base = _run([2.06, 1.44, 1.44], 5)                          # one odd baseline process
    assert compare_results(odd_base, _run([1.58, 1.59, 1.58], 6))["verdict"] == "slower"


def test_a_change_seen_by_a_minority_of_processes_is_not_judged() -> None:
    """Two of three candidate processes at the fast level, one baseline process: the fast
    level of the baseline rests on one process of three, not a majority."""
    base, cand = _run([1.44, 2.06, 2.08], 8), _run([1.62, 1.62, 1.61], 9)
    row = compare_results(base, cand)
    assert row["verdict"] == "inconclusive", row
    assert "but only 1 of the baseline's 3 worker processes ran at its fast level" \
        in row["notes"][0], row["notes"]


def test_a_change_larger_than_the_disagreement_is_judged() -> None:
    """Processes that disagree (a loaded machine) cannot hide an 8x slower model: every
    candidate process is beyond every baseline process."""
    row = compare_results(_run([1.44, 2.06, 2.08], 10), _run([12.0, 14.0, 16.5], 11))
    assert row["verdict"] == "slower", row
