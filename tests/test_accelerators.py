"""`run --accelerator cpu,gpu,npu` end to end on `local`, against the real paths: LiteRT's GPU
accelerator on SwiftShader (chromium's software Vulkan) and LiteRT's NPU path through the Intel
OpenVINO compiler plugin + dispatch on OpenVINO's CPU device. Both stand in for silicon: their
timings are not a GPU's or an NPU's, but placement, fallback, timing-to-completion and accuracy
are what a real device shows (docs/accelerators.md)."""
from __future__ import annotations

import glob
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import missing_system  # noqa: E402
from test_run_local import edge_bench  # noqa: E402
from test_wrong_runtime import old_runtime_python  # noqa: E402,F401 - a fixture
from tflite_models import _buffer, _finish, _opcode, _signature, _tensor, s  # noqa: E402


def swiftshader_dir() -> Optional[str]:
    hits = sorted(glob.glob("/usr/lib/chromium*/vk_swiftshader_icd.json"))
    return os.path.dirname(hits[0]) if hits else None


def openvino_libs() -> Optional[str]:
    try:
        import openvino
    except Exception:  # noqa: BLE001
        return None
    libs = Path(openvino.__file__).parent / "libs"
    return str(libs) if libs.is_dir() else None


def need_stand_ins() -> Dict[str, str]:
    vk, ov = swiftshader_dir(), openvino_libs()
    if vk is None:
        missing_system("SwiftShader Vulkan (Debian's chromium package) is not installed")
    if ov is None:
        missing_system("openvino==2026.3.* is not installed (pip install 'edge-bench[test]')")
    return {"vk": vk, "ov": ov}


def config(tmp: Path, env: Dict[str, str]) -> Path:
    """devices.yaml with `local` and the agent's environment, as docs/accelerators.md says."""
    xdg = tmp / "xdg"
    xdg.mkdir(mode=0o700, exist_ok=True)
    lines = ["version: 1", "devices:", "  local:", "    transport: local", "    env:",
             f"      XDG_RUNTIME_DIR: {xdg}"]
    lines += [f"      {k}: {v}" for k, v in env.items()]
    p = tmp / "devices.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def stand_in_env(si: Dict[str, str]) -> Dict[str, str]:
    # chromium keeps its own Vulkan loader (libvulkan.so.1) beside the ICD; openvino's libs
    # are found by the plugin's RUNPATH when both wheels share a site-packages, not here
    return {"VK_ICD_FILENAMES": f"{si['vk']}/vk_swiftshader_icd.json",
            "LD_LIBRARY_PATH": f"{si['vk']}:{si['ov']}"}


FAST = ["--processes", "1", "--runs", "5", "--warmup", "1", "--min-seconds", "0"]


def run(tmp: Path, cfg: Path, args: List[str]) -> Dict[str, Any]:
    out = tmp / f"out{len(list(tmp.glob('out*.json')))}.json"
    p = edge_bench(["run", "--config", str(cfg), *FAST, "--json", str(out), *args], tmp,
                   timeout=900)
    assert out.is_file(), p.stderr + p.stdout
    return {"doc": json.loads(out.read_text()), "proc": p}


def rows(doc: Dict[str, Any]) -> Dict[tuple, Dict[str, Any]]:
    return {(r["model"], r["variant"], r["accelerator"]): r for r in doc["results"]}


@pytest.fixture(scope="module")
def accel_run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    si = need_stand_ins()
    tmp = tmp_path_factory.mktemp("accel")
    cfg = config(tmp, stand_in_env(si))
    got = run(tmp, cfg, ["--model", "builtin:mobilenet", "--model", "builtin:digits",
                         "--variants", "fp32", "--accelerator", "cpu,gpu,npu",
                         "--npu-option", "graph_backend=cpu", "--db", str(tmp / "r.sqlite")])
    assert got["proc"].returncode == 0, got["proc"].stderr + got["proc"].stdout
    got["tmp"] = tmp
    return got


def test_one_ok_row_per_accelerator_with_what_ran_where(accel_run: Dict[str, Any]) -> None:
    by = rows(accel_run["doc"])
    assert set(by) == {(m, "fp32", a) for m in ("builtin:mobilenet", "builtin:digits")
                       for a in ("cpu", "gpu", "npu")}
    for (model, _, acc), r in by.items():
        assert r["status"] == "ok", r["error"]
        if acc == "cpu":  # today's Interpreter path: no placement, unchanged
            assert "placement" not in r and r["runtime"]["xnnpack"] is True
            continue
        p = r["placement"]
        assert p["asked"] == p["ran"] == acc
        # every op of the model on the accelerator, counted from the runtime's own log
        assert p["ops_total"] > 0 and p["ops_placed"] == p["ops_total"], p
        assert p["partitions"] == 1 and p["fallback"] is None
        assert p["compile_ms"] > 0 and r["init_ms"] == pytest.approx(p["compile_ms"])
        assert r["first_inference_ms"] > 0
    npu_log = "\n".join(by[("builtin:mobilenet", "fp32", "npu")]["placement"]["log"])
    assert "Partitioned subgraph<0>, selected" in npu_log and "device: CPU" in npu_log
    gpu_log = "\n".join(by[("builtin:mobilenet", "fp32", "gpu")]["placement"]["log"])
    assert "SwiftShader" in gpu_log  # the adapter the GPU accelerator chose
    # the model's own op count, the same whichever accelerator counted it
    assert by[("builtin:mobilenet", "fp32", "gpu")]["placement"]["ops_total"] == \
        by[("builtin:mobilenet", "fp32", "npu")]["placement"]["ops_total"]


def test_gpu_samples_end_when_the_outputs_are_read_back(accel_run: Dict[str, Any]) -> None:
    """LiteRT's GPU accelerator returns from its run call before the GPU is done: a timer
    around the call alone says well under a millisecond for the built-in mobilenet on
    SwiftShader, where the work takes tens of ms. The samples must be the latter: this fails
    if the read-back leaves the timed region (agent/accel.py CompiledRunner.invoke)."""
    r = rows(accel_run["doc"])[("builtin:mobilenet", "fp32", "gpu")]
    dispatch = r["placement"]["dispatch_only_ms"]
    assert dispatch is not None and dispatch > 0
    assert r["latency_ms"]["min"] > 5 * dispatch, (r["latency_ms"], dispatch)
    assert r["latency_ms"]["median"] > 5 * dispatch


def test_accuracy_is_scored_per_accelerator_against_fp32(accel_run: Dict[str, Any]) -> None:
    by = rows(accel_run["doc"])
    for acc in ("cpu", "gpu", "npu"):
        a = by[("builtin:digits", "fp32", acc)]["accuracy"]
        assert a is not None and a["top1"] is not None, acc
        assert a.get("flag") is None, (acc, a)
        assert abs(a["top1"] - a["top1_ref"]) <= 0.02, (acc, a)


def test_the_store_keys_results_by_accelerator(accel_run: Dict[str, Any]) -> None:
    db = accel_run["tmp"] / "r.sqlite"
    con = sqlite3.connect(str(db))
    got = sorted(con.execute("SELECT model, accelerator FROM results").fetchall())
    assert got == sorted((m, a) for m in ("builtin:digits", "builtin:mobilenet")
                         for a in ("cpu", "gpu", "npu"))
    p = edge_bench(["history", "--db", str(db), "--model", "builtin:mobilenet"],
                   accel_run["tmp"])
    assert p.returncode == 0, p.stderr
    assert "gpu" in p.stdout and "npu" in p.stdout  # one trend row per accelerator


def partial_gpu_model(path: Path) -> Path:
    """x -> ADD -> ZEROS_LIKE -> ADD -> y: the GPU delegate has no ZEROS_LIKE, so it takes the
    first ADD and leaves 2 of the 3 ops to the CPU (a known answer for the placement count)."""
    B = s.BuiltinOperator
    tensors = [_tensor("x", [1, 8], 0), _tensor("t1", [1, 8], 0), _tensor("t2", [1, 8], 0),
               _tensor("y", [1, 8], 0)]

    def op(code_index: int, ins: List[int], outs: List[int], add: bool) -> Any:
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code_index, ins, outs
        if add:
            o.builtinOptionsType = s.BuiltinOptions.AddOptions
            o.builtinOptions = s.AddOptionsT()
        return o
    sg = s.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.name = tensors, [0], [3], "main"
    sg.operators = [op(0, [0, 0], [1], True), op(1, [1], [2], False), op(0, [2, 2], [3], True)]
    m = s.ModelT()
    m.version = 3
    m.operatorCodes = [_opcode(B.ADD), _opcode(B.ZEROS_LIKE)]
    m.subgraphs, m.buffers = [sg], [_buffer()]
    m.signatureDefs = [_signature({"x": 0}, {"y": 3})]
    return _finish(m, path)


def test_partial_gpu_placement_is_shown_and_require_full_fails_it(tmp_path: Path) -> None:
    si = need_stand_ins()
    cfg = config(tmp_path, stand_in_env(si))
    model = partial_gpu_model(tmp_path / "partial.tflite")
    got = run(tmp_path, cfg, ["--model", str(model), "--variants", "fp32",
                              "--accelerator", "gpu", "--no-store"])
    assert got["proc"].returncode == 0, got["proc"].stderr
    (r,) = got["doc"]["results"]
    assert r["status"] == "ok"
    p = r["placement"]
    assert (p["ran"], p["ops_placed"], p["ops_total"], p["partitions"]) == ("gpu", 1, 3, 1)
    assert any("ZEROS_LIKE" in line for line in p["log"])
    assert "gpu 1/3 ops, 1 partition" in got["proc"].stdout  # the table says so
    strict = run(tmp_path, cfg, ["--model", str(model), "--variants", "fp32",
                                 "--accelerator", "gpu", "--require-full", "--no-store"])
    assert strict["proc"].returncode == 3
    (r,) = strict["doc"]["results"]
    assert r["status"] == "error" and "ran 1 of 3 ops (require_full)" in r["error"]
    assert r["placement"]["ops_placed"] == 1


def test_an_accelerator_that_cannot_run_is_an_error_row_naming_why(tmp_path: Path) -> None:
    """GPU without a Vulkan driver; NPU compiled for a real NPU (no graph_backend=cpu), which
    this machine lacks: LiteRT runs both on the CPU when asked, and is_fully_accelerated()
    says True for the NPU one. Neither may be an ok row under the accelerator's name."""
    si = need_stand_ins()
    cfg = config(tmp_path, {"LD_LIBRARY_PATH": si["ov"]})  # no Vulkan ICD, no loader
    got = run(tmp_path, cfg, ["--model", "builtin:mobilenet", "--variants", "fp32",
                              "--accelerator", "cpu,gpu,npu", "--no-store"])
    assert got["proc"].returncode == 3, got["proc"].stderr
    by = rows(got["doc"])
    assert by[("builtin:mobilenet", "fp32", "cpu")]["status"] == "ok"
    gpu, npu = by[("builtin:mobilenet", "fp32", "gpu")], by[("builtin:mobilenet", "fp32", "npu")]
    assert gpu["status"] == "error" and "AcceleratorError" in gpu["error"]
    assert "no GPU adapter" in gpu["error"], gpu["error"]
    assert npu["status"] == "error" and "fell back to the CPU" in npu["error"]
    assert "NPU compile failed" in npu["error"], npu["error"]
    assert npu["placement"]["ops_placed"] == 0 and npu["placement"]["ran"] == "cpu"
    assert npu["error_detail"]["type"] == "AcceleratorError"
    assert not [r for r in got["doc"]["results"]
                if r["status"] == "ok" and r["accelerator"] != "cpu"]


def test_devices_check_lists_what_each_accelerator_can_do(tmp_path: Path) -> None:
    si = need_stand_ins()
    env = dict(stand_in_env(si), EDGE_BENCH_DELEGATES=str(tmp_path / "libabsent_delegate.so"))
    cfg = config(tmp_path, env)
    p = edge_bench(["devices", "--check", "--config", str(cfg)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "local: gpu: yes (adapter SwiftShader" in p.stdout
    assert "local: npu graph_backend=cpu: yes" in p.stdout
    assert "local: npu: no: NPU compile failed" in p.stdout  # no NPU silicon here
    assert "NPU dispatch libraries: intel_openvino" in p.stdout
    assert "libabsent_delegate.so: no:" in p.stdout
    bare = tmp_path / "bare"
    bare.mkdir()
    p = edge_bench(["devices", "--check", "--config", str(config(bare, {}))], bare)
    assert "local: gpu: no: GPU accelerator found no GPU adapter" in p.stdout, p.stdout


def test_an_agent_without_the_compiled_model_api_says_so_in_one_line(
        old_runtime_python: Path, tmp_path: Path) -> None:
    """tflite-runtime 2.14 (its own venv, numpy<2) has no CompiledModel API: the gpu row is
    an error saying what to install; its cpu row runs as before."""
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n"
                   f"  old:\n    transport: local\n    python: {old_runtime_python}\n"
                   f"    runtime: tflite_runtime\n    workdir: {tmp_path / 'wd-old'}\n")
    got = run(tmp_path, cfg, ["--devices", "old", "--model", "builtin:digits", "--variants",
                              "fp32", "--accelerator", "cpu,gpu", "--no-store"])
    assert got["proc"].returncode == 3, got["proc"].stderr
    by = rows(got["doc"])
    assert by[("builtin:digits", "fp32", "cpu")]["status"] == "ok"
    gpu = by[("builtin:digits", "fp32", "gpu")]
    assert gpu["status"] == "error" and "\n" not in gpu["error"]
    assert "no CompiledModel API" in gpu["error"] and "ai-edge-litert >= 2" in gpu["error"]


def test_the_html_report_names_each_accelerator_row(accel_run: Dict[str, Any]) -> None:
    tmp = accel_run["tmp"]
    page = tmp / "report.html"
    p = edge_bench(["report", "last", "--html", str(page), "--db", str(tmp / "r.sqlite")], tmp)
    assert p.returncode == 0, p.stderr
    html = page.read_text()
    assert "fp32 @gpu" in html and "fp32 @npu" in html
