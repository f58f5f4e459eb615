"""QAT-prepared PyTorch models (PT2E `prepare_qat_pt2e`) through litert-torch: real torch,
torchao and litert-torch on the CPU; the digits CNN fine-tuned with QAT, timed and scored on
`local` by the real agent, checked again here with the host's LiteRT.

Each `prepare_qat` exports a dozen conv+bn patterns with dynamo (15-30 s on a loaded 2-core
machine), so the file prepares two models in all: the digits example (through the CLI) and a
conv+batch-norm model (module scope).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

from torch_helpers import env, require_torch, torch_cache  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(900)

QAT_FACTORY = "edge_bench.models.builtin.torch_qat:digits_torch_qat"


@pytest.fixture(scope="module", autouse=True)
def _torch_installed() -> None:
    require_torch()


def _run(env: Path, args: List[str], capsys: pytest.CaptureFixture) -> Dict[str, dict]:
    from edge_bench.cli import main
    out = env.parent / "run.json"
    rc = main(["run", "--config", str(env), "--runs", "5", "--warmup", "1", "--min-seconds", "0",
               "--processes", "1", "--json", str(out), "--no-store", "--quiet"] + args)
    err = capsys.readouterr().err
    assert out.exists(), err[-2000:]
    rows = {r["variant"]: r for r in json.loads(out.read_text())["results"]}
    for v, r in rows.items():
        assert r["status"] == "ok", (v, r["error"], err[-2000:])
        assert not (r["accuracy"] or {}).get("flag"), (v, r["accuracy"])
    assert rc == 0, err[-2000:]
    return rows


def _cached_file(cache: Path, sha256: str) -> Path:
    from edge_bench.hashing import sha256_file
    found = [p for p in cache.rglob("*.tflite") if sha256_file(p) == sha256]
    assert found, f"no cached .tflite with sha256 {sha256}"
    return found[0]


def _litert_top1(path: Path, x: np.ndarray, y: np.ndarray) -> Tuple[float, Any]:
    """Top-1 of a .tflite on the eval set in the host's LiteRT, computed here; int8 inputs
    are quantized with the model's own scale and zero point."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    pred = []
    for xi in x:
        v = xi[None].astype(np.float32)
        if inp["dtype"] == np.int8:
            v = np.clip(np.round(v / scale + zero), -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], v)
        it.invoke()
        pred.append(int(np.argmax(it.get_tensor(out["index"]))))
    return float(np.mean(np.asarray(pred) == y)), inp["dtype"]


# ---- the digits CNN fine-tuned with QAT, through `edge-bench run --quantizer pt2e` -------------
def test_qat_digits_gives_an_int8_row_within_one_point_of_fp32(env: Path, torch_cache: Path,
                                                                capsys) -> None:
    from edge_bench.models.builtin.torch_models import resolve_torch
    ev_path = resolve_torch("builtin:digits-torch").eval
    rows = _run(env, ["--model", QAT_FACTORY, "--quantizer", "pt2e", "--variants", "fp32,int8",
                      "--eval", str(ev_path)], capsys)
    assert set(rows) == {"fp32", "pt2e-int8"}
    fp, q = rows["fp32"], rows["pt2e-int8"]
    assert q["quantizer"] == "pt2e" and "QAT" in q["recipe"], q["recipe"]
    assert "without fake-quantize" in fp["recipe"], fp["recipe"]
    for r in (fp, q):
        assert r["accuracy"]["reference"] == "pytorch fp32"
        assert r["accuracy"]["samples"] == 359
    ref_top1 = fp["accuracy"]["top1_ref"]
    assert ref_top1 >= 0.95, "the QAT fine-tuning broke the float network"
    assert abs(q["accuracy"]["top1"] - fp["accuracy"]["top1"]) <= 0.01
    assert abs(q["accuracy"]["top1"] - ref_top1) <= 0.01
    assert q["model_bytes"] < 0.35 * fp["model_bytes"]
    # independently of edge-bench's scoring: the int8 file itself, in the host's LiteRT
    ev = np.load(ev_path)
    top1, dtype = _litert_top1(_cached_file(torch_cache, q["model_sha256"]), ev["x"], ev["y"])
    assert dtype == np.int8
    assert abs(top1 - q["accuracy"]["top1"]) < 1e-9
    assert abs(top1 - ref_top1) <= 0.01


# ---- a conv + batch-norm model: QAT's conv-bn fusion, the float network, the content hash -----
def _conv_bn(torch: Any) -> Any:
    """A conv + batch-norm + relu + linear model (the conv-bn pattern QAT fuses)."""
    nn = torch.nn
    torch.manual_seed(11)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 6 * 6, 5))


@pytest.fixture(scope="module")
def bn_prepared() -> Tuple[Any, Any, Any]:
    """(float model trained a few steps on [0, 1) inputs so batch norm has statistics,
    its QAT-prepared GraphModule fine-tuned on the same data, eval inputs)."""
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_train

    from edge_bench.models.pytorch import qat
    torch.manual_seed(3)
    data = torch.rand(64, 3, 6, 6)
    target = torch.randint(0, 5, (64,))
    model = _conv_bn(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for s in range(0, 64, 16):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data[s:s + 16]), target[s:s + 16]).backward()
        opt.step()
    model.eval()
    prepared = qat.prepare_qat(model, (data[:2],),
                               dynamic_shapes=({0: torch.export.Dim("batch")},))
    return model, prepared, torch.rand(16, 3, 6, 6)


def test_prepare_qat_restores_the_pattern_exporters(bn_prepared) -> None:
    import importlib
    from edge_bench.models.pytorch import qat
    original = importlib.import_module(qat._PATTERN_USERS[0]).__dict__[qat._PATTERN_FN]
    for name in qat._PATTERN_USERS:
        assert getattr(importlib.import_module(name), qat._PATTERN_FN) is original, name
    assert qat.is_qat_prepared(bn_prepared[1])


def test_float_graph_is_the_float_network_without_fake_quantize(bn_prepared) -> None:
    import torch
    from edge_bench.models.pytorch import qat
    model, prepared, x = bn_prepared
    fg = qat.float_graph(prepared)
    assert not qat.is_qat_prepared(fg)
    assert qat.is_qat_prepared(prepared), "the user's model was changed"
    with torch.no_grad():
        want = model(x).numpy()
        got = fg(x).numpy()
    # not trained since prepare: the same weights, batch norm from its running statistics
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_content_hash_follows_the_learned_ranges(bn_prepared) -> None:
    import torch
    from edge_bench.models.pytorch import qat
    _, prepared, _ = bn_prepared
    h = qat.content_sha256(prepared)
    assert h == qat.content_sha256(qat._copy(prepared))
    other = qat._copy(prepared)
    fq = next(m for m in other.modules() if qat._is_fake_quantize(m))
    with torch.no_grad():
        fq.scale.mul_(2.0)
    assert qat.content_sha256(other) != h


def test_bn_qat_model_converts_to_int8_agreeing_with_its_fake_quant_model(
        bn_prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The QAT conv-bn fusion through convert_pt2e and litert-torch: the int8 .tflite follows
    the fake-quantized PyTorch model it came from (same data distribution as in training)."""
    import torch
    from edge_bench.models.pytorch import TorchModel, qat
    from edge_bench.models.pytorch.convert import convert
    from ai_edge_litert.interpreter import Interpreter
    monkeypatch.setenv("EDGE_BENCH_CACHE", str(tmp_path / "cache"))
    _, prepared, x = bn_prepared
    fg = qat.float_graph(prepared)
    ex = (x[:1],)
    tm = TorchModel("bn-qat", torch.export.export(fg, ex), ex, qat.content_sha256(prepared),
                    prepared)
    res = convert(tm, "pt2e-int8", tmp_path / "q.tflite")
    assert res.variant == "pt2e-int8" and "QAT" in res.recipe_description
    fq_model = qat.to_eval(qat._copy(prepared))
    for m in fq_model.modules():  # compare with the learned ranges, not new observations
        if qat._is_fake_quantize(m):
            m.disable_observer()
    with torch.no_grad():
        want = fq_model(x).numpy()
    it = Interpreter(str(res.path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.int8
    (si, zi), (so, zo) = inp["quantization"], out["quantization"]
    got = []
    for xi in x.numpy():
        it.set_tensor(inp["index"], np.clip(np.round(xi[None] / si + zi), -128, 127)
                      .astype(np.int8))
        it.invoke()
        got.append((it.get_tensor(out["index"]).astype(np.float32) - zo) * so)
    got = np.concatenate(got)
    scale = float(np.abs(want).max())
    assert np.abs(got - want).max() <= 0.1 * scale, (np.abs(got - want).max(), scale)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def test_a_pt2_of_a_qat_model_is_refused_in_one_line(bn_prepared, tmp_path: Path,
                                                       capsys) -> None:
    import torch
    from edge_bench.cli import main
    _, prepared, x = bn_prepared
    from edge_bench.models.pytorch import qat
    path = tmp_path / "qat.pt2"
    torch.export.save(torch.export.export(qat._copy(prepared), (x[:1],)), str(path))
    rc = main(["quantize", str(path), "--quantizer", "pt2e", "--variants", "int8",
               "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "QAT-prepared model saved as a program" in lines[0], err
    assert "factory" in lines[0] and "Traceback" not in err
