"""`edge-bench compile` (ahead-of-time NPU compile with ai-edge-litert's AOT tools) and the AOT
file timed with `run --accelerator npu` next to the JIT compile of its float model, on the real
Intel OpenVINO plugin + dispatch with OpenVINO's CPU device standing in for the NPU."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_accelerators import config, need_stand_ins, rows, run, stand_in_env  # noqa: E402
from test_run_local import edge_bench  # noqa: E402

from edge_bench.models.baseline import inspect_model  # noqa: E402
from edge_bench.models.builtin import resolve  # noqa: E402


def compile_(tmp: Path, model: str, out: Path, target: str = "intel_openvino"):
    return edge_bench(["compile", model, "--target", target, "-o", str(out)], tmp, timeout=600)


def test_compile_writes_a_dispatch_model_cached_by_content(tmp_path: Path) -> None:
    need_stand_ins()
    first = compile_(tmp_path, "builtin:digits", tmp_path / "o")
    assert first.returncode == 0, first.stderr + first.stdout
    out = tmp_path / "o" / "digits-intel_openvino_LNL.tflite"
    assert out.is_file() and str(out) in first.stdout and "(cached)" not in first.stdout
    assert inspect_model(out).kind == "aot"  # the graph is DISPATCH_OP now
    # nothing written beside the user's model (the AOT tools' _compiled_models/ default)
    assert not (resolve("builtin:digits").path.parent / "_compiled_models").exists()
    again = compile_(tmp_path, "builtin:digits", tmp_path / "o2", "intel_openvino:LNL")
    assert again.returncode == 0 and "(cached)" in again.stdout, again.stderr + again.stdout
    assert (tmp_path / "o2" / out.name).read_bytes() == out.read_bytes()


@pytest.mark.parametrize("target,words", [("qualcomm", "unknown vendor 'qualcomm'"),
                                          ("intel_openvino:XYZ", "unknown SOC")])
def test_a_bad_target_is_one_line(tmp_path: Path, target: str, words: str) -> None:
    p = compile_(tmp_path, "builtin:digits", tmp_path / "o", target)
    assert p.returncode == 2 and words in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


@pytest.mark.parametrize("name", ["digits", "mobilenet"])
def test_the_aot_row_runs_next_to_jit_and_matches_fp32(tmp_path: Path, name: str) -> None:
    si = need_stand_ins()
    c = compile_(tmp_path, f"builtin:{name}", tmp_path / "o")
    assert c.returncode == 0, c.stderr + c.stdout
    aot = tmp_path / "o" / f"{name}-intel_openvino_LNL.tflite"
    cfg = config(tmp_path, stand_in_env(si))
    got = run(tmp_path, cfg, ["--model", str(aot), "--reference", str(resolve(
        f"builtin:{name}").path), "--variants", "fp32,given", "--accelerator", "npu,cpu",
        "--npu-option", "graph_backend=cpu", "--no-store"])
    by = rows(got["doc"])
    jit, ahead = by[(str(aot), "fp32", "npu")], by[(str(aot), "given", "npu")]
    assert jit["status"] == "ok" and ahead["status"] == "ok", (jit["error"], ahead["error"])
    p = ahead["placement"]
    assert p["aot"] is True and p["ran"] == "npu" and p["fallback"] is None
    assert p["ops_placed"] == p["partitions"] >= 1  # DISPATCH_OP nodes, counted from the graph
    assert any("DispatchDelegate" in ln for ln in p["log"])
    # no compile at load: the JIT row's load includes the plugin's compile, the AOT row's not
    assert "Partitioned subgraph" in "\n".join(jit["placement"]["log"])
    assert "Partitioned subgraph" not in "\n".join(p["log"])
    # (no timing assertion: that the AOT row compiled nothing is what the log lines above show;
    # how much faster it loads is measured in docs/accelerators.md, not asserted in a test)
    acc = ahead["accuracy"]  # scored against the float reference's CPU outputs
    assert acc["flag"] is None and acc["snr_db"] > 60, acc
    # the Interpreter cannot run DISPATCH_OP: a cpu row on the AOT file is one clear error
    cpu = by[(str(aot), "given", "cpu")]
    assert cpu["status"] == "error" and "compiled ahead of time for an NPU" in cpu["error"]


def test_run_aot_adds_a_compiled_row_per_variant_on_the_npu_only(tmp_path: Path) -> None:
    si = need_stand_ins()
    cfg = config(tmp_path, stand_in_env(si))
    db = tmp_path / "r.sqlite"
    got = run(tmp_path, cfg, ["--model", "builtin:digits", "--variants", "fp32,fp16",
                              "--aot", "intel_openvino", "--accelerator", "cpu,npu",
                              "--npu-option", "graph_backend=cpu", "--db", str(db)])
    assert got["proc"].returncode == 0, got["proc"].stderr + got["proc"].stdout
    by = rows(got["doc"])
    assert sorted(k[1:] for k in by) == sorted([("fp32", "cpu"), ("fp32", "npu"), ("fp16", "cpu"),
                                               ("fp16", "npu"), ("fp32+aot", "npu"),
                                               ("fp16+aot", "npu")])  # no cpu row on an AOT file
    for v in ("fp32", "fp16"):
        jit, ahead = by[("builtin:digits", v, "npu")], by[("builtin:digits", v + "+aot", "npu")]
        assert ahead["status"] == "ok" and ahead["placement"]["aot"] is True, ahead["error"]
        assert ahead["model_sha256"] != jit["model_sha256"]
        assert "Partitioned subgraph" not in "\n".join(ahead["placement"]["log"])  # no JIT
        # the digits eval set, scored against the fp32 reference like every variant
        assert ahead["accuracy"]["top1"] == pytest.approx(jit["accuracy"]["top1"], abs=0.01)
        assert "compiled ahead of time for intel_openvino:LNL" in ahead["recipe"]
    p = edge_bench(["history", "--db", str(db), "--model", "builtin:digits"], tmp_path)
    assert p.returncode == 0 and "fp32+aot" in p.stdout, p.stderr + p.stdout


def test_run_aot_without_the_npu_is_a_usage_error(tmp_path: Path) -> None:
    p = edge_bench(["run", "--model", "builtin:digits", "--variants", "fp32", "--aot",
                    "intel_openvino", "--no-store"], tmp_path)
    assert p.returncode == 2 and "--aot needs --accelerator npu" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
