"""The one tensor module (edge_bench_agent.tensors), shared by the host (quantize, plan, accuracy)
and the agent: one matching rule, one rounding rule, one model_inputs().

End to end: a real model whose input tensor name differs from its signature name (as every
TF-exported model's does: tensor `serving_default_pixels:0`, signature `pixels`), calibrated and
evaluated with .npz files keyed by the SIGNATURE name, run by the real CLI on the local device
through the real agent artifact.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as s

from edge_bench.errors import UsageError
from edge_bench.models import accuracy, quantize
from edge_bench.models.modelinfo import model_inputs
from edge_bench_agent import tensors

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "host" / "models" / "builtin" / "data"
TENSOR_NAME = "serving_default_pixels:0"


def renamed_digits(out: Path) -> Path:
    """builtin digits with its input TENSOR renamed; the signature still calls it `pixels`."""
    import flatbuffers
    model = s.ModelT.InitFromPackedBuf(bytearray((DATA / "digits.tflite").read_bytes()), 0)
    sub = model.subgraphs[0]
    sub.tensors[sub.inputs[0]].name = TENSOR_NAME.encode()
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))
    return out


def test_quantize_clips_to_the_dtype() -> None:
    assert tensors.quantize(np.array([1e9, -1e9]), np.int8, 0.1, 3).tolist() == [127, -128]
    assert tensors.quantize(np.array([300.0]), np.uint8, 1.0, 0).tolist() == [255]


def write_quantize_model(path: Path, n: int, scale: float, zero_point: int) -> Path:
    """float32 x[1, n] -> QUANTIZE -> int8 q[1, n] with (scale, zero_point): LiteRT's own rule."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import tflite_models as tm
    q = tm._tensor("q", [1, n], 0, ttype=s.TensorType.INT8)
    q.quantization = s.QuantizationParametersT()
    q.quantization.scale = [scale]
    q.quantization.zeroPoint = [zero_point]
    op = s.OperatorT()
    op.opcodeIndex = 0
    op.inputs = [0]
    op.outputs = [1]
    sg = s.SubGraphT()
    sg.tensors = [tm._tensor("x", [1, n], 0), q]
    sg.inputs, sg.outputs, sg.operators, sg.name = [0], [1], [op], "main"
    model = s.ModelT()
    model.version = 3
    model.operatorCodes = [tm._opcode(s.BuiltinOperator.QUANTIZE)]
    model.subgraphs = [sg]
    model.buffers = [tm._buffer()]
    model.signatureDefs = [tm._signature({"x": 0}, {"q": 1})]
    return tm._finish(model, path)


@pytest.mark.parametrize("scale,zero_point", [(1.0, 0), (0.5, -3), (0.25, 7)])
def test_quantize_rounds_exactly_like_litert(tmp_path: Path, scale: float, zero_point: int) -> None:
    """The ONE rounding rule is LiteRT's default (XNNPACK): compared with a real QUANTIZE op on
    exact ties (x / scale = k + 0.5, representable in float32), both signs, and clipping."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    k = np.arange(-6, 6, dtype=np.float32)
    x = np.concatenate([(k + 0.5) * scale, k * scale, [1e4, -1e4]]).astype(np.float32)
    model = write_quantize_model(tmp_path / "q.tflite", len(x), scale, zero_point)

    def litert(resolver: "OpResolverType") -> list:
        it = Interpreter(model_path=str(model), experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x[None, :])
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])[0].tolist()

    assert tensors.quantize(x, np.int8, scale, zero_point).tolist() == litert(OpResolverType.AUTO)
    # the reference kernel rounds ties away from zero: the test would notice the other rule
    assert litert(OpResolverType.BUILTIN_REF) != litert(OpResolverType.AUTO)


def test_no_host_module_keeps_its_own_copy() -> None:
    for rel in ("host/models/accuracy.py", "host/models/quantize.py", "host/fleet/plan.py"):
        text = (REPO / rel).read_text()
        assert not re.search(r"np\.(round|rint)\(", text), rel
        assert "np.load(" not in text, rel
    defs = [p for p in (REPO / "host").rglob("*.py") if "def model_inputs(" in p.read_text()]
    assert [p.relative_to(REPO).as_posix() for p in defs] == ["host/models/modelinfo.py"]


def test_host_matches_arrays_by_signature_name_like_the_agent(tmp_path: Path) -> None:
    model = renamed_digits(tmp_path / "m.tflite")
    (spec,) = model_inputs(model)
    assert spec.name == "pixels" and spec.tensor_name == TENSOR_NAME
    x = np.load(DATA / "digits_eval.npz")["x"][:8]
    for key in ("pixels", TENSOR_NAME, "x"):
        np.savez(tmp_path / "c.npz", **{key: x})
        cal = quantize.load_calibration(tmp_path / "c.npz", model)
        assert list(cal) == ["pixels"] and cal["pixels"].shape == (8, 64), key
        out = accuracy.run_model(model, {key: x})
        assert out[0].shape == (8, 10)
    np.savez(tmp_path / "bad.npz", image=x, other=x)
    with pytest.raises(UsageError, match="pixels"):
        quantize.load_calibration(tmp_path / "bad.npz", model)


def edge_bench(args, tmp_path: Path) -> subprocess.CompletedProcess:
    e = dict(os.environ, EDGE_BENCH_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path / "home"))
    e.pop("EDGE_BENCH_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", *args], capture_output=True,
                          text=True, env=e, cwd=str(tmp_path), timeout=600)


def test_eval_keyed_by_signature_names_runs_end_to_end(tmp_path: Path) -> None:
    model = renamed_digits(tmp_path / "renamed.tflite")
    ev = np.load(DATA / "digits_eval.npz")
    cal = np.load(DATA / "digits_calib.npz")
    np.savez(tmp_path / "eval.npz", pixels=ev["x"], y=ev["y"])        # signature name
    np.savez(tmp_path / "calib.npz", pixels=cal["x"][:64])
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--model", str(model), "--variants", "fp32,int8",
                    "--calibration", str(tmp_path / "calib.npz"), "--eval",
                    str(tmp_path / "eval.npz"), "--runs", "3", "--warmup", "0",
                    "--min-seconds", "0", "--json", str(out), "--no-store"], tmp_path)
    assert p.returncode == 0, p.stderr + p.stdout
    doc = json.loads(out.read_text())
    assert {r["variant"] for r in doc["results"]} == {"fp32", "int8"}
    for r in doc["results"]:
        assert r["status"] == "ok", r
        acc = r["accuracy"]
        assert acc["top1"] > 0.8, acc  # the agent fed the right array (random data scores ~0.1)
