"""--quantizer tflite-converter: Keras / SavedModel input through tf.lite.TFLiteConverter.

The TensorFlow tests run only when `import tensorflow` works (pip install 'edge-bench[tf]', or
tensorflow-cpu); the others (wiring, error messages) always run. The Keras model is the built-in
digits MLP rebuilt in Keras with the very same trained weights, so its converted fp32 must match
builtin:digits and every variant can be scored on the real digits eval set.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from conftest import missing_system

from edge_bench.models import dispatch as D, quantize as Q
from edge_bench.models.builtin import resolve
from edge_bench.errors import ModelError, UsageError

DIGITS = resolve("builtin:digits")
HAVE_TF = importlib.util.find_spec("tensorflow") is not None


BLOCK_TF = """
import sys
class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("No module named 'tensorflow' (hidden by the test)")
        return None
sys.meta_path.insert(0, _NoTensorFlow())
"""


def edge_bench(args: List[str], tmp: Path, hide_tf: bool = False) -> subprocess.CompletedProcess:
    if args[0] == "run":  # a `local` device with its own workdir (and device lock)
        cfg = tmp / "devices.yaml"
        cfg.write_text(f"version: 1\ndevices:\n  local:\n    transport: local\n"
                       f"    workdir: {tmp / 'wd'}\n")
        args = [*args, "--config", str(cfg)]
    env = dict(os.environ)
    env["EDGE_BENCH_CACHE"] = str(tmp / "cache")
    env.pop("EDGE_BENCH_CONFIG", None)
    if hide_tf:  # the machine has TensorFlow; make this process see a machine without it
        block = tmp / "hide-tf"
        block.mkdir(exist_ok=True)
        (block / "sitecustomize.py").write_text(BLOCK_TF)
        env["PYTHONPATH"] = str(block) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", *args], capture_output=True,
                          text=True, env=env, cwd=str(tmp), timeout=600)


# ---- without TensorFlow: wiring and messages ---------------------------------------------------
def test_tf_convert_imports_no_tensorflow() -> None:
    code = ("import sys, edge_bench.models.tf_convert as t, edge_bench.models.quantize as q, edge_bench.models.dispatch, edge_bench.fleet.plan; "
            "assert t.is_tf_model(sys.argv[1]) is False; "
            "assert 'tensorflow' not in sys.modules, 'imported TF'")
    p = subprocess.run([sys.executable, "-c", code, str(DIGITS.path)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_is_tf_model(tmp_path: Path) -> None:
    from edge_bench.models.tf_convert import is_tf_model
    (tmp_path / "m.keras").write_bytes(b"x")
    (tmp_path / "m.h5").write_bytes(b"x")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    assert is_tf_model(tmp_path / "m.keras") and is_tf_model(tmp_path / "m.h5")
    assert is_tf_model(tmp_path / "sm")
    assert not is_tf_model(tmp_path / "empty") and not is_tf_model(DIGITS.path)
    assert not is_tf_model(tmp_path / "missing.keras")


def test_unknown_quantizer_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="valid: ai-edge-quantizer, tflite-converter"):
        D.parse_quantizer("onnx")


@pytest.mark.parametrize("cmd", [
    ["quantize", "builtin:digits", "--variants", "fp32,dynamic-int8", "-o", "out"],
    ["run", "--model", "builtin:digits", "--variants", "fp32", "--no-store"],
])
def test_converter_on_a_tflite_says_it_needs_keras(tmp_path: Path, cmd: List[str]) -> None:
    p = edge_bench(cmd + ["--quantizer", "tflite-converter"], tmp_path)
    assert p.returncode == 2, p.stderr
    assert "tflite-converter converts Keras/SavedModel models" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("quantizer", ["ai-edge-quantizer", "tflite-converter"])
def test_keras_model_without_tensorflow_says_how_to_install(tmp_path: Path,
                                                            quantizer: str) -> None:
    (tmp_path / "m.keras").write_bytes(b"PK\x03\x04 not really")
    p = edge_bench(["quantize", "m.keras", "--variants", "fp32,dynamic-int8", "-o", "out",
                    "--quantizer", quantizer], tmp_path, hide_tf=True)
    assert p.returncode == 2, p.stderr
    assert "need TensorFlow" in p.stderr and "pip install 'edge-bench[tf]'" in p.stderr
    assert "Traceback" not in p.stderr
    p = edge_bench(["run", "--model", "m.keras", "--quantizer", quantizer, "--no-store"],
                   tmp_path, hide_tf=True)
    assert p.returncode == 2 and "pip install 'edge-bench[tf]'" in p.stderr


# ---- with TensorFlow ---------------------------------------------------------------------------
def _digits_weights() -> List[np.ndarray]:
    """[kernel0, bias0, kernel1, bias1, kernel2, bias2] of builtin:digits, Keras layout."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(DIGITS.path.read_bytes()), 0)
    tensors = {(t.name.decode() if isinstance(t.name, bytes) else t.name): t
               for t in model.subgraphs[0].tensors}
    out = []
    for i in range(3):
        for part in ("kernel", "bias"):
            t = tensors[f"dense_{i}/{part}"]
            a = np.frombuffer(bytes(np.asarray(model.buffers[t.buffer].data, np.uint8)),
                              np.float32).reshape(t.shape)
            out.append(a.T.copy() if part == "kernel" else a.copy())
    return out


@pytest.fixture(scope="module")
def tf(tmp_path_factory: pytest.TempPathFactory):
    try:
        import tensorflow as tf
    except ImportError:
        missing_system("needs TensorFlow, the [tf] extra: pip install -e '.[tf]'")
    with pytest.MonkeyPatch.context() as mp:  # fp32 conversions go to the default cache
        mp.setenv("EDGE_BENCH_CACHE", str(tmp_path_factory.mktemp("default-cache")))
        yield tf


@pytest.fixture(scope="module")
def keras_digits(tf, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """builtin:digits as a Keras model (same weights), saved as .keras, .h5 and SavedModel."""
    d = tmp_path_factory.mktemp("keras")
    keras = tf.keras
    model = keras.Sequential([
        keras.Input((64,), name="pixels"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.set_weights(_digits_weights())
    paths = {"keras": d / "digits.keras", "h5": d / "digits.h5", "savedmodel": d / "digits_sm"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.export(str(paths["savedmodel"]), verbose=False)
    return paths


@pytest.fixture(scope="module")
def evalset():
    ev = np.load(DIGITS.eval)
    return {"pixels": ev["x"]}, ev["y"]


@pytest.fixture(scope="module")
def reference(evalset):
    from edge_bench.models.accuracy import reference_outputs
    return reference_outputs(DIGITS.path, evalset[0])


@pytest.fixture(scope="module")
def tfcache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tfcache")


@pytest.fixture(scope="module")
def converted(keras_digits, tfcache) -> Dict[str, "Q.QuantizeResult"]:
    from edge_bench.models.tf_convert import SUPPORTED
    fp32, src = D.float_model(keras_digits["keras"])
    out = {}
    for v in SUPPORTED:
        out[v] = D.make_variant(fp32, v, None, DIGITS.calibration if v in ("int8", "int16x8")
                                else None, quantizer="tflite-converter", source=src,
                                cache_dir=tfcache)
    return out


def test_converted_fp32_equals_builtin_digits(keras_digits, evalset, reference) -> None:
    from edge_bench.models.accuracy import run_model
    for kind in ("keras", "h5", "savedmodel"):
        fp32, src = D.float_model(keras_digits[kind])
        assert src == keras_digits[kind] and fp32.suffix == ".tflite"
        [y] = run_model(fp32, evalset[0])
        np.testing.assert_allclose(y, reference[0], atol=1e-5, err_msg=kind)


def test_every_converter_variant_runs_and_is_not_flagged(converted, evalset, reference) -> None:
    from edge_bench.models.accuracy import run_model, score
    x, y = evalset
    for v, res in converted.items():
        s = score(run_model(res.path, x), reference, y, variant=v)
        assert s["flag"] is None, (v, s)
        assert abs(s["top1"] - s["top1_ref"]) <= 0.01, (v, s)
        assert res.recipe_description.startswith("TFLiteConverter"), res


def test_converter_variant_shapes_sizes_and_io_types(converted) -> None:
    fp32 = converted["fp32"].bytes
    assert converted["int8"].bytes <= 0.4 * fp32
    assert converted["dynamic-int8"].bytes <= 0.4 * fp32
    assert converted["fp16"].bytes <= 0.6 * fp32
    dtypes = {v: Q.model_inputs(r.path)[0].dtype for v, r in converted.items()}
    assert dtypes["int8"] == np.int8 and dtypes["int16x8"] == np.int16
    assert dtypes["fp32"] == dtypes["fp16"] == dtypes["dynamic-int8"] == np.float32
    assert "calibration samples" in converted["int8"].recipe_description


def test_weight_only_variants_are_not_offered_by_the_converter(keras_digits, tfcache) -> None:
    fp32, src = D.float_model(keras_digits["keras"])
    for v in ("weight-int8", "weight-int4"):
        with pytest.raises(ModelError, match="not offered by the TFLite converter"):
            D.make_variant(fp32, v, None, quantizer="tflite-converter", source=src,
                           cache_dir=tfcache)


def test_static_variant_without_calibration_refuses(keras_digits, tfcache) -> None:
    fp32, src = D.float_model(keras_digits["keras"])
    from edge_bench.errors import VariantSkipped  # a deliberate skip: a run does not fail on it
    with pytest.raises(VariantSkipped, match="needs calibration data"):
        D.make_variant(fp32, "int8", None, None, quantizer="tflite-converter", source=src,
                       cache_dir=tfcache)


def test_cache_is_keyed_by_quantizer(keras_digits, tfcache, converted) -> None:
    fp32, src = D.float_model(keras_digits["keras"])
    again = D.make_variant(fp32, "dynamic-int8", None, quantizer="tflite-converter", source=src,
                           cache_dir=tfcache)
    assert again.cached and again.path == converted["dynamic-int8"].path
    aeq = D.make_variant(fp32, "dynamic-int8", None, quantizer="ai-edge-quantizer", source=src,
                         cache_dir=tfcache)
    assert aeq.path != again.path and aeq.sha256 != again.sha256
    assert aeq.recipe_description.startswith("dynamic_wi8_afp32")
    meta = json.loads(Path(again.path).with_suffix(".json").read_text())
    assert meta["quantizer"] == "tflite-converter" and meta["tensorflow"]


def test_quantize_command_with_the_converter(keras_digits, tmp_path: Path) -> None:
    p = edge_bench(["quantize", str(keras_digits["keras"]), "--quantizer", "tflite-converter",
                    "--variants", "all", "--calibration", str(DIGITS.calibration), "-o", "out"],
                   tmp_path)
    assert p.returncode == 3, p.stderr  # weight-int8 / weight-int4: not offered
    written = sorted(f.name for f in (tmp_path / "out").glob("*.tflite"))
    assert written == sorted(f"digits-{v}.tflite" for v in
                             ("fp32", "fp16", "dynamic-int8", "int8", "int16x8"))
    assert "not offered by the TFLite converter" in p.stderr
    assert "TFLiteConverter" in p.stdout and "Traceback" not in p.stderr
    # the converter's chatter (it prints to fd 1) stays out of the table
    assert "fully_quantize" not in p.stdout and "Saved artifact" not in p.stdout


def test_run_with_the_converter_json_to_stdout(keras_digits, tmp_path: Path) -> None:
    p = edge_bench(["run", "--model", str(keras_digits["savedmodel"]), "--quantizer",
                    "tflite-converter", "--variants", "fp32,dynamic-int8,int8,int16x8",
                    "--calibration", str(DIGITS.calibration), "--eval", str(DIGITS.eval),
                    "--runs", "5", "--min-seconds", "0", "--json", "-", "--no-store"], tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # nothing but JSON on stdout, although TF prints
    res = {r["variant"]: r for r in doc["results"]}
    assert set(res) == {"fp32", "dynamic-int8", "int8", "int16x8"}
    for v, r in res.items():
        assert r["status"] == "ok", r["error"]
        assert r["accuracy"]["flag"] is None, (v, r["accuracy"])
    assert abs(res["int8"]["accuracy"]["top1"] - res["fp32"]["accuracy"]["top1"]) <= 0.01
    assert res["int8"]["model_bytes"] <= 0.4 * res["fp32"]["model_bytes"]


def test_keras_input_with_the_default_quantizer(keras_digits, tmp_path: Path) -> None:
    """A Keras model is converted to fp32 by TF, then quantized by ai-edge-quantizer."""
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--model", str(keras_digits["h5"]), "--variants",
                    "fp32,weight-int4,int8", "--calibration", str(DIGITS.calibration),
                    "--eval", str(DIGITS.eval), "--runs", "5", "--min-seconds", "0",
                    "--json", str(out), "--no-store"], tmp_path)
    assert p.returncode == 0, p.stderr
    for r in json.loads(out.read_text())["results"]:
        assert r["status"] == "ok" and r["accuracy"]["flag"] is None, r
