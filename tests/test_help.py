"""`--help` says what the commands do: the texts that can drift from the code are tied to it here
(the statistic compare's verdict is decided on, every default a help text names, the variants)."""
from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any, Dict, Iterator, Tuple

import numpy as np
import pytest

from edge_bench.analysis import verdict
from edge_bench.app.run import DEFAULT_MODELS, DEFAULT_VARIANTS, RunRequest
from edge_bench.cli import build_parser
from edge_bench.models.variants import MIXED_VARIANTS, STATIC_VARIANTS, VARIANTS


def subparsers() -> Dict[str, argparse.ArgumentParser]:
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def options() -> Iterator[Tuple[str, argparse.Action]]:
    for name, sp in subparsers().items():
        for a in sp._actions:
            if a.option_strings and a.help and a.help is not argparse.SUPPRESS:
                yield name, a


def help_text(command: str) -> str:
    return " ".join(subparsers()[command].format_help().split())


def named_default(action: argparse.Action) -> str:
    """The default a help text names ("(default: 50)", "(default 0.05 = 5%)"), or ""."""
    text = action.help % {"default": action.default} if "%(" in action.help else action.help
    m = re.search(r"\(default:? ([^;)=]+)", text)
    return m.group(1).strip() if m else ""


def test_every_named_default_is_the_real_one() -> None:
    checked = 0
    for command, a in options():
        shown = named_default(a)
        if not shown or a.default is None:
            continue  # None: the help explains what happens instead (checked below for run)
        if isinstance(a.default, (int, float)) and not isinstance(a.default, bool):
            assert float(shown) == pytest.approx(float(a.default)), (command, a.dest, shown)
        else:
            assert shown == str(a.default), (command, a.dest, shown, a.default)
        checked += 1
    assert checked >= 14  # runs, warmup, seconds, processes, thresholds, alpha, history ...


def test_run_defaults_are_the_services_defaults() -> None:
    """`edge-bench run` with no flags asks the service for exactly its own defaults, and the
    help names the models and variants the service falls back to."""
    args = build_parser().parse_args(["run"])
    req = RunRequest()
    for f in dataclasses.fields(RunRequest):
        if f.name != "argv":
            assert getattr(args, f.name) == getattr(req, f.name), f.name
    text = help_text("run")
    assert f"(default: {', '.join(DEFAULT_MODELS)})" in text
    assert f"(default: {DEFAULT_VARIANTS})" in text
    assert f"With no arguments: the built-in models ({', '.join(DEFAULT_MODELS)}) as {DEFAULT_VARIANTS}" in text


def test_variant_lists_in_help_are_the_variants() -> None:
    run_variants = next(a for c, a in options() if c == "run" and a.dest == "variants")
    listed = run_variants.help.split(" ")[0].split(",")
    assert listed == list(VARIANTS)
    desc = subparsers()["quantize"].description
    block = desc.split("variants:\n", 1)[1].split("\n\n", 1)[0]
    rows = [line.split() for line in block.splitlines() if line.strip()]
    assert [r[0] for r in rows] == list(VARIANTS)
    assert {r[0] for r in rows if "needs calibration" in " ".join(r)} == \
        set(STATIC_VARIANTS) - set(MIXED_VARIANTS)
    for v in MIXED_VARIANTS:   # not in `all`: described after the table
        assert f"{v} (not part of `all`; needs calibration)" in desc


def _result(samples: np.ndarray, processes: int = 1) -> Dict[str, Any]:
    n = len(samples)
    return {"device": "d", "model": "m", "variant": "fp32", "threads": 1, "status": "ok",
            "samples_ms": samples.tolist(), "process_runs": [n // processes] * processes}


def test_compare_help_names_the_statistic_the_verdict_is_decided_on() -> None:
    """The help says the verdict is taken on the fast quartile (the DECISION_QUANTILE of the
    pooled samples), and the median is not judged. Check both against what compare does: a
    change of only the slow half of the invokes (median +30%, p25 unchanged) is `same`; a
    change of the fast quartile alone (p25 +30%, median unchanged) is `slower`."""
    text = help_text("compare")
    q = f"{verdict.DECISION_QUANTILE * 100:g}th percentile"
    assert f"is `slower` only when its fast quartile (the {q} of all the samples" in text
    assert "The change of the median is shown next to it, not judged" in text
    assert "median grew" not in text and "block medians" not in text
    assert verdict.DECISION_QUANTILE == 0.25  # "fast quartile" in the help

    rng = np.random.default_rng(7)
    n = 3000
    base = rng.uniform(5.0, 15.0, n)            # p25 ~7.5 ms, median ~10 ms
    ranks = np.argsort(np.argsort(base))
    slow_half = base.copy()
    slow_half[ranks >= n * 0.45] *= 1.3          # median +30%, the fastest 45% unchanged
    fast_part = base.copy()
    fast_part[ranks < n * 0.4] = 9.8             # p25 7.5 -> 9.8 (+30%), median unchanged
    b = _result(base)
    row = verdict.compare_results(b, _result(slow_half))
    assert row["ratio"] > 1.2 and abs(row["p25_ratio"] - 1) < 0.01
    assert row["verdict"] == "same"
    row = verdict.compare_results(b, _result(fast_part))
    assert abs(row["ratio"] - 1) < 0.1 and row["p25_ratio"] > 1.2
    assert row["verdict"] == "slower"


def test_compare_help_defaults_are_the_verdicts() -> None:
    acts = {a.dest: a for c, a in options() if c == "compare"}
    assert acts["threshold"].default == verdict.DEFAULT_THRESHOLD
    assert acts["alpha"].default == verdict.DEFAULT_ALPHA
    assert acts["accuracy_threshold"].default == verdict.DEFAULT_ACCURACY_THRESHOLD
    run_thr = next(a for c, a in options() if c == "run" and a.dest == "threshold")
    assert run_thr.default == verdict.DEFAULT_THRESHOLD
