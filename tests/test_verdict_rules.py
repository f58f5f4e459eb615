"""The verdict rules of host/analysis/verdict.py, each just inside and just outside.

Written from docs/results.md ("The rule", "Verdicts", "The history guard", "Environments are
shown") and verdict.py's docstrings. The latency cases are built so that the statistics are
known without the code: the candidate is the baseline's samples times a factor (every quantile
ratio is exactly that factor) with little spread, so the blocks of the two runs do not overlap
(p tiny, interval tight around the factor) unless the test says otherwise."""
from __future__ import annotations

import copy
import json
import math
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
from scipy.stats import norm

from synth import fake_result
from edge_bench.analysis import verdict as V
from edge_bench.errors import UsageError

DOC_THRESHOLD, DOC_ALPHA, DOC_ACC = 0.05, 0.01, 0.01      # docs/results.md defaults
DOC_SNR_DROP_DB = 3.0


def tight(n: int = 400, seed: int = 0, level: float = 2.0) -> np.ndarray:
    return level * np.exp(np.random.default_rng(seed).normal(0.0, 0.003, n))


def pair(factor: float, n: int = 400, **cand_over: Any) -> tuple:
    s = tight(n)
    return fake_result(list(s)), fake_result(list(s * factor), **cand_over)


def stored(result: Any) -> Any:
    """A result as the tool reads it back from --json or the store: through JSON, so its
    strings and numbers are fresh objects, not the literals of this file (a rule written with
    `is "ok"` would pass on literals and fail on every real document)."""
    return None if result is None else json.loads(json.dumps(result))


def row(base: Any, cand: Any, **kw: Any) -> Dict[str, Any]:
    return V.compare_results(stored(base), stored(cand), **kw)


# ---- the rule: effect AND interval AND p ----------------------------------------------------------
@pytest.mark.parametrize("factor, verdict", [
    (1.0505, "slower"), (1.0495, "same"), (1.20, "slower"),
    (1 / 1.0505, "faster"), (1 / 1.0495, "same"), (1.0, "same"),
])
def test_the_minimum_effect_is_5_percent_both_ways(factor: float, verdict: str) -> None:
    r = row(*pair(factor))
    assert r["p25_ratio"] == pytest.approx(factor, rel=1e-9)
    assert r["verdict"] == verdict, r["notes"]
    assert r["regression"] is (verdict == "slower")
    if factor != 1.0:
        assert r["p_value"] < DOC_ALPHA and (r["p25_ci_lo"] > 1.0 or r["p25_ci_hi"] < 1.0)


def test_the_threshold_and_alpha_are_settings() -> None:
    base, cand = pair(1.03)
    assert row(base, cand)["verdict"] == "same"
    assert row(base, cand, threshold=0.029)["verdict"] == "slower"
    assert row(base, cand, threshold=0.031)["verdict"] == "same"
    faster = pair(1 / 1.03)
    assert row(*faster, threshold=0.029)["verdict"] == "faster"
    r = row(base, cand, threshold=0.029, alpha=1e-300)      # p can never be that small
    assert r["verdict"] == "inconclusive"
    assert any(f">= {1e-300:g}" in n and "p=" in n for n in r["notes"]), r["notes"]
    # an interval clear of 1 is not said to include it, whichever side it is on
    for factor in (1.20, 1 / 1.20):
        r = row(*pair(factor), alpha=1e-300)
        assert r["verdict"] == "inconclusive"
        assert not any("interval includes no change" in n for n in r["notes"]), r["notes"]


def test_a_large_change_the_samples_cannot_confirm_is_inconclusive_not_same() -> None:
    rng = np.random.default_rng(2)
    spread = 2.0 * np.exp(np.linspace(-1.0, 1.0, 20))     # 20 samples over a wide range
    base = fake_result(list(rng.permutation(spread)))
    cand = fake_result(list(rng.permutation(spread) * 1.15))
    r = row(base, cand)
    assert r["p25_ratio"] == pytest.approx(1.15) and r["p_value"] >= DOC_ALPHA
    assert r["verdict"] == "inconclusive" and not r["regression"]
    note = next(n for n in r["notes"] if "not conclusive" in n)
    assert note.startswith("p25 %+.1f%%" % ((r["p25_ratio"] - 1) * 100))
    assert "p=" in note and "measure more" in note
    if r["p25_ci_lo"] <= 1.0:
        assert "interval includes no change" in note
    # the mirror: a large drop that cannot be confirmed
    r = row(cand, base)
    assert r["p25_ratio"] <= 1 / 1.05 and r["verdict"] == "inconclusive"


def test_an_interval_that_includes_no_change_blocks_a_verdict() -> None:
    """Significant and large, but alpha set loose while the interval still covers 1: the
    interval alone keeps it inconclusive."""
    rng = np.random.default_rng(3)
    spread = 2.0 * np.exp(np.linspace(-1.0, 1.0, 30))
    for factor in (1.10, 1 / 1.10):              # slower and faster alike
        base = fake_result(list(rng.permutation(spread)))
        cand = fake_result(list(rng.permutation(spread) * factor))
        r = row(base, cand, alpha=1.0)           # every p is "significant"
        assert r["p25_ratio"] == pytest.approx(factor)
        assert r["p25_ci_lo"] <= 1.0 <= r["p25_ci_hi"], r
        assert r["verdict"] == "inconclusive"
        note = next(n for n in r["notes"] if "not conclusive" in n)
        assert "interval includes no change" in note and "p=" not in note


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_samples_for_a_test_is_inconclusive(n: int) -> None:
    base, cand = fake_result([2.0] * n), fake_result([4.0] * n)
    r = row(base, cand)
    assert r["verdict"] == "inconclusive" and not r["regression"]
    assert f"too few samples for a test ({n} vs {n})" in r["notes"]
    assert r["ratio"] == pytest.approx(2.0) and r["n_base"] == r["n_cand"] == n


def test_no_latency_at_all_is_said_not_judged() -> None:
    base, cand = fake_result([]), fake_result([])
    r = row(base, cand)
    # nothing measured is not "no change": inconclusive, which --fail-on-regression fails (issue 25)
    assert r["verdict"] == "inconclusive" and r["ratio"] is None
    assert "no latency to compare" in r["notes"]
    # no samples but summary medians stored: the medians are reported
    base["latency_ms"] = {"median": 2.0}
    cand["latency_ms"] = {"median": 3.0}
    r = row(base, cand)
    assert r["base_median_ms"] == 2.0 and r["cand_median_ms"] == 3.0
    assert r["ratio"] == pytest.approx(1.5)


def test_the_row_reports_both_ratios_blocks_and_processes() -> None:
    base, cand = pair(1.08, n=400)
    r = row(base, cand)
    s = tight(400)
    assert r["base_median_ms"] == pytest.approx(float(np.median(s)))
    assert r["cand_median_ms"] == pytest.approx(float(np.median(s * 1.08)))
    assert r["ratio"] == pytest.approx(1.08) and r["ci_lo"] < 1.08 < r["ci_hi"]
    assert r["p25_ci_lo"] < r["p25_ratio"] < r["p25_ci_hi"]
    assert r["n_base"] == r["n_cand"] == 400
    assert r["blocks_base"] == r["blocks_cand"] == 50        # i.i.d.: 50 blocks (docs: 8-50)
    assert r["processes_base"] == r["processes_cand"] == 1
    assert r["base_process_p25_ms"] == pytest.approx([float(np.quantile(s, 0.25))])
    assert r["cand_process_p25_ms"] == pytest.approx([float(np.quantile(s * 1.08, 0.25))])
    # the key
    assert (r["device"], r["model"], r["variant"], r["threads"]) == ("local", "builtin:digits",
                                                                     "fp32", 1)


def test_a_median_move_without_the_fast_quartile_is_noted_not_counted() -> None:
    s = np.sort(tight(400, seed=5))
    rng = np.random.default_rng(6)
    cand = s.copy()
    cand[200:] *= 1.60                   # the slow half: the median up a lot
    cand[:200] *= 1.03                   # the fast half: p25 +3%, inside the threshold
    rng.shuffle(cand)
    base_s = s.copy()
    rng.shuffle(base_s)
    r = row(fake_result(list(base_s)), fake_result(list(cand)))
    assert r["ratio"] >= 1.05 and r["p25_ratio"] == pytest.approx(1.03)
    assert r["verdict"] == "same"
    note = next(n for n in r["notes"] if n.startswith("median "))
    assert note.startswith("median %+.1f%% but the fast quartile moved only %+.1f%%"
                           % ((r["ratio"] - 1) * 100, (r["p25_ratio"] - 1) * 100))
    assert "not counted" in note


def test_a_verdict_against_the_medians_direction_is_explained() -> None:
    """p25 +10% with the median exactly unchanged (odd n: the middle sample stays; the samples
    below it are pulled towards it)."""
    s = 2.0 * np.exp(np.random.default_rng(21).normal(0.0, 0.3, 1201))
    med, p25 = np.median(s), np.quantile(s, 0.25)
    k = (med - 1.10 * p25) / (med - p25)
    cand = np.where(s < med, med - (med - s) * k, s)
    assert np.median(cand) == med
    r = row(fake_result(list(s)), fake_result(list(cand)))
    assert r["ratio"] == 1.0 and r["p25_ratio"] == pytest.approx(1.10)
    assert r["verdict"] == "slower", r["notes"]
    assert "judged on the fast quartile (p25 +10.0%); the median moved +0.0% (other load in a " \
        "run?)" in r["notes"]
    assert not any("judged on" in n for n in row(*pair(1.10))["notes"])   # both moved up


def test_processes_that_disagree_by_the_threshold_are_named() -> None:
    parts = [tight(200, seed=1), tight(200, seed=2) * 1.06, tight(200, seed=3)]
    r_base = fake_result(list(np.concatenate(parts)), processes=3, process_runs=[200] * 3)
    r_cand = fake_result(list(np.concatenate([tight(200, seed=4)] * 3)), processes=3,
                         process_runs=[200] * 3)
    r = row(r_base, r_cand)
    p25 = [float(np.quantile(p, 0.25)) for p in parts]
    fast = min(p25)
    odd = ", ".join(f"{(x / fast - 1) * 100:+.1f}%" for x in p25)
    assert r["base_process_p25_ms"] == pytest.approx(p25)
    assert (f"baseline processes disagree (p25 vs the fastest: {odd}); judged on the 2 of 3"
            " at the fast level") in r["notes"]
    assert not any("candidate processes" in n for n in r["notes"])
    # 4% apart: under the 5% threshold, not named
    parts[1] = tight(200, seed=2) * 1.04
    r_base["samples_ms"] = list(np.concatenate(parts))
    assert not any("disagree" in n for n in row(r_base, r_cand)["notes"])


# ---- the history guard ----------------------------------------------------------------------------
def test_run_to_run_noise_raises_the_bar() -> None:
    base, cand = pair(1.10)
    assert row(base, cand)["verdict"] == "slower"
    sigma = 0.05
    floor = norm.ppf(1 - DOC_ALPHA) * math.sqrt(2) * sigma     # log scale
    r = row(base, cand, noise={"sigma": sigma, "runs": 12})
    assert r["verdict"] == "same"                                 # 10% < e^floor - 1 = 17.9%
    assert r["noise_floor"] == pytest.approx({"change": math.expm1(floor), "sigma": sigma,
                                              "runs": 12})
    assert ("run-to-run noise over 12 stored runs: a change must exceed "
            f"{math.expm1(floor) * 100:.1f}%") in r["notes"]
    big = pair(1.25)
    assert row(*big, noise={"sigma": sigma, "runs": 12})["verdict"] == "slower"
    # a quiet history does not lower the documented 5% floor
    quiet = row(*pair(1.04), noise={"sigma": 0.001, "runs": 9})
    assert quiet["verdict"] == "same" and quiet["noise_floor"]["sigma"] == 0.001
    assert not any("run-to-run" in n for n in quiet["notes"])
    assert row(base, cand, noise={"sigma": 0, "runs": 3})["noise_floor"] is None


def test_the_noise_floor_follows_alpha() -> None:
    base, cand = pair(1.10)
    sigma = 0.03
    for alpha in (0.01, 0.2):
        floor = norm.ppf(1 - alpha) * math.sqrt(2) * sigma
        r = row(base, cand, alpha=alpha, noise={"sigma": sigma, "runs": 5})
        assert r["noise_floor"]["change"] == pytest.approx(math.expm1(floor))


# ---- accuracy -------------------------------------------------------------------------------------
def acc_pair(base_acc: Dict[str, Any], cand_acc: Dict[str, Any]) -> tuple:
    s = list(tight(300))
    return (fake_result(s, accuracy=base_acc), fake_result(s, accuracy=cand_acc))


def outputs(*snrs: Optional[float], err: float = 0.1) -> Dict[str, Any]:
    return {"outputs": [{"snr_db": v, "max_abs_err": err} for v in snrs]}


@pytest.mark.parametrize("base_snr, cand_snr, dropped", [
    (40.0, 36.9, True), (40.0, 37.1, False), (40.0, 37.0, False),
    (40.0, 50.0, False), (12.0, 8.5, True),
])
def test_output_snr_falling_more_than_3_db_is_an_accuracy_drop(base_snr: Optional[float],
                                                               cand_snr: float,
                                                               dropped: bool) -> None:
    base, cand = acc_pair(outputs(base_snr, 60.0), outputs(cand_snr, 60.0))
    r = row(base, cand)
    assert (r["verdict"] == "accuracy-drop") is dropped, r["notes"]
    if dropped:
        assert r["regression"]
        assert f"output SNR vs fp32 {base_snr:.1f} dB -> {cand_snr:.1f} dB" in r["notes"]


def test_identical_outputs_count_as_infinite_snr() -> None:
    same = {"outputs": [{"snr_db": None, "max_abs_err": 0.0}]}
    assert V.worst_snr(same) == math.inf
    assert V.worst_snr({"outputs": [{"snr_db": None, "max_abs_err": 0.2}]}) is None
    assert V.worst_snr({}) is None
    assert V.worst_snr(outputs(30.0, 12.5, None)) == 12.5
    r = row(*acc_pair(same, outputs(35.0)))
    assert r["verdict"] == "accuracy-drop"
    assert "output SNR vs fp32 inf dB -> 35.0 dB" in r["notes"]
    assert row(*acc_pair(same, same))["verdict"] == "same"
    assert V.snr_drop(same, same) is None
    assert V.snr_drop(outputs(20.0), outputs(20.0)) is None
    assert V.snr_drop(outputs(None), outputs(5.0)) is None      # nothing known before
    assert V.snr_drop(outputs(40.0), outputs(None)) is None
    assert row(*acc_pair(outputs(None), outputs(5.0)))["verdict"] == "same"


def test_accuracy_notes_and_info() -> None:
    base_acc = {"top1": 0.95, "agreement_vs_ref": 0.99, "top1_ref": 0.95}
    cand_acc = {"top1": 0.90, "agreement_vs_ref": 0.97, "top1_ref": 0.95}
    r = row(*acc_pair(base_acc, cand_acc))
    assert r["verdict"] == "accuracy-drop"
    assert r["notes"][:2] == ["top-1 95.0% -> 90.0% (-5.0 pt)", "agreement 99.0% -> 97.0% (-2.0 pt)"]
    assert r["accuracy"] == {"base_top1": 0.95, "cand_top1": 0.90, "base_agreement": 0.99,
                             "cand_agreement": 0.97}
    r = row(*acc_pair({}, {}))
    assert r["accuracy"] is None and r["verdict"] == "same"
    r = row(*acc_pair({"top1": None, "agreement_vs_ref": 0.9}, {}))
    assert r["accuracy"] == {"base_top1": None, "cand_top1": None, "base_agreement": 0.9,
                             "cand_agreement": None}
    assert r["verdict"] == "same"


def test_accuracy_notes_come_before_the_latency_notes() -> None:
    base, cand = pair(1.10, accuracy={"top1": 0.5, "agreement_vs_ref": 1.0})
    r = row(base, cand)
    assert r["verdict"] == "accuracy-drop" and r["notes"][0].startswith("top-1 97.0% -> 50.0%")


# ---- failed, skipped, missing, new ----------------------------------------------------------------
def test_rows_for_keys_on_one_side_only() -> None:
    ok = fake_result([2.0, 2.0, 4.0])
    r = row(None, ok)
    assert r["verdict"] == "new" and not r["regression"] and r["cand_median_ms"] == 2.0
    assert r["notes"] == []
    failed = fake_result([], status="error", error="Segmentation fault")
    r = row(None, failed)
    assert r["verdict"] == "new" and r["cand_median_ms"] is None
    assert r["notes"] == ["candidate error: Segmentation fault"]
    r = row(ok, None)
    assert r["verdict"] == "missing" and not r["regression"] and r["base_median_ms"] == 2.0
    assert r["notes"] == ["in the baseline, not in the candidate"]
    assert row(failed, None)["base_median_ms"] is None


def test_a_failed_candidate_is_an_error_only_when_the_baseline_was_ok() -> None:
    ok = fake_result([2.0] * 5)
    failed = fake_result([], status="error", error="Timeout")
    r = row(ok, failed)
    assert r["verdict"] == "error" and r["regression"]
    assert r["notes"] == ["candidate failed: Timeout"]
    r = row(copy.deepcopy(failed), failed)
    assert r["verdict"] == "error" and not r["regression"]
    assert r["notes"] == ["candidate failed: Timeout (the baseline failed too)"]
    skipped = fake_result([], status="skipped", error="no such variant")
    r = row(ok, skipped)
    assert r["verdict"] == "missing" and not r["regression"]
    assert r["notes"] == ["candidate skipped: no such variant"]
    r = row(skipped, failed)                      # a skipped baseline was not ok either
    assert r["verdict"] == "error" and not r["regression"]
    r = row(failed, ok)
    assert r["verdict"] == "new" and r["cand_median_ms"] == 2.0 and not r["regression"]
    assert r["notes"] == ["baseline error: Timeout"]


def test_throttling_on_either_side_is_noted() -> None:
    base, cand = pair(1.0)
    cand["device_info"] = dict(cand["device_info"], throttled="0x50005")
    base["device_info"] = dict(base["device_info"], throttled=False, throttled_during="0x4")
    notes = row(base, cand)["notes"]
    assert "baseline was throttled (0x4)" in notes and "candidate was throttled (0x50005)" in notes
    assert not any("throttled" in n for n in row(*pair(1.0))["notes"])


def test_environment_differences_are_listed_both_none_is_no_difference() -> None:
    base, cand = pair(1.0)
    cand["runtime"] = {"name": "ai-edge-litert", "version": "2.4.0", "xnnpack": None}
    cand["device_info"] = dict(cand["device_info"], cpu=None)
    base["agent_version"] = cand["agent_version"] = None
    got = {m["field"]: (m["base"], m["cand"]) for m in V.env_mismatches(base, cand)}
    assert got == {"runtime_version": ("2.3.0", "2.4.0"), "xnnpack": (True, None),
                   "cpu": ("Test CPU", None)}
    assert row(base, cand)["mismatches"] == V.env_mismatches(base, cand)
    base["model_sha256"], cand["model_sha256"] = None, "ef" * 32    # known on one side only
    assert {"field": "model_sha256", "base": None, "cand": "ef" * 32} in V.env_mismatches(base,
                                                                                         cand)


# ---- documents ------------------------------------------------------------------------------------
def doc(results: List[Dict[str, Any]], run_id: str = "r") -> Dict[str, Any]:
    return stored({"run_id": run_id, "label": "L" + run_id, "started_at": "t", "_source": "s",
                   "results": results})


def test_a_gpu_only_regression_is_its_own_key() -> None:
    """cpu and gpu rows of the same model/variant/threads are two keys: a GPU slowdown is
    compared with the GPU baseline, never hidden by (or blamed on) the CPU row."""
    s = list(tight(300))
    base = [fake_result(s, variant="fp16"), dict(fake_result(s, variant="fp16"), accelerator="gpu")]
    cand = [fake_result(s, variant="fp16"),
            dict(fake_result([x * 1.5 for x in s], variant="fp16"), accelerator="gpu")]
    cmp = V.compare_docs(doc(base, "b1"), doc(cand, "c1"))
    got = {r["accelerator"]: r["verdict"] for r in cmp["rows"]}
    assert got == {"cpu": "same", "gpu": "slower"}


def test_compare_docs_counts_orders_and_refuses_a_bad_threshold() -> None:
    s = list(tight(300))
    base = [fake_result(s, variant="int8", threads=2), fake_result(s, variant="fp32", threads=1),
            fake_result(s, variant="fp16", threads=None, device="b"),
            fake_result(s, variant="fp32", threads=1, device="a0")]
    cand = [fake_result([x * 1.2 for x in s], variant="int8", threads=2),
            fake_result(s, variant="fp32", threads=1),
            fake_result(s, variant="new", threads=4)]
    cmp = V.compare_docs(doc(base, "b1"), doc(cand, "c1"))
    keys = [(r["device"], r["variant"], r["threads"]) for r in cmp["rows"]]
    assert keys == [("a0", "fp32", 1), ("b", "fp16", None), ("local", "fp32", 1),
                    ("local", "int8", 2), ("local", "new", 4)]
    assert [r["verdict"] for r in cmp["rows"]] == ["missing", "missing", "same", "slower", "new"]
    assert cmp["summary"] == {"slower": 1, "accuracy-drop": 0, "error": 0, "faster": 0,
                              "same": 1, "inconclusive": 0, "missing": 2, "new": 1}
    assert cmp["regressed"] is True and cmp["no_baseline"] == 1 and cmp["inconclusive"] == 0
    assert cmp["base"] == {"run_id": "b1", "label": "Lb1", "started_at": "t", "source": "s"}
    assert cmp["settings"]["threshold"] == DOC_THRESHOLD and cmp["settings"]["alpha"] == DOC_ALPHA
    assert cmp["settings"]["accuracy_threshold"] == DOC_ACC
    assert cmp["settings"]["decision_quantile"] == 0.25
    assert cmp["settings"]["history_noise"] is False and cmp["mismatched_rows"] == 0
    for bad in (-0.01, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="--threshold"):
            V.compare_docs(doc(base), doc(cand), threshold=bad)
    assert V.compare_docs(doc(base), doc(cand), threshold=0.0)["rows"]


def test_compare_docs_passes_each_key_its_noise() -> None:
    s = list(tight(300))
    base, cand = [fake_result(s)], [fake_result([x * 1.10 for x in s])]
    key = V.result_key(base[0])
    cmp = V.compare_docs(doc(base), doc(cand), noise={key: {"sigma": 0.05, "runs": 7}})
    assert cmp["rows"][0]["verdict"] == "same" and cmp["settings"]["history_noise"] is True
    assert V.compare_docs(doc(base), doc(cand))["rows"][0]["verdict"] == "slower"
    cmp = V.compare_docs(doc(base), doc(cand), alpha=0.2, noise={key: {"sigma": 0.05}})
    assert cmp["rows"][0]["noise_floor"]["change"] == pytest.approx(
        math.expm1(norm.ppf(0.8) * math.sqrt(2) * 0.05))


def test_compare_docs_passes_the_settings_to_every_row() -> None:
    s = list(tight(300))
    base, cand = [fake_result(s)], [fake_result([x * 1.03 for x in s], accuracy={
        "top1": 0.955, "agreement_vs_ref": 1.0})]
    assert V.compare_docs(doc(base), doc(cand))["rows"][0]["verdict"] == "accuracy-drop"
    cmp = V.compare_docs(doc(base), doc(cand), threshold=0.02, accuracy_threshold=0.02)
    assert cmp["rows"][0]["verdict"] == "slower"
    assert V.compare_docs(doc(base), doc(cand), threshold=0.02, accuracy_threshold=0.02,
                          alpha=1e-300)["rows"][0]["verdict"] == "inconclusive"
    wide = V.compare_docs(doc(base), doc(cand), threshold=0.02, accuracy_threshold=0.02,
                          confidence=0.999)["rows"][0]
    narrow = cmp["rows"][0]
    assert wide["p25_ci_lo"] < narrow["p25_ci_lo"] and wide["p25_ci_hi"] > narrow["p25_ci_hi"]


def test_a_repeated_key_keeps_an_ok_result_and_else_the_later_one() -> None:
    s = list(tight(300))
    ok = fake_result(s)
    err1 = fake_result([], status="error", error="first")
    err2 = fake_result([], status="error", error="second")
    later_ok = fake_result([x * 1.2 for x in s])
    assert V._index(doc([ok, err1]))[V.result_key(ok)] == stored(ok)
    assert V._index(doc([err1, ok]))[V.result_key(ok)] == stored(ok)
    assert V._index(doc([err1, err2]))[V.result_key(ok)] == stored(err2)
    assert V._index(doc([ok, later_ok]))[V.result_key(ok)] == stored(later_ok)
    assert V._index({"results": None}) == {}


def test_result_key_threads_are_integers_or_none() -> None:
    assert V.result_key({"device": "d", "model": "m", "variant": "v", "threads": "4"}) == \
        ("d", "m", "v", 4, "cpu")
    assert V.result_key({"device": "d", "model": "m", "variant": "v"}) == \
        ("d", "m", "v", None, "cpu")
    # the accelerator is part of the key; a result from before accelerators ran on the cpu
    assert V.result_key({"device": "d", "model": "m", "variant": "v", "threads": 1,
                         "accelerator": "gpu"}) == ("d", "m", "v", 1, "gpu")


@pytest.mark.parametrize("cmp, strict, why", [
    ({"regressed": True}, False, ["a regression"]),
    ({"regressed": False, "inconclusive": 2}, True, ["2 inconclusive key(s)"]),
    ({"regressed": False, "inconclusive": 2}, False, []),
    ({"no_baseline": 1}, True, ["1 key(s) missing from the baseline"]),
    ({"no_baseline": 1, "regressed": True}, False, ["a regression"]),
    ({"regressed": True, "inconclusive": 1, "no_baseline": 3}, True,
     ["a regression", "1 inconclusive key(s)", "3 key(s) missing from the baseline"]),
    ({}, True, []),
])
def test_gate_failures(cmp: Dict[str, Any], strict: bool, why: List[str]) -> None:
    from edge_bench.analysis.gate import gate_failures
    assert gate_failures(cmp, fail_on_inconclusive=strict) == why


def test_run_level_of_no_samples_is_none() -> None:
    assert V.run_level(fake_result([])) is None
    assert V.run_level(fake_result([1.0, 2.0, 3.0, 4.0, 5.0])) == 2.0
    assert V.run_level(fake_result([1.0, float("nan"), 3.0])) == 1.5


def test_two_processes_that_disagree_are_named_too() -> None:
    parts = [tight(300, seed=31), tight(300, seed=32) * 1.07]
    base = fake_result(list(np.concatenate(parts)), processes=2, process_runs=[300, 300])
    r = row(base, fake_result(list(tight(600, seed=33)), processes=1))
    assert any(n.startswith("baseline processes disagree") for n in r["notes"]), r["notes"]


def test_a_fast_quartile_moved_exactly_by_the_threshold_counts_as_moved() -> None:
    """p25 2.0 -> 2.1 (+5.0% exactly: "at least 1 + threshold"), median +20%: the median
    note ("the fast quartile moved only ...") is for a p25 that stayed inside the threshold."""
    base = np.full(401, 3.0)
    base[:100] = np.linspace(1.5, 1.9, 100)
    base[100] = 2.0                                  # p25 of 401 samples: the 101st
    base[101:] = np.linspace(2.5, 3.5, 300)
    cand = base.copy()
    cand[100] = 2.1
    cand[101:] *= 1.2
    cand[:100] *= 1.04
    rng = np.random.default_rng(40)
    r = row(fake_result(list(rng.permutation(base))), fake_result(list(rng.permutation(cand))))
    assert r["p25_ratio"] == 2.1 / 2.0 and r["ratio"] == pytest.approx(1.2)
    assert r["verdict"] in ("slower", "inconclusive")
    assert not any(n.startswith("median ") for n in r["notes"]), r["notes"]
    # the mirror: p25 2.1 -> 2.0 is exactly 1 / (1 + 5%) (the same float), median -17%
    r = row(fake_result(list(rng.permutation(cand))), fake_result(list(rng.permutation(base))))
    assert r["p25_ratio"] == 2.0 / 2.1
    assert r["verdict"] in ("faster", "inconclusive")
    assert not any(n.startswith("median ") for n in r["notes"]), r["notes"]


@pytest.mark.parametrize("n_base, n_cand", [(5, 1), (1, 5), (5, 0)])
def test_one_side_under_two_samples_gets_no_statistics(n_base: int, n_cand: int) -> None:
    base, cand = fake_result([2.0, 2.1, 2.2, 2.3, 2.4][:n_base]), fake_result([3.0] * n_cand)
    r = row(base, cand)
    assert r["p25_ratio"] is None and r["p_value"] is None and r["processes_cand"] is None
    assert r["blocks_base"] == r["blocks_cand"] == 0
    # an ok candidate with nothing measured is broken data, an error (issue 25), never `same`
    assert r["verdict"] == ("error" if n_cand == 0 else "inconclusive") or (
        n_cand and r["verdict"] == "same")


# ---- written for the survivors of the 2026-12-02 verdict mutation run ------------------------------
def test_a_different_runtime_name_is_an_environment_difference() -> None:
    base, cand = pair(1.0)
    cand["runtime"] = dict(cand["runtime"], name="tflite-runtime")
    assert {"field": "runtime", "base": "ai-edge-litert", "cand": "tflite-runtime"} in \
        V.env_mismatches(stored(base), stored(cand))


@pytest.mark.parametrize("status", ["error", "skipped", "timeout"])
def test_a_result_that_is_not_ok_has_no_median_even_with_samples(status: str) -> None:
    """A failed or skipped result may still carry latency numbers (a task cut short); a row
    only shows medians of ok results, on either side of a key that is on one side only."""
    odd = fake_result(list(tight(50)), status=status, error="cut short")
    assert row(None, odd)["cand_median_ms"] is None and row(None, odd)["verdict"] == "new"
    assert row(odd, None)["base_median_ms"] is None and row(odd, None)["verdict"] == "missing"
    ok = fake_result(list(tight(50)))
    assert row(None, ok)["cand_median_ms"] == pytest.approx(float(np.median(tight(50))))
    assert row(ok, None)["base_median_ms"] == pytest.approx(float(np.median(tight(50))))


def test_counts_of_a_one_sided_row_are_zero() -> None:
    r = row(None, fake_result(list(tight(50))))
    assert (r["n_base"], r["n_cand"], r["blocks_base"], r["blocks_cand"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("base_status", ["skipped", "error"])
def test_a_failed_candidate_after_a_baseline_that_was_not_ok(base_status: str) -> None:
    base = fake_result([], status=base_status, error="before")
    cand = fake_result([], status="error", error="now")
    r = row(base, cand)
    assert r["verdict"] == "error" and r["regression"] is False
    assert r["notes"] == ["candidate failed: now (the baseline failed too)"]


@pytest.mark.parametrize("n_base, n_cand", [(2, 400), (400, 2)])
def test_two_samples_a_side_are_enough_for_statistics(n_base: int, n_cand: int) -> None:
    r = row(fake_result(list(tight(n_base))), fake_result(list(tight(n_cand, seed=1))))
    assert r["p25_ratio"] is not None and r["processes_base"] == r["processes_cand"] == 1


def test_rows_are_ordered_by_device_model_threads_then_variant() -> None:
    """The table's order: device, model, threads (a result without a thread count first), then
    variant; whatever order the documents list them in."""
    s = list(tight(40))
    keys = [(d, m, t, v) for d in ("pi", "jetson") for m in ("b.tflite", "a.tflite")
            for t in (2, None, 1) for v in ("int8", "fp32", "dynamic-int8")]
    rng = np.random.default_rng(3)
    shuffled = [keys[i] for i in rng.permutation(len(keys))]
    results = [fake_result(s, device=d, model=m, threads=t, variant=v) for d, m, t, v in shuffled]
    cmp = V.compare_docs(doc(results[::2]), doc(results))
    got = [(r["device"], r["model"], r["threads"], r["variant"]) for r in cmp["rows"]]
    want = sorted(keys, key=lambda k: (k[0], k[1], 0 if k[2] is None else k[2], k[3]))
    assert got == want


def test_compare_docs_settings_are_keywords_only() -> None:
    d = doc([fake_result(list(tight(40)))])
    with pytest.raises(TypeError):
        V.compare_docs(d, d, 0.1)       # a threshold by position would be easy to misread


def test_one_process_is_never_said_to_disagree() -> None:
    r = row(*pair(1.0), threshold=0.0)        # even with no threshold at all
    assert r["processes_base"] == r["processes_cand"] == 1
    assert not any("disagree" in n for n in r["notes"]), r["notes"]


def test_no_median_note_when_nothing_moved() -> None:
    r = row(*pair(1.0))
    assert r["verdict"] == "same" and not any(n.startswith("median ") for n in r["notes"])


def test_no_direction_note_when_both_moved_down() -> None:
    r = row(*pair(1 / 1.10))
    assert r["verdict"] == "faster"
    assert not any("judged on" in n for n in r["notes"]), r["notes"]
