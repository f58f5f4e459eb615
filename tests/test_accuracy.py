"""Host-side scoring: correct variants pass, a wrong model or wrong runtime output is flagged."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge_bench.models import quantize as Q
from edge_bench.models.accuracy import reference_outputs, run_model, score
from edge_bench.models.builtin import resolve
from edge_bench.errors import UsageError
from test_thresholds import DOC_TABLE  # the flag table of docs/quantization.md

DIGITS = resolve("builtin:digits")


@pytest.fixture(scope="module")
def evalset():
    ev = np.load(DIGITS.eval)
    return {"pixels": ev["x"]}, ev["y"]


@pytest.fixture(scope="module")
def reference(evalset):
    return reference_outputs(DIGITS.path, evalset[0])


@pytest.fixture(scope="module")
def qcache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "quantized-cache"  # same cache as test_quantize.py


def _shuffled_weights_model(path, out):
    """The digits model with the first layer's weights permuted: loads, runs, is wrong."""
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    sub = model.subgraphs[0]
    t = next(t for t in sub.tensors if (t.name.decode() if isinstance(t.name, bytes)
                                        else t.name) == "dense_0/kernel")
    buf = model.buffers[t.buffer]
    w = np.frombuffer(bytes(np.asarray(buf.data, np.uint8)), np.float32).copy()
    buf.data = np.random.default_rng(0).permutation(w).view(np.uint8)
    b = flatbuffers.Builder(1 << 16)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    out.write_bytes(bytes(b.Output()))
    return out


def _litert_outputs(path, x, n):
    """The first n samples through LiteRT's own Interpreter API, without edge-bench's runner."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for i in range(n):
        it.set_tensor(inp["index"], x[i:i + 1].astype(inp["dtype"]).reshape(inp["shape"]))
        it.invoke()
        rows.append(it.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(rows)


def test_reference_shape_and_top1(reference, evalset):
    x, y = evalset
    assert len(reference) == 1 and reference[0].shape == (len(y), 10)
    np.testing.assert_allclose(reference[0].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(reference[0][:25], _litert_outputs(DIGITS.path, x["pixels"], 25),
                               rtol=1e-5, atol=1e-6)
    top1_ref = float(np.mean(reference[0].argmax(axis=1) == y))
    assert top1_ref >= 0.9  # docs: the digits model is a real, trained classifier
    # a variant whose argmax differs from the reference on exactly the first 7 samples
    out = reference[0].copy()
    out[:7] = np.roll(out[:7], 1, axis=1)
    changed = out.argmax(1) != reference[0].argmax(1)
    s = score(out, reference, y, variant="fp32")
    assert s["top1_ref"] == pytest.approx(top1_ref)
    assert s["top1"] == pytest.approx(float(np.mean(out.argmax(axis=1) == y)))
    assert s["agreement_vs_ref"] == pytest.approx(1 - changed.mean())
    assert s["max_abs_err"] == pytest.approx(float(np.abs(out - reference[0]).max()))
    assert s["mean_abs_err"] == pytest.approx(float(np.abs(out - reference[0]).mean()))
    snr = 10 * math.log10(np.sum(reference[0].astype(np.float64) ** 2)
                          / np.sum((out - reference[0]).astype(np.float64) ** 2))
    assert s["snr_db"] == pytest.approx(snr)


def test_flag_not_raised_on_correct_variants(qcache, reference, evalset):
    x, y = evalset
    for v in Q.VARIANTS:
        res = Q.cached_variant(DIGITS.path, v, DIGITS.calibration, qcache)
        s = score(run_model(res.path, x), reference, y, variant=v)
        assert s["flag"] is None, (v, s)
        assert s["agreement_vs_ref"] >= DOC_TABLE[v][0]
        assert s["top1"] >= s["top1_ref"] - 0.02


def test_flag_fires_on_corrupted_weights(tmp_path, reference, evalset):
    x, y = evalset
    bad = _shuffled_weights_model(DIGITS.path, tmp_path / "bad.tflite")
    out = run_model(bad, x)
    for v in Q.VARIANTS:
        s = score(out, reference, y, variant=v)
        assert s["flag"] and "agreement" in s["flag"] and "vs fp32" in s["flag"], (v, s)
        assert s["agreement_vs_ref"] < 0.5 and s["top1"] < 0.5


def test_flag_fires_on_wrong_runtime_output(reference, evalset):
    """What a silently-wrong runtime looks like: plausible probabilities, wrong classes."""
    x, y = evalset
    wrong = np.roll(reference[0], 3, axis=1)
    s = score([wrong], reference, y, variant="dynamic-int8")
    assert s["agreement_vs_ref"] < 0.2
    assert s["flag"].startswith("agreement ") and "(tolerance 95%)" in s["flag"]
    nan = reference[0].copy()
    nan[0, 0] = np.nan
    assert "non-finite" in score(nan, reference, y)["flag"]


def test_score_without_labels_and_explicit_tolerance(reference):
    noisy = reference[0] + np.random.default_rng(0).normal(0, 1e-4, reference[0].shape)
    s = score(noisy.astype(np.float32), reference[0])
    assert s["top1"] is None and s["top1_ref"] is None
    assert s["agreement_vs_ref"] > 0.99 and s["snr_db"] > 30 and s["flag"] is None
    err = np.abs(noisy.astype(np.float32).astype(np.float64) - reference[0])
    assert s["mean_abs_err"] == pytest.approx(float(err.mean()))
    assert s["max_abs_err"] == pytest.approx(float(err.max()))
    # a float tolerance is the minimum agreement
    half = reference[0].copy()
    half[::2] = np.roll(half[::2], 1, axis=1)
    assert score(half, reference, tolerance=0.4)["flag"] is None
    assert "tolerance 60%" in score(half, reference, tolerance=0.6)["flag"]


def test_score_shape_mismatch(reference):
    with pytest.raises(UsageError):
        score(reference[0][:5], reference)
    with pytest.raises(UsageError):
        score(reference, reference, labels=np.zeros(3))
