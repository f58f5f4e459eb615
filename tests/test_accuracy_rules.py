"""score()'s rules beyond the thresholds (host/models/accuracy.py), from its module docstring and
docs/quantization.md: argmax metrics on the first output, errors over all outputs; a float
tolerance is the minimum agreement only, a Tolerance both; unknown variants get the default
(95%, 15 dB); without labels only a collapsed output flags; every value below is computed here
with numpy from the definitions, not taken from the code."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge_bench.errors import UsageError
from edge_bench.models.accuracy import Tolerance, score, tolerance_for
from test_thresholds import _reference, _with_flips   # argmax flips with next to no error

DOC_DEFAULT = (0.95, 15.0)   # docs/quantization.md: a variant not in the table


def logits(n: int, seed: int = 0, classes: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 0.3, (n, classes))
    y[np.arange(n), rng.integers(0, classes, n)] += 10.0
    return y


def snr(out: np.ndarray, ref: np.ndarray) -> float:
    return 10 * math.log10(float(np.sum(ref ** 2)) / float(np.sum((out - ref) ** 2)))


def test_argmax_uses_the_first_output_errors_use_all_outputs() -> None:
    ref = [logits(50, 1), np.random.default_rng(2).normal(size=(50, 4, 3))]
    out = [ref[0].copy(), ref[1] + 0.5]
    out[0][:5] = np.roll(out[0][:5], 1, axis=1)                 # 5 argmax flips in output 0
    s = score(out, ref)
    assert s["agreement_vs_ref"] == pytest.approx(45 / 50)
    allo = np.concatenate([o.ravel() for o in out])
    allr = np.concatenate([r.ravel() for r in ref])
    assert s["max_abs_err"] == pytest.approx(float(np.abs(allo - allr).max()))
    assert s["mean_abs_err"] == pytest.approx(float(np.abs(allo - allr).mean()))
    assert s["snr_db"] == pytest.approx(snr(allo, allr))
    assert s["samples"] == 50
    # only the second output differs: agreement stays 100%, the error does not
    s = score([ref[0], ref[1] + 0.5], ref)
    assert s["agreement_vs_ref"] == 1.0 and s["max_abs_err"] == pytest.approx(0.5)
    # a multi-dimensional first output: argmax over the flattened sample
    img = np.random.default_rng(3).normal(size=(20, 3, 4))
    moved = img.copy()
    flat = moved.reshape(20, -1)
    flat[0] = np.roll(flat[0], 1)
    assert score(moved, img)["agreement_vs_ref"] == pytest.approx(19 / 20)


def test_output_count_and_shape_must_match() -> None:
    ref = logits(10)
    with pytest.raises(UsageError, match="2 outputs, the reference 1"):
        score([ref, ref], [ref])
    with pytest.raises(UsageError, match=r"output 1: variant shape \[10, 3\]"):
        score([ref, np.zeros((10, 3))], [ref, np.zeros((10, 4))])
    with pytest.raises(UsageError, match="3 labels for 10 samples"):
        score(ref, ref, labels=np.zeros(3))


def test_labels_of_any_shape_with_one_per_sample() -> None:
    ref = logits(40, 4)
    labels = ref.argmax(1).copy()
    labels[:10] = (labels[:10] + 1) % 10                        # the reference wrong on 10
    out = ref.copy()
    out[30:34] = np.roll(out[30:34], 2, axis=1)                 # the variant also wrong on 4
    s = score(out, ref, labels=labels.reshape(40, 1))
    assert s["top1_ref"] == pytest.approx(30 / 40)
    assert s["top1"] == pytest.approx(26 / 40)
    assert s["top1"] < s["top1_ref"] - 0.05                     # 10 points down: flagged
    assert s["flag"] is not None and "top-1 65.0% vs fp32 75.0%" in s["flag"]


@pytest.mark.parametrize("variant", [None, "no-such-variant", ""])
def test_a_variant_not_in_the_table_gets_the_default_tolerance(variant: object) -> None:
    assert tuple(tolerance_for(variant)) == DOC_DEFAULT          # type: ignore[arg-type]
    ref = logits(1000, 5)
    out = ref.copy()
    out[:51] = np.roll(out[:51], 1, axis=1)                     # 94.9% agreement
    s = score(out, ref, variant=variant)                         # type: ignore[arg-type]
    assert s["tolerance"] == {"agreement": 0.95, "snr_db": 15.0}
    assert s["flag"] is not None and "(tolerance 95%)" in s["flag"]
    out = ref.copy()
    out[:50] = np.roll(out[:50], 1, axis=1)                     # 95.0%: not below
    s = score(out, ref, variant=variant)                         # type: ignore[arg-type]
    assert s["flag"] is None or "agreement" not in s["flag"]


def test_a_float_tolerance_is_the_agreement_only_a_tolerance_both() -> None:
    ref = logits(200, 6)
    noisy = ref + np.random.default_rng(7).normal(0, 1.0, ref.shape)   # SNR ~ 7 dB
    noisy[np.arange(200), ref.argmax(1)] += 20.0                       # argmax kept
    assert score(noisy, ref, tolerance=0.99)["flag"] is None            # SNR not checked
    s = score(noisy, ref, tolerance=Tolerance(0.99, 40.0))
    assert s["tolerance"] == {"agreement": 0.99, "snr_db": 40.0}
    assert s["flag"] is not None and s["flag"].startswith("SNR ")
    assert "dB vs fp32 (tolerance 40 dB)" in s["flag"]
    assert score(noisy, ref, tolerance=0.99)["tolerance"] == {"agreement": 0.99,
                                                             "snr_db": -math.inf}


def test_agreement_flag_text() -> None:
    ref, out = _with_flips(_reference(100, seed=8), 7)          # 93%
    s = score(out, ref, variant="weight-int8")
    assert s["flag"] == "agreement 93.0% vs fp32 (tolerance 97%)"


def test_non_finite_values_flag_without_an_snr_reason() -> None:
    ref = logits(30, 9)
    out = ref.copy()
    out[3, 1] = np.inf
    out[4, 2] = np.nan
    s = score(out, ref, variant="fp32")
    assert s["snr_db"] == -math.inf and s["max_abs_err"] == math.inf
    assert s["mean_abs_err"] == math.inf
    assert s["flag"].startswith("2 non-finite output values")
    assert "SNR" not in s["flag"]


def test_snr_of_a_zero_reference() -> None:
    ref = np.zeros((10, 4))
    s = score(ref + 0.1, ref, variant="fp32")
    assert s["snr_db"] == -math.inf and "SNR" in s["flag"]
    s = score(ref.copy(), ref, variant="fp32")
    assert s["snr_db"] == math.inf and s["flag"] is None


def test_one_sample_sets_the_small_set_rule_too() -> None:
    ref = logits(1, 10)
    out = np.roll(ref, 1, axis=1)                                # the only sample disagrees
    s = score(out, ref, variant="fp32", tolerance=Tolerance(0.99, -math.inf))
    assert s["agreement_vs_ref"] == 0.0
    assert s["flag"] is None                                     # one mismatch is allowed


def test_without_labels_only_a_collapsed_output_flags() -> None:
    """docs: unlabelled inputs flag only non-finite, constant-where-the-reference-varies, or an
    output SNR below 3 dB; agreement and the variant's SNR tolerance do not apply."""
    ref0, out0 = _with_flips(_reference(60, seed=11), 30)        # half the argmaxes differ
    ref = [ref0, np.random.default_rng(12).normal(size=(60, 5))]
    out = [out0, ref[1] * 1.3]                                   # SNR ~10 dB
    s = score(out, ref, variant="fp32", unlabeled=True, labels=ref[0].argmax(1),
              output_names=["scores", None])
    assert s["flag"] is None
    assert s["tolerance"] == {"collapse_snr_db": 3.0}
    assert s["top1"] is None and s["top1_ref"] is None
    assert s["agreement_vs_ref"] == 0.5
    const = [ref[0], np.full_like(ref[1], 0.25)]
    s = score(const, ref, unlabeled=True, output_names=["scores", "boxes"])
    assert s["flag"] == "boxes: constant output 0.25"
    s = score(const, ref, unlabeled=True)
    assert s["flag"] == "output 1: constant output 0.25"
    both = [np.full_like(ref[0], np.nan), np.full_like(ref[1], 0.25)]
    s = score(both, ref, unlabeled=True)
    assert s["flag"] == (f"output 0: {ref[0].size} non-finite values; "
                         "output 1: constant output 0.25")
    assert [o["name"] for o in s["outputs"]] == ["output 0", "output 1"]


def test_a_variant_with_fewer_outputs_than_the_reference_is_refused() -> None:
    ref = logits(10)
    with pytest.raises(UsageError, match="1 outputs, the reference 2"):
        score([ref], [ref, ref])


def test_many_outputs_are_compared_one_to_one() -> None:
    """A model with 300 outputs (a detector's per-class heads, say) scores like one."""
    ref = [logits(4, k, classes=3) for k in range(300)]
    s = score([r.copy() for r in ref], ref, variant="fp32")
    assert s["flag"] is None and s["snr_db"] == math.inf and len(s["outputs"]) == 300


def test_an_snr_exactly_at_the_tolerance_is_not_below_it() -> None:
    """docs/quantization.md flags an SNR *below* the table's value: 20 dB for weight-int8.
    Reference 10 everywhere, error 1 everywhere: 10 log10(100 / 1) = 20 dB exactly."""
    ref = np.full((40, 10), 10.0)
    s = score(ref + 1.0, ref, variant="weight-int8")
    assert s["snr_db"] == 20.0 and s["agreement_vs_ref"] == 1.0
    assert s["flag"] is None
    assert "SNR" in score(ref + 1.01, ref, variant="weight-int8")["flag"]


def test_any_shape_or_label_count_mismatch_is_refused() -> None:
    ref = logits(10)
    with pytest.raises(UsageError, match=r"output 0: variant shape \[10, 12\]"):
        score(logits(10, classes=12), ref)          # more classes than the reference
    with pytest.raises(UsageError, match=r"output 0: variant shape \[11, 10\]"):
        score(logits(11), ref)
    with pytest.raises(UsageError, match="12 labels for 10 samples"):
        score(ref, ref, labels=np.zeros(12))


def test_the_one_mismatch_allowance_is_for_under_20_samples_only() -> None:
    """docs/quantization.md: with 20 samples or more the table applies as it is (fp32: 99%)."""
    for n in (20, 21, 50, 99):                      # 1 of 99 is still below 99%
        ref, out = _with_flips(_reference(n, seed=n), 1)
        assert score(out, ref, variant="fp32")["flag"] is not None, n
