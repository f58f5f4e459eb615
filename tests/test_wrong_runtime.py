"""The disagreement flag on a REAL wrong runtime: tflite-runtime 2.14 (numpy<2) in its own venv.

ai-edge-quantizer writes models with newer op versions / int4 tensors than tflite-runtime 2.14
knows. What that runtime really does with them (measured here, x86_64, Python 3.11):

* fp32, fp16, int8, int16x8, weight-int8: correct (100% agreement with the host's fp32).
* dynamic-int8: loads, runs, and is silently WRONG: 9.5% argmax agreement with fp32, top-1 9.7%
  on digits (chance level), SNR 0.5 dB; with or without XNNPACK. The flag must fire.
* weight-int4: does not load: "dequantize.cc:58 ... Node number 0 (DEQUANTIZE) failed to
  prepare" (its DEQUANTIZE kernel has no int4 input), reported as a ModelLoadError result.
  It does NOT segfault (DESIGN.md said it would).
* a *dynamic* int4 model (recipe dynamic_wi4_afp32, not one of the 7 variants) of
  builtin:mobilenet returns all-NaN outputs, and now and then (about 1 run in 20) segfaults.

The same files in LiteRT (the `local` device of the same run) are all correct and unflagged.

The venv is built once with `python -m venv` + `pip install 'numpy<2' tflite-runtime==2.14.0`
and cached under ~/.cache/edge-bench-test/ keyed by that recipe and the Python version; the tests
skip with the reason when pip cannot get the packages (no registry, no wheel for this Python).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "host" / "models" / "builtin" / "data"
CACHE = Path(os.environ.get("EDGE_BENCH_TEST_CACHE", "~/.cache/edge-bench-test")).expanduser()
RECIPE = ("numpy<2", "tflite-runtime==2.14.0")


def _venv_dir() -> Path:
    key = json.dumps({"recipe": RECIPE, "python": list(sys.version_info[:3]),
                      "impl": sys.implementation.name, "machine": platform.machine()})
    return CACHE / f"venv-tflite-runtime-2.14-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # parallel test runs build the venv once
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def old_runtime_python() -> Path:
    """Python of a cached venv with numpy<2 + tflite-runtime 2.14.0 (built on first use)."""
    venv = _venv_dir()
    py = venv / "bin" / "python"
    done = venv / ".edge-bench-complete"
    with _locked(venv.with_name(venv.name + ".lock")):
        if not done.is_file():
            shutil.rmtree(venv, ignore_errors=True)
            p = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                               text=True, timeout=300)
            if p.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.skip(f"python -m venv failed: {p.stderr.strip()[-400:]}")
            p = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check",
                                "-q", *RECIPE], capture_output=True, text=True, timeout=900)
            if p.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-3:])
                pytest.skip(f"pip cannot install {' '.join(RECIPE)} for Python "
                            f"{platform.python_version()}: {tail}")
            p = subprocess.run([str(py), "-c", "import numpy, tflite_runtime.interpreter as t; "
                                "print(numpy.__version__, t.Interpreter.__module__)"],
                               capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.skip(f"tflite-runtime 2.14 does not import: {p.stderr.strip()[-400:]}")
            done.write_text(json.dumps({"recipe": RECIPE, "check": p.stdout.strip()}))
    return py


def edge_bench(args: List[str], tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["EDGE_BENCH_CACHE"] = str(tmp / "cache")
    env.pop("EDGE_BENCH_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", *args], capture_output=True,
                          text=True, env=env, cwd=str(tmp), timeout=600)


def _fleet(tmp: Path, old_python: Path) -> Path:
    cfg = tmp / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n"
                   f"  local:\n    transport: local\n    workdir: {tmp / 'wd-local'}\n"
                   f"  old:\n    transport: local\n    python: {old_python}\n"
                   f"    runtime: tflite_runtime\n    workdir: {tmp / 'wd-old'}\n")
    return cfg


def _by(doc: Dict[str, Any]) -> Dict[tuple, Dict[str, Any]]:
    return {(r["device"], r["variant"]): r for r in doc["results"]}


@pytest.fixture(scope="module")
def digits_run(old_runtime_python: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("wrong-runtime")
    out = tmp / "out.json"
    # weight-int4 in the middle: the variant after the failed one must still run
    p = edge_bench(["run", "--config", str(_fleet(tmp, old_runtime_python)),
                    "--devices", "local,old", "--model", "builtin:digits",
                    "--variants", "fp32,weight-int4,dynamic-int8", "--runs", "5", "--warmup", "1",
                    "--min-seconds", "0", "--json", str(out), "--db", str(tmp / "r.sqlite")], tmp)
    assert out.is_file(), p.stderr
    return {"proc": p, "doc": json.loads(out.read_text()), "tmp": tmp}


def test_exit_code_3_and_every_result_present(digits_run) -> None:
    p, doc = digits_run["proc"], digits_run["doc"]
    assert p.returncode == 3, p.stderr + p.stdout
    assert "Traceback" not in p.stderr
    assert set(_by(doc)) == {(d, v) for d in ("local", "old")
                             for v in ("fp32", "weight-int4", "dynamic-int8")}
    assert doc["status"] == "partial"


def test_old_runtime_is_really_tflite_runtime_2_14(digits_run) -> None:
    for r in digits_run["doc"]["results"]:
        if r["device"] == "old" and r["status"] == "ok":
            assert r["runtime"]["name"] == "tflite-runtime"
            assert r["runtime"]["version"] == "2.14.0"


def test_fp32_on_old_runtime_is_ok_and_not_flagged(digits_run) -> None:
    r = _by(digits_run["doc"])[("old", "fp32")]
    assert r["status"] == "ok" and r["error"] is None
    acc = r["accuracy"]
    assert acc["flag"] is None
    assert acc["agreement_vs_ref"] == 1.0 and acc["top1"] == acc["top1_ref"] > 0.95


def test_dynamic_int8_on_old_runtime_runs_but_is_flagged_wrong(digits_run) -> None:
    """Silently wrong outputs: the job 'succeeds', only the host's comparison catches it."""
    r = _by(digits_run["doc"])[("old", "dynamic-int8")]
    assert r["status"] == "ok" and r["error"] is None
    assert r["runs"] >= 5 and r["latency_ms"]["median"] > 0
    acc = r["accuracy"]
    assert acc["agreement_vs_ref"] < 0.2 and acc["top1"] < 0.2 and acc["top1_ref"] > 0.95
    assert acc["snr_db"] < 5
    flag = acc["flag"]
    assert flag and "agreement" in flag and "(tolerance 95%)" in flag, flag
    assert "SNR" in flag and "top-1" in flag
    # the plain table says so on the variant's row
    row = [ln for ln in digits_run["proc"].stdout.splitlines()
           if " old " in f" {ln} " and "dynamic-int8" in ln]
    assert row and all("WRONG OUTPUT" in ln for ln in row), digits_run["proc"].stdout


def test_weight_int4_on_old_runtime_is_an_error_result_and_the_rest_ran(digits_run) -> None:
    """tflite-runtime 2.14's DEQUANTIZE has no int4 input: a load error, not a crash."""
    res = _by(digits_run["doc"])
    r = res[("old", "weight-int4")]
    assert r["status"] == "error" and r["accuracy"] is None
    assert r["error"].startswith("ModelLoadError"), r["error"]
    assert "DEQUANTIZE" in r["error"] and "failed to prepare" in r["error"]
    assert res[("old", "dynamic-int8")]["status"] == "ok"  # ran after the failed variant


def test_same_files_on_litert_are_correct_and_not_flagged(digits_run) -> None:
    """Contrast: the very same variant files (same sha256) in LiteRT, in the same run."""
    res = _by(digits_run["doc"])
    for v in ("fp32", "weight-int4", "dynamic-int8"):
        r = res[("local", v)]
        assert r["status"] == "ok", r["error"]
        assert r["runtime"]["name"] == "ai-edge-litert"
        assert r["accuracy"]["flag"] is None, r["accuracy"]
        assert r["accuracy"]["agreement_vs_ref"] >= 0.99
        assert r["model_sha256"] == res[("old", v)]["model_sha256"]


def test_failed_and_flagged_results_are_stored(digits_run) -> None:
    from edge_bench.results.store import Store
    with Store(digits_run["tmp"] / "r.sqlite") as st:
        run = st.get_run(digits_run["doc"]["run_id"])
    stored = {(r["device"], r["variant"]): r for r in run["results"]}
    assert stored[("old", "weight-int4")]["status"] == "error"
    flag = stored[("old", "dynamic-int8")]["accuracy"]["flag"]
    assert "agreement" in flag
    assert flag == _by(digits_run["doc"])[("old", "dynamic-int8")]["accuracy"]["flag"]


def test_dynamic_int4_model_gives_nan_or_segfaults_on_old_runtime(old_runtime_python: Path,
                                                                   tmp_path: Path) -> None:
    """A dynamic-range int4 model (ai-edge-quantizer dynamic_wi4_afp32) of builtin:mobilenet:
    tflite-runtime 2.14 returns NaN for every output, and sometimes segfaults. Either way the
    result must say so: flagged for non-finite outputs, or a WorkerCrashed error (SIGSEGV)."""
    from ai_edge_quantizer import quantizer, recipe

    from edge_bench.models.quantize import _quiet
    model = tmp_path / "mobilenet-dynamic-int4.tflite"
    with _quiet():
        qt = quantizer.Quantizer(str(DATA / "mobilenet.tflite"), recipe.dynamic_wi4_afp32())
        model.write_bytes(bytes(qt.quantize().quantized_model))
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--config", str(_fleet(tmp_path, old_runtime_python)),
                    "--devices", "local,old", "--model", str(model), "--variants", "given",
                    "--eval", str(DATA / "mobilenet_calib.npz"), "--runs", "3", "--warmup", "0",
                    "--min-seconds", "0", "--json", str(out), "--no-store"], tmp_path)
    assert p.returncode == 3, p.stderr
    res = _by(json.loads(out.read_text()))
    # an already-quantized file is timed as given (issue 11), never as an "fp32" row
    local, old = res[("local", "given")], res[("old", "given")]
    assert local["status"] == "ok" and local["accuracy"]["flag"] is None
    if old["status"] == "ok":
        assert "non-finite output values" in old["accuracy"]["flag"]
    else:
        assert old["status"] == "error"
        assert old["error"].startswith("WorkerCrashed") and "SIGSEGV" in old["error"], old["error"]
