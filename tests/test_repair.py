"""Repair of models from the wild (host/models/repair.py, baseline.py, variant_check.py).

Fast and offline: builtin:mobilenet is rewritten into what old-converter fp16 files look like
(weights as float16 constants feeding DEQUANTIZE ops, op codes only in deprecated_builtin_code,
no SignatureDef), then repaired. The real files are in tests/test_real_models.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edge_bench.errors import ModelError, VariantSkipped
from edge_bench.models import repair as rep
from edge_bench.models.accuracy import run_model
from edge_bench.models.baseline import float_baseline, inspect_model, model_baseline
from edge_bench.models.builtin import resolve
from edge_bench.models.quantize import quantize_model
from edge_bench.models.unlabeled import random_inputs
from edge_bench.models.variant_check import check_changed

MOBILENET = resolve("builtin:mobilenet").path


def make_wild(src: Path, out: Path, fp16: bool = True) -> Path:
    """`src` as an old converter would write it: fp16 weights + DEQUANTIZE (when fp16), op codes
    in deprecated_builtin_code only, no signature."""
    m = schema.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    sg = m.subgraphs[0]
    if fp16:
        deq = len(m.operatorCodes)
        oc = schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = \
            schema.BuiltinOperator.DEQUANTIZE, schema.BuiltinOperator.DEQUANTIZE, 1
        m.operatorCodes.append(oc)
        new_ops = []
        for op in sg.operators:
            op.inputs = [int(i) for i in op.inputs]
            for k, i in enumerate(op.inputs):
                t = sg.tensors[i] if i >= 0 else None
                if t is None or t.type != schema.TensorType.FLOAT32 or \
                        m.buffers[t.buffer].data is None or len(t.shape) < 2:
                    continue
                half = schema.TensorT()
                half.name, half.shape, half.type = t.name + b"_fp16", t.shape, \
                    schema.TensorType.FLOAT16
                b = schema.BufferT()
                b.data = np.frombuffer(bytes(m.buffers[t.buffer].data), np.float32
                                       ).astype(np.float16).view(np.uint8)
                m.buffers.append(b)
                half.buffer = len(m.buffers) - 1
                sg.tensors.append(half)
                full = schema.TensorT()
                full.name, full.shape, full.type, full.buffer = \
                    t.name + b"_dequantized", t.shape, schema.TensorType.FLOAT32, 0
                sg.tensors.append(full)
                d = schema.OperatorT()
                d.opcodeIndex, d.inputs, d.outputs = deq, [len(sg.tensors) - 2], \
                    [len(sg.tensors) - 1]
                new_ops.append(d)
                op.inputs[k] = len(sg.tensors) - 1
            new_ops.append(op)
        sg.operators = new_ops
    for oc in m.operatorCodes:
        oc.deprecatedBuiltinCode, oc.builtinCode = oc.builtinCode, 0
    m.signatureDefs = []
    out.write_bytes(rep.dump(m))
    return out


@pytest.fixture(scope="module")
def wild(tmp_path_factory) -> Path:
    return make_wild(MOBILENET, tmp_path_factory.mktemp("wild") / "wild.tflite")


def test_kinds(wild: Path, tmp_path: Path) -> None:
    assert inspect_model(MOBILENET).kind == "float32"
    facts = inspect_model(wild)
    assert facts.kind == "fp16-stored" and facts.signatures == () and not facts.quantized
    assert inspect_model(make_wild(MOBILENET, tmp_path / "old.tflite", fp16=False)).kind == "float32"


def test_repair_is_exact_and_says_what_it_did(wild: Path, tmp_path: Path) -> None:
    base = float_baseline(wild, tmp_path)
    assert base.derived and base.given == wild and base.path.parent == tmp_path
    text = base.recipe()
    assert text.startswith("float32 baseline derived from wild.tflite (fp16-stored")
    assert "op codes normalized" in text and "fp16 constants folded" in text
    assert "serving_default signature added" in text
    fixed = inspect_model(base.path)
    assert fixed.kind == "float32" and fixed.signatures == ("serving_default",)
    m = schema.ModelT.InitFromPackedBuf(base.path.read_bytes(), 0)
    assert all(oc.builtinCode == max(oc.builtinCode, oc.deprecatedBuiltinCode)
               for oc in m.operatorCodes)
    assert not any(t.type == schema.TensorType.FLOAT16 for t in m.subgraphs[0].tensors)
    # exactly what the file as given computes (fp16 -> fp32 is exact), on random inputs
    x = random_inputs(wild, n=3, seed=2)
    for a, b in zip(run_model(wild, x), run_model(base.path, x)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * max(1.0, float(np.abs(a).max())))
    # cached by the given file's sha256: the second call does not write again
    mtime = base.path.stat().st_mtime_ns
    assert float_baseline(wild, tmp_path).path.stat().st_mtime_ns == mtime


def test_a_clean_float_model_is_its_own_baseline(tmp_path: Path) -> None:
    base = float_baseline(MOBILENET, tmp_path)
    assert not base.derived and base.path == MOBILENET
    assert base.recipe().startswith("none")


def test_variants_of_the_repaired_model_change(wild: Path, tmp_path: Path) -> None:
    base = float_baseline(wild, tmp_path)
    size = base.path.stat().st_size
    for v in ("fp16", "dynamic-int8", "weight-int8"):
        r = quantize_model(base.path, v, tmp_path / f"{v}.tflite")
        assert r.bytes < 0.6 * size, (v, r.bytes, size)


def test_a_no_op_variant_is_an_error(tmp_path: Path) -> None:
    data = MOBILENET.read_bytes()
    with pytest.raises(ModelError, match="unchanged \\(same bytes\\)"):
        check_changed("weight-int8", "m.tflite", data, data)
    with pytest.raises(ModelError, match="no size change"):
        check_changed("dynamic-int8", "m.tflite", data, data + b"\0" * 16)
    fp16 = quantize_model(MOBILENET, "fp16", tmp_path / "fp16.tflite").path.read_bytes()
    with pytest.raises(ModelError, match="no INT8 weights"):  # smaller, but not int8
        check_changed("weight-int8", "m.tflite", data, fp16)
    dyn = quantize_model(MOBILENET, "dynamic-int8", tmp_path / "dyn.tflite").path.read_bytes()
    with pytest.raises(ModelError, match="no INT8 activations"):  # int8 weights, float acts
        check_changed("int8", "m.tflite", data, dyn)
    check_changed("dynamic-int8", "m.tflite", data, dyn)  # the real thing passes


def test_already_quantized_model_is_given_not_requantized(tmp_path: Path) -> None:
    int8 = quantize_model(MOBILENET, "int8", tmp_path / "int8.tflite",
                          resolve("builtin:mobilenet").calibration).path
    facts = inspect_model(int8)
    assert facts.kind == "int8" and facts.quantized
    assert model_baseline(int8).path == int8  # no float baseline: timed as given
    with pytest.raises(ModelError, match="already quantized"):
        float_baseline(int8, tmp_path)
    with pytest.raises(VariantSkipped, match="already quantized"):
        quantize_model(int8, "dynamic-int8", tmp_path / "again.tflite")


def test_densify_matches_tflite_csr() -> None:
    dense = np.array([[0, 1.5, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]], np.float32)

    class Dim:
        def __init__(self, fmt, size=0, seg=None, idx=None):
            self.format, self.denseSize = fmt, size
            self.arraySegments = type("V", (), {"values": seg})() if seg is not None else None
            self.arrayIndices = type("V", (), {"values": idx})() if idx is not None else None

    class Sp:
        traversalOrder, blockMap = [0, 1], None
        dimMetadata = [Dim(0, 3), Dim(1, 0, [0, 2, 2, 4], [1, 3, 0, 3])]
    out = rep.densify(np.array([1.5, 2, 3, 4], np.float32), [3, 4], Sp)
    np.testing.assert_array_equal(out, dense)


def test_cli_defaults_on_wild_and_quantized_models_exit_0(wild: Path, tmp_path: Path) -> None:
    """`edge-bench run --model X.tflite` with the defaults and no calibration data: fp32 (the
    derived baseline) and dynamic-int8 are timed and scored, int8 is a deliberate skip; an
    already-quantized file is timed as given; nothing failed, so exit 0."""
    import json
    from test_run_local import edge_bench
    int8 = quantize_model(MOBILENET, "int8", tmp_path / "int8.tflite",
                          resolve("builtin:mobilenet").calibration).path
    out = tmp_path / "out.json"
    p = edge_bench(["run", "--no-store", "--model", str(wild), "--model", str(int8),
                    "--runs", "2", "--warmup", "0", "--min-seconds", "0", "--processes", "1",
                    "--json", str(out)], tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = {(Path(r["model"]).name, r["variant"]): r for r in json.loads(out.read_text())["results"]}
    fp32 = res[("wild.tflite", "fp32")]
    assert fp32["status"] == "ok" and fp32["recipe"].startswith("float32 baseline derived from")
    assert fp32["accuracy"]["eval_source"].startswith("random inputs")
    dyn = res[("wild.tflite", "dynamic-int8")]
    assert dyn["status"] == "ok" and dyn["model_bytes"] < 0.5 * fp32["model_bytes"]
    assert dyn["accuracy"]["outputs"] and dyn["accuracy"]["outputs"][0]["cosine"] > 0.5
    skip = res[("wild.tflite", "int8")]
    assert skip["status"] == "skipped" and "needs calibration data" in skip["error"]
    assert res[("int8.tflite", "given")]["status"] == "ok"
    assert res[("int8.tflite", "given")]["recipe"].startswith("the file as given")
    for v in ("fp32", "dynamic-int8", "int8"):
        assert res[("int8.tflite", v)]["status"] == "skipped"
        assert "already quantized" in res[("int8.tflite", v)]["error"]
    assert "needs calibration data" in p.stdout  # the reason is shown


def test_per_output_similarity_and_collapse() -> None:
    from edge_bench.analysis.verdict import snr_drop
    from edge_bench.models.accuracy import score
    rng = np.random.default_rng(0)
    ref = [rng.normal(size=(4, 10)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)]
    close = [r + 0.01 * rng.normal(size=r.shape).astype(np.float32) for r in ref]
    s = score(close, ref, unlabeled=True, output_names=["scores", "boxes"])
    assert s["flag"] is None and [o["name"] for o in s["outputs"]] == ["scores", "boxes"]
    assert all(o["snr_db"] > 30 and o["cosine"] > 0.999 for o in s["outputs"])
    const = [np.full_like(ref[0], 0.5), close[1]]
    assert "scores: constant output 0.5" in score(const, ref, unlabeled=True,
                                                  output_names=["scores", "boxes"])["flag"]
    nan = [close[0], np.full_like(ref[1], np.nan)]
    assert "non-finite" in score(nan, ref, unlabeled=True)["flag"]
    noisy = [r + 2 * rng.normal(size=r.shape).astype(np.float32) for r in ref]
    bad = score(noisy, ref, unlabeled=True)
    assert bad["flag"] and "floor 3 dB" in bad["flag"]
    assert snr_drop(s, bad) and snr_drop(s, s) is None and snr_drop(bad, s) is None


def test_random_inputs_follow_dtype_and_range() -> None:
    """Token ids, masks, quantized and float inputs, a dynamic dim: one rule (the agent's)."""
    from edge_bench.errors import ModelError
    from edge_bench.models.quantize import InputSpec, random_calibration
    specs = [InputSpec("ids", "ids:0", (1, -1), np.dtype(np.int32), 0),
             InputSpec("mask", "mask:0", (1, 8), np.dtype(np.bool_), 1),
             InputSpec("q", "q:0", (1, 4), np.dtype(np.int8), 2),
             InputSpec("x", "x:0", (1, 3, 3), np.dtype(np.float32), 3)]
    a = random_calibration(specs, n=5, seed=0)
    assert a["ids"].shape == (5, 1) and a["ids"].dtype == np.int32
    assert 0 <= a["ids"].min() and a["ids"].max() < 100
    assert a["mask"].dtype == np.bool_ and a["mask"].shape == (5, 8)
    assert a["q"].dtype == np.int8 and a["x"].dtype == np.float32
    assert -1 <= a["x"].min() and a["x"].max() < 1
    b = random_calibration(specs, n=5, seed=0)
    assert all(np.array_equal(a[k], b[k]) for k in a)  # seeded
    with pytest.raises(ModelError, match="input 's'"):
        random_calibration([InputSpec("s", "s", (1,), np.dtype(object), 0)], n=1)


def test_cli_reference_scores_an_already_quantized_model(tmp_path: Path) -> None:
    """--reference FLOAT.tflite: the float model is the fp32 row and what variants are made from;
    the int8 file as given is timed and scored against it."""
    import json
    from test_run_local import edge_bench
    int8 = quantize_model(MOBILENET, "int8", tmp_path / "int8.tflite",
                          resolve("builtin:mobilenet").calibration).path
    out = tmp_path / "out.json"
    p = edge_bench(["run", "--no-store", "--model", str(int8), "--reference", str(MOBILENET),
                    "--variants", "fp32,weight-int8", "--runs", "2", "--warmup", "0",
                    "--min-seconds", "0", "--processes", "1", "--json", str(out)], tmp_path)
    res = {r["variant"]: r for r in json.loads(out.read_text())["results"]}
    assert set(res) == {"given", "fp32", "weight-int8"}, p.stderr[-2000:]
    assert res["fp32"]["status"] == "ok" and res["fp32"]["model_sha256"] != \
        res["given"]["model_sha256"]
    assert res["fp32"]["recipe"] == "float reference mobilenet.tflite for int8.tflite"
    given = res["given"]
    assert given["status"] == "ok" and given["accuracy"]["outputs"]
    snr = given["accuracy"]["outputs"][0]["snr_db"]
    assert snr is not None and snr < 60  # an int8 model is not the float one
    assert res["weight-int8"]["status"] == "ok"
    q = edge_bench(["run", "--no-store", "--model", str(int8), "--model", str(MOBILENET),
                    "--reference", str(MOBILENET)], tmp_path)
    assert q.returncode == 2 and "--reference given 1 times for 2 --model(s)" in q.stderr
