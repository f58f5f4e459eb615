"""Quantized variants with the real ai-edge-quantizer, run in the real LiteRT."""
from __future__ import annotations

import io
import json
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from edge_bench.models import quantize as Q
from edge_bench.models.accuracy import run_model
from edge_bench.models.builtin import resolve
from edge_bench.cli import main
from edge_bench.errors import ModelError, UsageError

DIGITS = resolve("builtin:digits")


@pytest.fixture(scope="session")
def qcache(tmp_path_factory):
    """One quantized-model cache for the whole session (shared with test_accuracy.py)."""
    return tmp_path_factory.getbasetemp() / "quantized-cache"


@pytest.fixture(scope="module")
def digits_variants(qcache):
    return {v: Q.cached_variant(DIGITS.path, v, DIGITS.calibration, qcache) for v in Q.VARIANTS}


@pytest.fixture(scope="module")
def digits_eval():
    ev = np.load(DIGITS.eval)
    return {"pixels": ev["x"]}, ev["y"]


def _top1(path, data):
    x, y = data
    return float(np.mean(run_model(path, x)[0].argmax(axis=1) == y))


# ---- variants ----------------------------------------------------------------------------------
def test_parse_variants():
    assert Q.parse_variants("fp32, INT8,fp32") == ["fp32", "int8"]
    assert Q.parse_variants(["weight-int4"]) == ["weight-int4"]
    with pytest.raises(UsageError) as e:
        Q.parse_variants("fp32,int3")
    assert "int3" in str(e.value) and all(v in str(e.value) for v in Q.VARIANTS)


def test_every_variant_loads_and_runs(digits_variants, digits_eval):
    fp32 = _top1(DIGITS.path, digits_eval)
    assert fp32 >= 0.95
    for v, res in digits_variants.items():
        assert res.path.is_file() and res.bytes == res.path.stat().st_size
        assert res.path.read_bytes()[4:8] == b"TFL3"
        top1 = _top1(res.path, digits_eval)
        assert top1 >= fp32 - 0.02, (v, top1, fp32)
        assert res.recipe_description
    # static variants really are integer models
    from ai_edge_litert.interpreter import Interpreter
    for v, dt in (("int8", np.int8), ("int16x8", np.int16), ("fp16", np.float32)):
        it = Interpreter(model_path=str(digits_variants[v].path))
        assert it.get_input_details()[0]["dtype"] == dt, v


def test_int8_accuracy_and_size(digits_variants, digits_eval):
    fp32 = _top1(DIGITS.path, digits_eval)
    int8 = _top1(digits_variants["int8"].path, digits_eval)
    assert abs(int8 - fp32) <= 0.01, (int8, fp32)
    assert digits_variants["int8"].bytes <= 0.4 * DIGITS.path.stat().st_size
    assert digits_variants["weight-int4"].bytes < digits_variants["weight-int8"].bytes
    assert digits_variants["fp16"].bytes < 0.6 * DIGITS.path.stat().st_size


def test_mobilenet_variants_run(qcache):
    m = resolve("builtin:mobilenet")
    x = {"image": np.load(m.calibration)["x"][:2]}
    for v in Q.VARIANTS:
        res = Q.cached_variant(m.path, v, m.calibration, qcache)
        out = run_model(res.path, x)[0]
        assert out.shape == (2, 1000) and np.all(np.isfinite(out)), v


# ---- calibration -------------------------------------------------------------------------------
def test_static_needs_calibration(tmp_path):
    # a deliberate skip with its reason (a run shows it and does not fail on it)
    from edge_bench.errors import VariantSkipped
    for v in ("int8", "int16x8"):
        with pytest.raises(VariantSkipped) as e:
            Q.quantize_model(DIGITS.path, v, tmp_path / "m.tflite")
        assert "--calibration FILE" in str(e.value) and "--calibration random" in str(e.value)


def test_calibration_formats(tmp_path):
    x = np.load(DIGITS.calibration)["x"][:5]
    np.savez(tmp_path / "named.npz", pixels=x)
    np.savez(tmp_path / "x.npz", x=x)
    np.save(tmp_path / "one.npy", x)
    (tmp_path / "samples").mkdir()
    for i in range(3):
        np.save(tmp_path / "samples" / f"{i}.npy", x[i])
    (tmp_path / "named").mkdir()
    np.save(tmp_path / "named" / "pixels.npy", x)
    np.savez(tmp_path / "batched.npz", x=x[:, None, :])  # [N, 1, 64]
    for src, n in (("named.npz", 5), ("x.npz", 5), ("one.npy", 5), ("samples", 3), ("named", 5),
                   ("batched.npz", 5)):
        cal = Q.load_calibration(tmp_path / src, DIGITS.path)
        assert list(cal) == ["pixels"] and cal["pixels"].shape == (n, 64), src
        assert cal["pixels"].dtype == np.float32
    np.testing.assert_array_equal(Q.load_calibration(tmp_path / "samples", DIGITS.path)["pixels"],
                                  x[:3])


def test_calibration_errors_name_the_array(tmp_path):
    np.savez(tmp_path / "shape.npz", x=np.zeros((4, 63), np.float32))
    with pytest.raises(UsageError) as e:
        Q.load_calibration(tmp_path / "shape.npz", DIGITS.path)
    msg = str(e.value)
    assert "shape.npz" in msg and "'x'" in msg and "[4, 63]" in msg and "[N, 64]" in msg

    np.savez(tmp_path / "dtype.npz", x=np.zeros((4, 64), np.uint8))
    with pytest.raises(UsageError) as e:
        Q.load_calibration(tmp_path / "dtype.npz", DIGITS.path)
    assert "'x'" in str(e.value) and "uint8" in str(e.value) and "float32" in str(e.value)

    np.savez(tmp_path / "names.npz", image=np.zeros((4, 64), np.float32),
             other=np.zeros((4, 64), np.float32))
    with pytest.raises(UsageError) as e:
        Q.load_calibration(tmp_path / "names.npz", DIGITS.path)
    assert "pixels" in str(e.value) and "image" in str(e.value)

    with pytest.raises(UsageError, match="does not exist"):
        Q.load_calibration(tmp_path / "nope.npz", DIGITS.path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="bad.npz"):
        Q.load_calibration(tmp_path / "bad.npz", DIGITS.path)
    np.savez(tmp_path / "nan.npz", x=np.full((2, 64), np.nan, np.float32))
    with pytest.raises(UsageError, match="NaN"):
        Q.load_calibration(tmp_path / "nan.npz", DIGITS.path)


def test_random_calibration_warns():
    with pytest.warns(Q.CalibrationWarning, match="RANDOM"):
        cal = Q.load_calibration("random", DIGITS.path)
    assert cal["pixels"].shape == (Q.RANDOM_SAMPLES, 64)


# ---- model checks and failures -----------------------------------------------------------------
def test_check_tflite(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Q.check_tflite(tmp_path / "missing.tflite")
    (tmp_path / "m.tflite").write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(ModelError, match="not a TFLite model"):
        Q.check_tflite(tmp_path / "m.tflite")
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        Q.check_tflite(tmp_path / "empty.tflite")
    assert Q.check_tflite(DIGITS.path) == DIGITS.path


def test_quantizer_failure_names_variant_and_op(tmp_path, monkeypatch):
    def boom(model_path, variant, calibration, signature=None):
        raise ValueError("Unsupported operation FULLY_CONNECTED for Algorithm: float_casting.")
    monkeypatch.setattr(Q, "_run_quantizer", boom)
    with pytest.raises(ModelError) as e:
        Q.quantize_model(DIGITS.path, "fp16", tmp_path / "m.tflite")
    assert "fp16" in str(e.value) and "(op FULLY_CONNECTED)" in str(e.value)
    assert not (tmp_path / "m.tflite").exists()


def test_already_quantized_model_is_refused(digits_variants, tmp_path):
    with pytest.raises(ModelError, match="already quantized"):
        Q.quantize_model(digits_variants["int8"].path, "dynamic-int8", tmp_path / "m.tflite")


# ---- cache -------------------------------------------------------------------------------------
def test_cache_hit_does_not_requantize(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = Q.cached_variant(DIGITS.path, "int8", DIGITS.calibration, cache)
    assert not first.cached and first.path.is_relative_to(cache)
    calls = []
    real = Q._run_quantizer
    monkeypatch.setattr(Q, "_run_quantizer", lambda *a: calls.append(a) or real(*a))
    again = Q.cached_variant(DIGITS.path, "int8", DIGITS.calibration, cache)
    assert again.cached and again.path == first.path and again.sha256 == first.sha256
    assert calls == []
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert meta["variant"] == "int8" and meta["sha256"] == first.sha256
    # another calibration set is another key
    other = tmp_path / "other.npz"
    np.savez(other, x=np.load(DIGITS.calibration)["x"][:20])
    third = Q.cached_variant(DIGITS.path, "int8", other, cache)
    assert not third.cached and third.path != first.path and len(calls) == 1
    # non-static variants ignore calibration in the key; fp32 is the model itself
    w = Q.cached_variant(DIGITS.path, "weight-int8", None, cache)
    assert Q.cached_variant(DIGITS.path, "weight-int8", other, cache).path == w.path
    assert Q.cached_variant(DIGITS.path, "fp32", None, cache).path == DIGITS.path
    assert not list(cache.rglob("*.tmp")) and not list(cache.rglob(".*"))


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_BENCH_CACHE", str(tmp_path))
    assert Q.default_cache_dir() == tmp_path / "quantized"
    monkeypatch.delenv("EDGE_BENCH_CACHE")
    assert Q.default_cache_dir() == Path.home() / ".cache" / "edge-bench" / "quantized"


# ---- CLI ---------------------------------------------------------------------------------------
def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def test_cli_quantize_builtin(tmp_path):
    rc, out, err = _cli("quantize", "builtin:digits", "--variants", "fp32,int8,weight-int4",
                        "-o", str(tmp_path / "out"))
    assert rc == 0, err
    for v in ("fp32", "int8", "weight-int4"):
        assert (tmp_path / "out" / f"digits-{v}.tflite").is_file()
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "1.000x" in lines["fp32"] and "static_wi8_ai8" in lines["int8"]
    assert "200 samples" in err


def test_cli_user_model_and_errors(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(DIGITS.path.read_bytes())
    rc, out, err = _cli("quantize", str(model), "--variants", "int8", "-o", str(tmp_path / "o"))
    assert rc == 2 and "--calibration" in err
    rc, out, err = _cli("quantize", str(model), "--variants", "int7", "-o", str(tmp_path / "o"))
    assert rc == 2 and "int7" in err and "weight-int4" in err
    rc, out, err = _cli("quantize", str(tmp_path / "none.tflite"), "-o", str(tmp_path / "o"))
    assert rc == 2 and "does not exist" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc, out, err = _cli("quantize", str(model), "--variants", "int8,fp16", "--calibration",
                            "random", "-o", str(tmp_path / "o"))
    assert rc == 0 and "RANDOM" in err
    assert (tmp_path / "o" / "m-int8.tflite").is_file()


def test_cli_failed_variant_does_not_stop_others(tmp_path, monkeypatch):
    real = Q._run_quantizer

    def flaky(model_path, variant, calibration, signature=None):
        if variant == "weight-int4":
            raise ValueError("Unsupported operation FULLY_CONNECTED for Algorithm: min_max")
        return real(model_path, variant, calibration, signature)
    monkeypatch.setattr(Q, "_run_quantizer", flaky)
    rc, out, err = _cli("quantize", "builtin:digits", "--variants",
                        "weight-int4,fp16,dynamic-int8", "-o", str(tmp_path))
    assert rc == 3
    assert "weight-int4" in err and "FULLY_CONNECTED" in err
    assert "FAILED" in out
    assert (tmp_path / "digits-fp16.tflite").is_file()
    assert (tmp_path / "digits-dynamic-int8.tflite").is_file()
    assert not (tmp_path / "digits-weight-int4.tflite").exists()


def test_cli_help_has_example(capsys):
    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    text = capsys.readouterr().out
    assert "edge-bench quantize model.tflite --variants" in text and "--calibration" in text
