"""PyTorch models in: real torch + litert-torch conversions on the CPU, PT2E and ai-edge-quantizer
variants timed and scored on `local` by the real agent, against the PyTorch model itself.

Needs the [torch] extra (skipped without it, failed on CI). Conversions are cached for the
session (EDGE_BENCH_CACHE), so each is made once.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from torch_helpers import (BUILTIN, env, require_torch,  # noqa: F401 (fixtures)
                           torch_cache)

pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module", autouse=True)
def _torch_installed() -> None:
    require_torch()


def _unstale_log_handlers() -> None:
    """torch's log handlers keep the sys.stderr of the test that first imported torch: pytest's
    capture, closed since. A record torch logs then prints "--- Logging error --- Traceback"
    to this test's stderr (a harness artifact: the real CLI's stderr stays open). Point them at
    the current stderr."""
    import logging
    for lg in [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values()
                                       if isinstance(v, logging.Logger)]:
        for h in lg.handlers:
            stream = getattr(h, "stream", None)
            if isinstance(h, logging.StreamHandler) and getattr(stream, "closed", False):
                h.setStream(sys.stderr)


def _cli(args: List[str], capsys: pytest.CaptureFixture) -> tuple:
    from edge_bench.cli import main
    _unstale_log_handlers()
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _run(env: Path, model: str, extra: List[str], capsys) -> Dict[str, dict]:
    out = env.parent / "run.json"
    rc, so, se = _cli(["run", "--config", str(env), "--model", model, "--runs", "5",
                       "--warmup", "1", "--min-seconds", "0", "--processes", "1",
                       "--json", str(out), "--no-store", "--quiet"] + extra, capsys)
    assert out.exists(), se
    doc = json.loads(out.read_text())
    rows = {r["variant"]: r for r in doc["results"]}
    for v, r in rows.items():
        assert r["status"] == "ok", (v, r["error"], se[-2000:])
        assert not (r["accuracy"] or {}).get("flag"), (v, r["accuracy"])
    assert rc == 0, se
    return rows


def _pytorch_top1(pt2: Path, eval_npz: Path) -> float:
    """Top-1 of the PyTorch model itself, computed here (independently of edge-bench)."""
    import torch
    m = torch.export.load(str(pt2)).module()
    ev = np.load(eval_npz)
    with torch.no_grad():
        pred = [int(m(torch.from_numpy(x[None])).argmax()) for x in ev["x"]]
    return float(np.mean(np.asarray(pred) == ev["y"]))


# ---- the built-in PyTorch model through both routes, one table ---------------------------------
def test_builtin_both_routes_side_by_side_scored_against_pytorch(env: Path, capsys) -> None:
    from edge_bench.models.builtin.torch_models import resolve_torch
    rows = _run(env, BUILTIN, ["--quantizer", "ai-edge-quantizer,pt2e",
                               "--variants", "fp32,int8,dynamic-int8"], capsys)
    assert set(rows) == {"fp32", "int8", "dynamic-int8", "pt2e-int8", "pt2e-dynamic-int8"}
    assert rows["fp32"]["quantizer"] is None
    assert rows["int8"]["quantizer"] == rows["dynamic-int8"]["quantizer"] == "ai-edge-quantizer"
    assert rows["pt2e-int8"]["quantizer"] == rows["pt2e-dynamic-int8"]["quantizer"] == "pt2e"
    assert "PT2E static" in rows["pt2e-int8"]["recipe"]
    assert "200 calibration samples" in rows["pt2e-int8"]["recipe"]
    # two routes really made two different files
    assert rows["int8"]["model_sha256"] != rows["pt2e-int8"]["model_sha256"]

    b = resolve_torch(BUILTIN)
    torch_top1 = _pytorch_top1(b.path, b.eval)
    assert torch_top1 >= 0.95
    fp32 = rows["fp32"]
    for v, r in rows.items():
        acc = r["accuracy"]
        assert acc["reference"] == "pytorch fp32", v
        assert acc["top1_ref"] == pytest.approx(torch_top1), v  # the reference IS PyTorch
        assert acc["samples"] == len(np.load(b.eval)["y"])
    # the conversion's own error: LiteRT fp32 vs PyTorch fp32
    assert fp32["accuracy"]["agreement_vs_ref"] == 1.0
    assert fp32["accuracy"]["max_abs_err"] < 1e-3, fp32["accuracy"]
    assert fp32["accuracy"]["snr_db"] > 60, fp32["accuracy"]
    for v in ("int8", "pt2e-int8", "dynamic-int8", "pt2e-dynamic-int8"):
        acc = rows[v]["accuracy"]
        assert acc["top1"] >= fp32["accuracy"]["top1"] - 0.01, (v, acc)  # within 1 point
        assert 0 < acc["max_abs_err"], v  # quantized for real
        assert rows[v]["model_bytes"] < 0.4 * fp32["model_bytes"], v
    assert fp32["runtime"]["name"] == "ai-edge-litert" and fp32["runs"] >= 5


def test_pt2e_alone_gives_fp32_and_int8(env: Path, capsys) -> None:
    rows = _run(env, BUILTIN, ["--quantizer", "pt2e"], capsys)
    assert set(rows) == {"fp32", "pt2e-int8"}
    assert rows["pt2e-int8"]["accuracy"]["top1"] >= rows["fp32"]["accuracy"]["top1"] - 0.01


# ---- a user's own .pt2 and factory ------------------------------------------------------------
def _small_model(env: Path):
    import importlib
    return importlib.import_module("usermodels").small()


def test_users_pt2_runs_through_the_same_command(env: Path, capsys) -> None:
    import torch
    model, example = _small_model(env)
    pt2 = env.parent / "mine.pt2"
    torch.export.save(torch.export.export(model, example), str(pt2))
    rng = np.random.default_rng(3)
    x = rng.random((40, 3, 6, 6), dtype=np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    np.savez(env.parent / "cal.npz", x=x[:20])
    np.savez(env.parent / "ev.npz", x=x[20:], y=logits[20:].argmax(1))
    rows = _run(env, str(pt2), ["--quantizer", "pt2e", "--variants", "fp32,int8,dynamic-int8",
                                "--calibration", "cal.npz", "--eval", "ev.npz"], capsys)
    assert set(rows) == {"fp32", "pt2e-int8", "pt2e-dynamic-int8"}
    fp32 = rows["fp32"]["accuracy"]
    assert fp32["reference"] == "pytorch fp32"
    assert fp32["top1_ref"] == 1.0  # labels are the PyTorch model's own argmax
    assert fp32["agreement_vs_ref"] == 1.0 and fp32["max_abs_err"] < 1e-4


def test_two_inputs_two_outputs_through_pt2e_scored_per_output(env: Path, capsys) -> None:
    """Inputs matched by litert-torch's names (args_0, args_1; the files list them the other way
    round), both outputs scored against the PyTorch model's."""
    rng = np.random.default_rng(8)
    x, z = (rng.random((60, 4), dtype=np.float32) for _ in range(2))
    np.savez(env.parent / "cal2.npz", args_1=z[:40], args_0=x[:40])
    np.savez(env.parent / "ev2.npz", args_1=z[40:], args_0=x[40:])
    rows = _run(env, "usermodels:two_in_two_out", ["--quantizer", "pt2e", "--variants",
                                                   "fp32,int8,dynamic-int8", "--calibration",
                                                   "cal2.npz", "--eval", "ev2.npz"], capsys)
    assert set(rows) == {"fp32", "pt2e-int8", "pt2e-dynamic-int8"}
    for v, r in rows.items():
        outs = r["accuracy"]["outputs"]
        assert len(outs) == 2 and r["accuracy"]["samples"] == 20, (v, r["accuracy"])
        floor = 60 if v == "fp32" else 20  # conversion: float rounding; int8: quantization
        assert all(o["snr_db"] > floor for o in outs), (v, outs)
    assert all(o["max_abs_err"] < 1e-4 for o in rows["fp32"]["accuracy"]["outputs"])
    assert all(o["max_abs_err"] > 0 for o in rows["pt2e-int8"]["accuracy"]["outputs"])


def test_an_integer_constant_breaks_pt2e_static_with_a_clear_line(env: Path, capsys) -> None:
    """`2 * x` instead of `2.0 * x`: PT2E's HistogramObserver cannot observe the int64
    constant; the row's error says so and what to write instead, the other rows still run."""
    x = np.random.default_rng(9).random((8, 4), dtype=np.float32)
    np.savez(env.parent / "cal3.npz", args_0=x, args_1=x[::-1].copy())
    rc, so, se = _cli(["quantize", "usermodels:int_constant", "--quantizer", "pt2e",
                       "--variants", "int8,dynamic-int8", "--calibration", "cal3.npz",
                       "-o", str(env.parent / "out3")], capsys)
    assert rc == 3 and "Traceback" not in se, se
    assert "histogram_cpu" in se and "write it as a float (`2.0 * x`)" in se, se
    assert (env.parent / "out3" / "usermodels_int_constant-pt2e-dynamic-int8.tflite").is_file()


def test_a_pt2e_variant_that_quantized_nothing_is_an_error(env: Path, capsys,
                                                          monkeypatch) -> None:
    """No silent no-op on the PT2E route either: a conversion that hands back the float model
    (what a litert-torch that dropped the quantizer's annotations would write) is an error
    naming the variant, not a pt2e-dynamic-int8 file that is fp32 under another name. The
    conversion is the real one, only asked for fp32; the check is docs/real-models.md's."""
    from edge_bench.models.pytorch import convert as C
    real = C._convert

    def float_only(tm, base, out_path, cal):  # type: ignore[no-untyped-def]
        return real(tm, "fp32", out_path, None)

    monkeypatch.setattr(C, "_convert", float_only)
    out = env.parent / "out-noop"
    rc, so, se = _cli(["quantize", "usermodels:small", "--quantizer", "pt2e",
                       "--variants", "dynamic-int8", "-o", str(out)], capsys)
    assert rc == 3 and "Traceback" not in se, se
    assert "variant pt2e-dynamic-int8 of usermodels:small" in se, se
    assert "unchanged" in se or "no INT8 weights" in se, se
    assert not (out / "usermodels_small-pt2e-dynamic-int8.tflite").exists()


def test_quantize_command_converts_a_factory(env: Path, capsys) -> None:
    """`edge-bench quantize usermodels:small --quantizer pt2e`: the files load in LiteRT, fp32
    computes what the PyTorch model computes, pt2e-int8 has int8 inputs (full integer)."""
    import torch
    from ai_edge_litert.interpreter import Interpreter
    out = env.parent / "out"
    rc, so, se = _cli(["quantize", "usermodels:small", "--quantizer", "pt2e",
                       "--variants", "fp32,int8,dynamic-int8", "--calibration", "random",
                       "-o", str(out)], capsys)
    assert rc == 0, se
    files = {p.name for p in out.iterdir()}
    assert files == {"usermodels_small-fp32.tflite", "usermodels_small-pt2e-int8.tflite",
                     "usermodels_small-pt2e-dynamic-int8.tflite"}, files
    model, (ex,) = _small_model(env)
    x = np.random.default_rng(1).random((1, 3, 6, 6), dtype=np.float32)
    it = Interpreter(model_path=str(out / "usermodels_small-fp32.tflite"))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    it8 = Interpreter(model_path=str(out / "usermodels_small-pt2e-int8.tflite"))
    assert it8.get_input_details()[0]["dtype"] == np.int8
    assert "pt2e-int8" in so and "PT2E static" in so


# ---- bad input: one line, exit 2, never a traceback --------------------------------------------
@pytest.mark.parametrize("factory, words", [
    ("usermodels:unsupported", ["unsupported op aten.histc"]),
    ("usermodels:wrong_inputs", ["example inputs ([1, 32] float32) do not fit the model",
                                 "mat1 and mat2"]),
    ("usermodels:raises", ["the factory raised ValueError: checkpoint weights.pt not found"]),
    ("usermodels:not_a_pair", ["must return (nn.Module, example_inputs)"]),
    ("usermodels:nothing", ["has no function 'nothing'"]),
    ("nosuchmodule:make", ["cannot import module 'nosuchmodule'"]),
    ("usermodels:data_dependent", ["torch.export failed"]),
    ("usermodels:qat_prepared", ["eager-mode QAT model", "only PT2E QAT models convert",
                                 "prepare_qat"]),
])
def test_bad_pytorch_models_fail_with_one_line(env: Path, capsys, factory: str,
                                               words: List[str]) -> None:
    rc, so, se = _cli(["run", "--config", str(env), "--model", factory, "--no-store",
                       "--quiet"], capsys)
    assert rc == 2, se
    lines = [ln for ln in se.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in se, se
    assert lines[0].startswith("edge-bench: error: --model " + factory), lines
    for w in words:
        assert w in lines[0], lines[0]


def test_pt2e_on_a_tflite_model_is_refused(env: Path, capsys) -> None:
    rc, so, se = _cli(["run", "--config", str(env), "--model", "builtin:digits",
                       "--quantizer", "pt2e", "--no-store"], capsys)
    assert rc == 2 and "--quantizer pt2e quantizes PyTorch models" in se, se


def test_not_a_pt2_file(env: Path, capsys) -> None:
    bad = env.parent / "broken.pt2"
    bad.write_bytes(b"not a zip")
    rc, so, se = _cli(["run", "--config", str(env), "--model", str(bad), "--no-store"], capsys)
    assert rc == 2 and "is not a torch.export program" in se and "Traceback" not in se, se


def test_without_the_extra_one_line_says_what_to_install(env: Path) -> None:
    """A Python where `import torch` fails (as without the extra): exit 2 and the pip line."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edge_bench.cli import main\n"
            f"sys.exit(main(['run', '--config', {str(env)!r}, '--model', {BUILTIN!r},"
            " '--no-store']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2, p.stderr
    # `devices from FILE` is run's documented note of the devices.yaml in use (docs/security.md)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("devices from ")]
    assert len(lines) == 1, p.stderr
    assert "pip install 'edge-bench[torch]'" in lines[0] and "Traceback" not in p.stderr
