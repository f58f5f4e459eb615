"""Choosing one of several SignatureDefs (`run --signature KEY`, `quantize --signature KEY`).

The model is a real .tflite made with LiteRT's flatbuffer object API: one graph with input
`x` [1, 64] and two heads, an embedding [1, 32] and softmax scores [1, 10]; two SignatureDefs,
`embed` (first) and `classify`, read one head each and name the input and outputs differently
from the tensors. The real CLI runs it on `local` (the real agent, the real LiteRT interpreter).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edge_bench.models.accuracy import run_model
from edge_bench.models.tflite_builder import FILE_IDENTIFIER, ModelBuilder
from test_run_local import edge_bench

EMBED, SCORES = 32, 10


def _sig(key: str, inputs: Dict[str, int], outputs: Dict[str, int]) -> Any:
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = key, 0
    sig.inputs, sig.outputs = [], []
    for names, into in ((inputs, sig.inputs), (outputs, sig.outputs)):
        for name, index in names.items():
            m = schema.TensorMapT()
            m.name, m.tensorIndex = name, index
            into.append(m)
    return sig


@pytest.fixture(scope="module")
def two_sigs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    b = ModelBuilder("two signatures")
    x = b.input("x", [1, 64])
    emb = b.output(b.fully_connected(x, rng.normal(0, 0.2, (EMBED, 64)), np.zeros(EMBED),
                                     name="embed"), "emb_t")
    logits = b.fully_connected(x, rng.normal(0, 0.2, (SCORES, 64)), np.zeros(SCORES),
                               name="head")
    scores = b.output(b.softmax(logits), "scores_t")
    model = b.model()
    model.signatureDefs = [_sig("embed", {"features": x}, {"embedding": emb}),
                           _sig("classify", {"features": x}, {"scores": scores})]
    fbb = flatbuffers.Builder(1 << 16)
    fbb.Finish(model.Pack(fbb), file_identifier=FILE_IDENTIFIER)
    path = tmp_path_factory.mktemp("sig") / "two_sigs.tflite"
    path.write_bytes(bytes(fbb.Output()))
    return path


def test_host_reads_the_chosen_signatures_outputs(two_sigs: Path) -> None:
    data = {"features": np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32)}
    (emb,) = run_model(two_sigs, data, signature="embed")
    (scores,) = run_model(two_sigs, data, signature="classify")
    assert emb.shape == (3, EMBED) and scores.shape == (3, SCORES)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-4)  # the softmax head
    assert len(run_model(two_sigs, data)) == 2  # no signature: every graph output


def _run(model: Path, tmp_path: Path, *extra: str) -> Any:
    out = tmp_path / "out.json"
    p = edge_bench(["run", "--no-store", "--model", str(model), "--variants", "fp32,dynamic-int8",
                    "--runs", "2", "--warmup", "0", "--min-seconds", "0", "--processes", "1",
                    "--json", str(out), *extra], tmp_path)
    return p, out


@pytest.mark.parametrize("key,name,other", [("embed", "embedding", "scores"),
                                            ("classify", "scores", "embedding"),
                                            (None, "embedding", "scores")])
def test_run_uses_the_chosen_signature(two_sigs: Path, tmp_path: Path, key: Any, name: str,
                                       other: str) -> None:
    """fp32 and dynamic-int8 timed through the chosen signature (default: the first, `embed`):
    its input name, its one output, scored against the fp32 reference of that output."""
    p, out = _run(two_sigs, tmp_path, *(["--signature", key] if key else []))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    results = {r["variant"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"fp32", "dynamic-int8"}
    for v, r in results.items():
        assert r["status"] == "ok", (v, r["error"])
        assert r["signature"] == (key or "embed")
        outs = r["accuracy"]["outputs"]
        assert [o["name"] for o in outs] == [name], outs  # only that signature's output
        assert outs[0]["cosine"] > (0.999 if v == "fp32" else 0.9)
        assert other not in json.dumps(r["accuracy"])


def test_quantize_calibrates_through_the_chosen_signature(two_sigs: Path,
                                                          tmp_path: Path) -> None:
    """int8 needs calibration through a signature: the chosen one names the inputs and is
    the key of the quantizer's calibration; each file runs and its head stays right."""
    data = {"features": np.random.default_rng(1).normal(size=(4, 64)).astype(np.float32)}
    for key, want in (("embed", (4, EMBED)), ("classify", (4, SCORES))):
        d = tmp_path / key
        p = edge_bench(["quantize", str(two_sigs), "--variants", "int8", "--calibration",
                        "random", "--signature", key, "-o", str(d)], tmp_path)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        assert f"through signature {key}" in p.stderr
        q = d / "two_sigs-int8.tflite"
        (y,) = run_model(q, data, signature=key)
        (ref,) = run_model(two_sigs, data, signature=key)
        assert y.shape == ref.shape == want
        cos = float(np.dot(y.ravel(), ref.ravel())
                    / (np.linalg.norm(y) * np.linalg.norm(ref) + 1e-12))
        assert cos > 0.9, (key, cos)


@pytest.mark.parametrize("cmd", ["run", "quantize"])
def test_unknown_signature_is_one_clear_line(two_sigs: Path, tmp_path: Path, cmd: str) -> None:
    args = (["run", "--no-store", "--model", str(two_sigs)] if cmd == "run"
            else ["quantize", str(two_sigs), "-o", str(tmp_path / "q")])
    p = edge_bench(args + ["--signature", "nope"], tmp_path)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert "two_sigs.tflite" in lines[0] and "'nope'" in lines[0]
    assert "embed, classify" in lines[0] and "--signature" in lines[0]


def test_agent_task_field_signature(two_sigs: Path) -> None:
    """The job field: validated by the protocol; a key the model lacks fails the task naming
    the file, the key and the keys there are (the real LiteRT interpreter)."""
    from edge_bench_agent import protocol
    from edge_bench_agent.runtime import load_runtime
    from edge_bench_agent.task import open_interpreter
    ref = protocol.file_ref("m.tflite", None)
    assert protocol.build_task("t", ref)["signature"] is None
    assert protocol.build_task("t", ref, signature="classify")["signature"] == "classify"
    with pytest.raises(protocol.AgentError, match="'signature'"):
        protocol.build_task("t", ref, signature="")
    rt = load_runtime("auto")
    with pytest.raises(protocol.AgentError) as e:
        open_interpreter(rt, str(two_sigs), 1, True, None, "nope")
    assert e.value.type == "ModelLoadError"
    assert "two_sigs.tflite" in e.value.message and "embed, classify" in e.value.message
    interp = open_interpreter(rt, str(two_sigs), 1, True, None, "classify")[0]
    from edge_bench_agent.tensors import model_inputs, output_details
    assert [d["signature_name"] for d in model_inputs(interp, "classify")] == ["features"]
    assert [list(d["shape"]) for d in output_details(interp, "classify")] == [[1, SCORES]]
