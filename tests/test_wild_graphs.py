"""Models from the wild whose graph is not a plain one: dynamic (-1) input dims and control
flow (IF / WHILE subgraphs), made by TensorFlow's converter (tests/tf_models.py), through the
real CLI on `local` (issue 23, item 1)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

import tf_models
from test_run_local import edge_bench

pytestmark = pytest.mark.timeout(1200)
FAST = ["--runs", "2", "--warmup", "0", "--min-seconds", "0", "--processes", "1"]
ALL = "given,fp32,fp16,dynamic-int8,int8,int16x8,weight-int8,weight-int4"


@pytest.fixture(scope="module")
def models() -> Dict[str, Path]:
    return tf_models.build()


def _run(args: List[str], tmp: Path) -> Dict[str, Dict[str, Any]]:
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / "out.json"
    p = edge_bench(["run", "--no-store", *FAST, "--json", str(out), *args], tmp)
    assert out.is_file(), p.stdout[-2000:] + p.stderr[-2000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    return {r["variant"]: r for r in json.loads(out.read_text())["results"]}


def _audio(tmp: Path, name: str, shape: tuple) -> Path:
    path = tmp / name
    np.savez(path, audio=np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32))
    return path


def test_dynamic_dims_take_their_size_from_calibration_data(models: Dict[str, Path],
                                                            tmp_path: Path) -> None:
    """[-1, -1] with calibration arrays [8, 1280]: every variant is made (the quantizer
    calibrates at that size) and timed on the device (the file as given resized to it)."""
    cal = _audio(tmp_path, "cal.npz", (8, 1280))
    res = _run(["--model", str(models["dynamic.tflite"]), "--variants", ALL,
                "--calibration", str(cal)], tmp_path)
    for v in ALL.split(","):
        r = res[v]
        assert r["status"] == "ok" and r["runs"] >= 2, (v, r["error"])
        assert r["accuracy"]["outputs"] and r["accuracy"]["flag"] is None, (v, r["accuracy"])
    assert "audio=1x1280 (from cal.npz)" in res["fp32"]["recipe"]
    assert res["given"]["model_sha256"] != res["fp32"]["model_sha256"]  # the file as shipped


def test_dynamic_dims_from_eval_data_or_the_flag(models: Dict[str, Path], tmp_path: Path
                                                 ) -> None:
    ev = _audio(tmp_path, "ev.npz", (3, 960))
    res = _run(["--model", str(models["dynamic.tflite"]), "--variants",
                "given,fp32,dynamic-int8", "--eval", str(ev)], tmp_path / "a")
    assert all(r["status"] == "ok" for r in res.values()), {v: r["error"] for v, r in res.items()}
    assert "audio=1x960 (from ev.npz)" in res["fp32"]["recipe"]
    res = _run(["--model", str(models["dynamic.tflite"]), "--variants", "given,fp32,int8",
                "--calibration", "random", "--input-shape", "audio=1x1600"], tmp_path / "b")
    assert all(r["status"] == "ok" for r in res.values()), {v: r["error"] for v, r in res.items()}
    assert "audio=1x1600 (--input-shape)" in res["fp32"]["recipe"]
    # eval samples of another length than the calibration's: the host's fp32 reference resizes
    # per sample as the agent does
    cal = _audio(tmp_path, "cal.npz", (4, 1280))
    res = _run(["--model", str(models["dynamic.tflite"]), "--variants", "given,fp32,int8",
                "--calibration", str(cal), "--eval", str(ev)], tmp_path / "c")
    assert all(r["status"] == "ok" and r["accuracy"]["samples"] == 3 for r in res.values()), \
        {v: r["error"] for v, r in res.items()}


def test_dynamic_dims_nothing_sizes_asks_for_the_flag(models: Dict[str, Path],
                                                      tmp_path: Path) -> None:
    res = _run(["--model", str(models["dynamic.tflite"]), "--variants", "given,fp32,int8",
                "--calibration", "random"], tmp_path)
    for v, r in res.items():
        assert r["status"] == "error", v
        assert "pass --input-shape audio=1xN" in r["error"] and "[-1, -1]" in r["error"], r
        assert "cannot run it" not in r["error"] and "\n" not in r["error"]


def test_input_shape_flag_errors_are_one_line(models: Dict[str, Path], tmp_path: Path) -> None:
    for flag, said in (("audio=2x3x4", "does not fit input 'audio'"),
                       ("nope=1x3", "no --model has an input of that name"),
                       ("audio=1xN", "expected NAME=DxDx...")):
        p = edge_bench(["run", "--no-store", *FAST, "--model", str(models["dynamic.tflite"]),
                        "--input-shape", flag], tmp_path)
        assert p.returncode == 2 and said in p.stderr, p.stderr[-2000:]
        assert "Traceback" not in p.stderr and "library output" not in p.stderr, p.stderr


@pytest.mark.parametrize("name,op", [("cond_argnames.tflite", "IF"), ("cond.tflite", "IF"),
                                     ("while.tflite", "WHILE")])
def test_control_flow_gets_the_variants_the_quantizer_can_make(
        models: Dict[str, Path], tmp_path: Path, name: str, op: str) -> None:
    """3 subgraphs: the dynamic and weight-only variants are made and timed; the calibrated
    ones are a skip naming the op and why (never a quantizer traceback or 'not unique')."""
    res = _run(["--model", str(models[name]), "--variants", ALL, "--calibration", "random"],
               tmp_path)
    for v in ("given", "fp32", "fp16", "dynamic-int8", "weight-int8", "weight-int4"):
        assert res[v]["status"] == "ok", (v, res[v]["error"])
    assert res["dynamic-int8"]["model_bytes"] < res["fp32"]["model_bytes"]
    for v in ("int8", "int16x8"):
        r = res[v]
        assert r["status"] == "skipped" and f"control flow ({op} op)" in r["error"], r["error"]
    if name == "cond_argnames.tflite":
        assert "duplicate tensor names made unique" in res["fp32"]["recipe"]


def test_unique_tensor_names_keeps_the_main_graph(models: Dict[str, Path]) -> None:
    from edge_bench.models import repair as rep
    data = models["cond_argnames.tflite"].read_bytes()
    before = rep.load(data)
    names = [[t.name.decode() for t in sg.tensors] for sg in before.subgraphs]
    assert len(names) == 3 and "arg0" in names[1] and "arg0" in names[2]
    model = rep.load(data)
    assert rep.unique_tensor_names(model) == len(names[2]) - names[2].count("cond/MatMul;cond/Relu")
    after = [[t.name if isinstance(t.name, str) else t.name.decode() for t in sg.tensors]
             for sg in model.subgraphs]
    assert after[0] == names[0] and after[1] == names[1]
    flat = [n for sg in after for n in sg]
    assert len(set(flat)) == len(flat) and "arg0_sg2" in after[2]


def test_quantize_names_the_users_file_not_the_derived_baseline(models: Dict[str, Path],
                                                                 tmp_path: Path) -> None:
    """`edge-bench quantize` of a model that needed repair: the skip names the file passed."""
    p = edge_bench(["quantize", str(models["cond_argnames.tflite"]), "--variants", "int8",
                    "--calibration", "random", "-o", str(tmp_path / "out")], tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("int8"))
    assert f"{models['cond_argnames.tflite']} (derived fp32) has control flow (IF op)" in line
    assert not re.search(r"[0-9a-f]{24}-r\d+\.tflite", p.stdout + p.stderr), line
