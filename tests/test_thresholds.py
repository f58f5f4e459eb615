"""Every documented threshold, one case just inside and one just outside it.

The numbers come from the documentation, NOT from the code under test:
- docs/quantization.md, "Accuracy and the disagreement flag": the per-variant table (agreement
  below, SNR below), any non-finite value, top-1 more than 5 points below the reference, and
  "with fewer than 20 samples one mismatching sample is always allowed";
- docs/results.md, "Verdicts": `accuracy-drop` when top-1 or agreement fell by more than
  `--accuracy-threshold` (default 0.01 = 1 point), or the outputs are newly flagged.
The outputs are built so that agreement and SNR have known values (checked here against their
definitions before the code under test sees them)."""
from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest

from synth import fake_result
from edge_bench.analysis.verdict import compare_results
from edge_bench.models.accuracy import score

# docs/quantization.md, the flag table: variant -> (agreement below, SNR dB below)
DOC_TABLE: Dict[str, Tuple[float, float]] = {
    "fp32": (0.99, 40), "fp16": (0.98, 30), "weight-int8": (0.97, 20), "int16x8": (0.97, 20),
    "dynamic-int8": (0.95, 15), "int8": (0.95, 15), "weight-int4": (0.90, 10),
}
DOC_TOP1_DROP = 0.05          # "top-1 more than 5 points below the reference"
DOC_SMALL_SET = 20            # "with fewer than 20 samples one mismatching sample is allowed"
DOC_ACCURACY_THRESHOLD = 0.01  # docs/results.md: default --accuracy-threshold, 1 point
CLASSES = 10


def _reference(n: int, seed: int = 0) -> np.ndarray:
    """Logits with a clear winner per sample (margin 10), so noise at the SNRs of the table does
    not move an argmax."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(0.0, 0.3, size=(n, CLASSES))
    ref[np.arange(n), rng.integers(0, CLASSES, n)] += 10.0
    return ref


def _with_flips(ref: np.ndarray, flips: int) -> Tuple[np.ndarray, np.ndarray]:
    """(reference, variant) where the variant's argmax differs on exactly `flips` samples, with
    next to no numerical error: on those samples the reference's top two logits are made
    nearly tied (1e-4 apart) and the variant swaps them."""
    ref = ref.copy()
    out = ref.copy()
    for i in range(flips):
        top = int(ref[i].argmax())
        other = (top + 1) % CLASSES
        ref[i, other] = ref[i, top] - 1e-4
        out[i, top], out[i, other] = ref[i, other], ref[i, top]
    return ref, out


def _with_snr(ref: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """ref + noise scaled so that 10 log10(sum ref^2 / sum noise^2) == snr_db exactly."""
    noise = np.random.default_rng(seed).normal(size=ref.shape)
    noise *= math.sqrt(np.sum(ref ** 2) / 10 ** (snr_db / 10) / np.sum(noise ** 2))
    return ref + noise


def _agreement(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean(out.argmax(1) == ref.argmax(1)))


def _snr(out: np.ndarray, ref: np.ndarray) -> float:
    return 10 * math.log10(np.sum(ref ** 2) / np.sum((out - ref) ** 2))


# ---- agreement column --------------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(DOC_TABLE))
def test_agreement_just_above_and_below_each_variants_tolerance(variant: str) -> None:
    need, _ = DOC_TABLE[variant]
    n = 1000
    ok_flips = round(n * (1 - need))          # agreement exactly at the tolerance: not below
    for flips, flagged in ((ok_flips, False), (ok_flips + 1, True)):
        ref, out = _with_flips(_reference(n), flips)
        assert _agreement(out, ref) == pytest.approx((n - flips) / n)
        assert _snr(out, ref) > 60            # only the agreement is in play
        s = score(out, ref, variant=variant)
        assert s["agreement_vs_ref"] == pytest.approx((n - flips) / n)
        assert (s["flag"] is not None) == flagged, (variant, flips, s["flag"])
        if flagged:
            assert "agreement" in s["flag"]


# ---- SNR column --------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(DOC_TABLE))
def test_snr_just_above_and_below_each_variants_tolerance(variant: str) -> None:
    _, need_db = DOC_TABLE[variant]
    ref = _reference(500, seed=2)
    for snr, flagged in ((need_db + 0.3, False), (need_db - 0.3, True)):
        out = _with_snr(ref, snr)
        assert _snr(out, ref) == pytest.approx(snr)
        assert _agreement(out, ref) == 1.0    # only the SNR is in play
        s = score(out, ref, variant=variant)
        assert s["snr_db"] == pytest.approx(snr, abs=1e-6)
        assert (s["flag"] is not None) == flagged, (variant, snr, s["flag"])
        if flagged:
            assert "SNR" in s["flag"]


def test_identical_outputs_have_infinite_snr_and_no_flag() -> None:
    ref = _reference(50)
    s = score(ref.copy(), ref, variant="fp32")
    assert s["snr_db"] == math.inf and s["max_abs_err"] == 0.0 and s["flag"] is None
    assert s["agreement_vs_ref"] == 1.0


def test_a_single_non_finite_value_flags() -> None:
    ref = _reference(200)
    out = ref.copy()
    out[17, 3] = np.nan
    s = score(out, ref, variant="weight-int4")
    assert s["flag"] is not None and "1 non-finite" in s["flag"]
    assert s["max_abs_err"] == math.inf


# ---- fewer than 20 samples ---------------------------------------------------------------------
@pytest.mark.parametrize("n, flips, flagged", [
    (DOC_SMALL_SET - 1, 1, False),   # 19 samples, 1 mismatch: always allowed
    (DOC_SMALL_SET - 1, 2, True),    # 19 samples, 2 mismatches: only one is allowed
    (DOC_SMALL_SET, 1, True),        # 20 samples: the table applies (95% < 99% for fp32)
    (5, 1, False),                   # 80% agreement, still one sample
    (5, 2, True),
])
def test_small_eval_sets_allow_exactly_one_mismatch(n: int, flips: int, flagged: bool) -> None:
    ref, out = _with_flips(_reference(n, seed=3), flips)
    assert _agreement(out, ref) == pytest.approx((n - flips) / n)
    s = score(out, ref, variant="fp32")
    assert (s["flag"] is not None) == flagged, (n, flips, s["flag"])


# ---- top-1 more than 5 points below the reference ----------------------------------------------
@pytest.mark.parametrize("lost, flagged", [(4, False), (5, False), (6, True)])
def test_top1_drop_of_more_than_5_points_flags(lost: int, flagged: bool) -> None:
    """100 samples, the reference right on 80 of them; the variant loses `lost` of those (each
    flip is a sample the reference got right), so top-1 falls by `lost` points while agreement
    (100 - lost)% stays within weight-int4's 90%."""
    n = 100
    ref, out = _with_flips(_reference(n, seed=4), lost)
    labels = ref.argmax(1).copy()
    labels[80:] = (labels[80:] + 1) % CLASSES       # the reference is wrong on 20 samples
    s = score(out, ref, labels=labels, variant="weight-int4")
    assert s["top1_ref"] == pytest.approx(0.80)
    assert s["top1"] == pytest.approx((80 - lost) / n)
    assert (s["flag"] is not None) == flagged, (lost, s["flag"])
    if flagged:
        assert "top-1" in s["flag"] and "agreement" not in s["flag"]
    assert 0.80 - s["top1"] == pytest.approx(lost / n)
    assert DOC_TOP1_DROP == pytest.approx(5 / n)


# ---- compare: accuracy-drop above 1 point ------------------------------------------------------
def _pair(base_acc: Dict[str, Any], cand_acc: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    samples = list(np.random.default_rng(5).lognormal(0.0, 0.02, 300) + 2.0)
    base, cand = fake_result(samples), fake_result(samples)  # the same timings: speed is `same`
    base["accuracy"], cand["accuracy"] = base_acc, cand_acc
    return base, cand


def _acc(top1: Optional[float] = 0.95, agreement: Optional[float] = 1.0,
         flag: Optional[str] = None) -> Dict[str, Any]:
    return {"top1": top1, "top1_ref": 0.95, "agreement_vs_ref": agreement, "flag": flag}


@pytest.mark.parametrize("field", ["top1", "agreement"])
@pytest.mark.parametrize("drop_points, verdict", [
    (0.0, "same"), (0.9, "same"), (1.0, "same"),      # "by more than" 1 point
    (1.1, "accuracy-drop"), (2.0, "accuracy-drop"), (20.0, "accuracy-drop"),
])
def test_accuracy_drop_is_more_than_one_point(field: str, drop_points: float, verdict: str) -> None:
    base_v = 0.95 if field == "top1" else 0.99
    cand_v = round(base_v - drop_points / 100, 6)
    kw = {"top1" if field == "top1" else "agreement": cand_v}
    base_kw = {"top1" if field == "top1" else "agreement": base_v}
    base, cand = _pair(_acc(**base_kw), _acc(**kw))
    row = compare_results(base, cand)
    assert row["verdict"] == verdict, (field, drop_points, row["notes"])
    assert row["regression"] == (verdict == "accuracy-drop")
    # and with the documented default passed explicitly, the same answer
    assert compare_results(base, cand, accuracy_threshold=DOC_ACCURACY_THRESHOLD)["verdict"] == verdict


def test_accuracy_threshold_is_configurable() -> None:
    base, cand = _pair(_acc(top1=0.95), _acc(top1=0.935))   # -1.5 points
    assert compare_results(base, cand)["verdict"] == "accuracy-drop"
    assert compare_results(base, cand, accuracy_threshold=0.02)["verdict"] == "same"
    worse = copy.deepcopy(cand)
    worse["accuracy"]["top1"] = 0.925                        # -2.5 points
    assert compare_results(base, worse, accuracy_threshold=0.02)["verdict"] == "accuracy-drop"


def test_an_improvement_is_never_a_drop() -> None:
    base, cand = _pair(_acc(top1=0.90, agreement=0.95), _acc(top1=0.97, agreement=1.0))
    assert compare_results(base, cand)["verdict"] == "same"


def test_outputs_newly_flagged_are_a_drop_already_flagged_are_not() -> None:
    base, cand = _pair(_acc(), _acc(flag="agreement 10.9% vs fp32 (tolerance 95%)"))
    row = compare_results(base, cand)
    assert row["verdict"] == "accuracy-drop" and any("flagged" in n for n in row["notes"])
    both: List[Dict[str, Any]] = list(_pair(_acc(flag="SNR 3.0 dB"), _acc(flag="SNR 2.9 dB")))
    assert compare_results(*both)["verdict"] == "same"


# ---- compare: the decision statistic is the fast quartile (p25), threshold 5% -------------------
def _timings(seed: int, n: int = 1200) -> np.ndarray:
    return 2.0 * np.exp(np.random.default_rng(seed).normal(0.0, 0.3, n))


def _fast_quartile_up(s: np.ndarray, factor: float) -> np.ndarray:
    """The samples below the median pulled towards it so that p25 becomes factor x p25, the
    median and everything above it unchanged (order kept)."""
    med, p25 = np.median(s), np.percentile(s, 25)
    k = (med - factor * p25) / (med - p25)
    return np.where(s < med, med - (med - s) * k, s)


def _median_up(s: np.ndarray, factor: float) -> np.ndarray:
    """The samples above p25 stretched so that the median becomes factor x median, p25 and
    everything below it unchanged."""
    med, p25 = np.median(s), np.percentile(s, 25)
    k = (factor * med - p25) / (med - p25)
    return np.where(s > p25, p25 + (s - p25) * k, s)


@pytest.mark.parametrize("change, verdict", [
    (lambda s: _fast_quartile_up(s, 1.10), "slower"),   # p25 +10%, median unchanged
    (lambda s: _median_up(s, 1.15), "same"),            # median +15%, p25 unchanged
    (lambda s: _fast_quartile_up(s, 0.90), "faster"),
    (lambda s: s * 1.02, "same"),                       # +2%: under the 5% minimum effect
    (lambda s: s * 1.12, "slower"),
], ids=["p25+10%", "median+15%", "p25-10%", "all+2%", "all+12%"])
def test_the_verdict_is_decided_on_the_fast_quartile(change: Any, verdict: str) -> None:
    """docs/results.md, "The rule": slower only when the p25 ratio >= 1 + 5% (and the interval
    and the block test agree); the median alone does not decide."""
    base_s, cand_s = _timings(21), change(_timings(21))
    p25 = np.percentile(cand_s, 25) / np.percentile(base_s, 25)
    med = np.median(cand_s) / np.median(base_s)
    row = compare_results(fake_result(list(base_s)), fake_result(list(cand_s)))
    assert row["verdict"] == verdict, (p25, med, row["notes"])
