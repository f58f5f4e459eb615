"""The device agent (the built agent zipapp, edge_bench.fleet.artifact) as a real subprocess, with the real LiteRT interpreter on real
.tflite files built by tests/tflite_models.py. Protocol: docs/protocol.md.

No assertion here depends on how fast this machine is: timing-loop tests check counts, stop
reasons and sums of samples, never wall-clock speed.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tflite_models as tm  # noqa: E402

from edge_bench.fleet.artifact import agent_artifact  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AGENT_SRC = REPO / "agent"
AGENT = agent_artifact()[0]  # the one artifact that is pushed to devices
PY = [sys.executable]

pytestmark = pytest.mark.timeout(300)


# ------------------------------------------------------------------------------ helpers

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spec(path: Path, workdir: Path) -> Dict[str, str]:
    """A {"path", "sha256"} file entry, relative to the workdir like the host sends it."""
    return {"path": os.path.relpath(path, workdir), "sha256": sha256(path)}


def run_agent(job: Any = None, args: Optional[List[str]] = None, stdin: Optional[bytes] = None,
              env: Optional[Dict[str, str]] = None, python: Optional[List[str]] = None,
              timeout: float = 240) -> Tuple[List[Dict[str, Any]], subprocess.CompletedProcess]:
    """Run the agent; every stdout line must be a protocol-1 JSON object (checked here)."""
    if stdin is None:
        stdin = json.dumps(job).encode() if job is not None else b""
    p = subprocess.run((python or PY) + [str(AGENT)] + (args or []), input=stdin,
                       capture_output=True, timeout=timeout, env=env)
    events = []
    for line in p.stdout.decode().splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            raise AssertionError(f"agent stdout has a non-JSON line {line!r}\n"
                                 f"stderr:\n{p.stderr.decode()[-3000:]}")
        assert isinstance(msg, dict) and msg["proto"] == 1, line
        events.append(msg)
    return events, p


def finished(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The progress events that count work done (not the ones announcing a process start)."""
    return [e for e in events if e["event"] == "progress" and not e.get("started")]


def started(events: List[Dict[str, Any]]) -> List[Any]:
    return [(e["task"], e["process"]) for e in events
            if e["event"] == "progress" and e.get("started")]


def of(events: List[Dict[str, Any]], kind: str) -> List[Dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def task(tid: str, model: Path, workdir: Path, **kw: Any) -> Dict[str, Any]:
    t: Dict[str, Any] = {"id": tid, "model": spec(model, workdir), "threads": 1,
                         "xnnpack": True, "warmup": 2, "runs": 10, "min_seconds": 0.0,
                         "max_seconds": 60.0, "eval": None, "input": None}
    t.update(kw)
    return t


def job(workdir: Path, tasks: List[Dict[str, Any]], **kw: Any) -> Dict[str, Any]:
    j: Dict[str, Any] = {"proto": 1, "job_id": "test", "python": PY, "runtime": "auto",
                         "workdir": str(workdir), "tasks": tasks}
    j.update(kw)
    return j


def decode(out: Dict[str, Any]) -> np.ndarray:
    assert out["dtype"] == "float32"
    return np.frombuffer(base64.b64decode(out["b64"]), dtype="<f4").reshape(out["shape"])


def check_event_order(events: List[Dict[str, Any]], n_tasks: int) -> None:
    assert events[0]["event"] == "hello"
    assert events[-1]["event"] == "bye" and events[-1]["tasks"] == n_tasks
    prog = finished(events)
    assert [p["done"] for p in prog] == list(range(1, n_tasks + 1))
    assert all(p["total"] == n_tasks for p in prog)


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def wd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir with the float model, its int8 version, eval/calibration data."""
    d = tmp_path_factory.mktemp("agent-wd")
    blobs = d / "blobs"
    blobs.mkdir()
    tm.write_dense_softmax(blobs / "dense.tflite", seed=0)
    tm.write_dense_softmax(blobs / "dense_dyn.tflite", seed=0, dynamic_batch=True)
    tm.write_add_model(blobs / "add.tflite")
    rng = np.random.default_rng(7)
    calib = rng.uniform(-1, 1, size=(64, tm.N_IN)).astype(np.float32)
    tm.write_int8_model(blobs / "dense.tflite", blobs / "dense_int8.tflite", calib)
    x = rng.uniform(-1, 1, size=(40, tm.N_IN)).astype(np.float32)
    np.savez(blobs / "eval.npz", x=x, y=np.arange(40) % 10)
    np.savez(blobs / "input.npz", x=x[:3])
    np.savez(blobs / "add_eval.npz", a=x[:5, :4], b=x[5:10, :4])
    return d


@pytest.fixture(scope="module")
def eval_x(wd: Path) -> np.ndarray:
    return np.load(wd / "blobs" / "eval.npz")["x"]


def blob(wd: Path, name: str) -> Path:
    return wd / "blobs" / name


# ------------------------------------------------------------------------------ modes

def test_version() -> None:
    p = subprocess.run(PY + [str(AGENT), "--version"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "0.1.0"


def test_probe_says_hello_with_runtime_and_device_facts() -> None:
    events, p = run_agent(args=["--probe"])
    assert p.returncode == 0
    assert [e["event"] for e in events] == ["hello", "bye"]
    hello = events[0]
    assert hello["agent_version"] == "0.1.0"
    assert hello["python"] == ".".join(str(x) for x in sys.version_info[:3])
    assert hello["numpy"] == np.__version__
    from importlib.metadata import version
    assert hello["runtime"] == {"name": "ai-edge-litert", "module": "ai_edge_litert.interpreter",
                                "version": version("ai-edge-litert")}
    assert hello["runtime_error"] is None
    info = hello["device_info"]
    for key in ("arch", "machine", "system", "kernel", "os", "cpu", "cores", "governor",
                "cur_freq_khz", "max_freq_khz", "temp_c", "thermal_zones", "throttled",
                "mem_total_mb", "mem_available_mb", "hostname", "python", "board"):
        assert key in info, key
    assert info["cores"] == os.cpu_count()
    assert info["mem_total_mb"] and info["mem_total_mb"] > 0


# ------------------------------------------------------------------------------ timing

def test_two_tasks_two_results(wd: Path) -> None:
    tasks = [task("t0", blob(wd, "dense.tflite"), wd, runs=20),
             task("t1", blob(wd, "dense_int8.tflite"), wd, runs=15, xnnpack=False, threads=2)]
    events, p = run_agent(job(wd, tasks))
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    check_event_order(events, 2)
    assert of(events, "error") == []
    assert events[-1]["errors"] == 0
    assert events[0]["job_id"] == "test"
    res = {r["task"]: r for r in of(events, "result")}
    assert set(res) == {"t0", "t1"}
    for tid, runs in (("t0", 20), ("t1", 15)):
        r = res[tid]
        assert r["runs"] == len(r["samples_ns"]) >= runs
        assert all(isinstance(s, int) and s > 0 for s in r["samples_ns"])
        assert r["init_ms"] > 0 and r["first_inference_ms"] > 0
        assert r["warmup"] == 2 and r["eval"] is None and r["cooldown_s"] == 0.0
        assert r["peak_rss_kb"] > 10_000  # python + numpy + LiteRT, in kB
        assert r["model_sha256"] == tasks[int(tid[1])]["model"]["sha256"]
        assert "temp_c_before" in r["device_info"] and "temp_c_after" in r["device_info"]
        assert r["stopped_by"] == "runs"
    assert res["t0"]["runtime"]["xnnpack"] is True and res["t0"]["runtime"]["threads"] == 1
    assert res["t1"]["runtime"]["xnnpack"] is False and res["t1"]["runtime"]["threads"] == 2
    assert res["t0"]["runtime"]["name"] == "ai-edge-litert"
    assert res["t0"]["inputs"] == [{"name": "x", "shape": [1, tm.N_IN], "dtype": "float32",
                                    "scale": 0.0, "zero_point": 0}]
    assert res["t0"]["outputs"][0]["shape"] == [1, tm.N_OUT]
    q_in = res["t1"]["inputs"][0]
    assert q_in["dtype"] == "int8" and q_in["scale"] > 0


def test_min_seconds_keeps_timing_past_runs(wd: Path) -> None:
    t = task("t0", blob(wd, "dense.tflite"), wd, runs=1, min_seconds=0.05, warmup=0)
    events, _ = run_agent(job(wd, [t]))
    (r,) = of(events, "result")
    assert r["stopped_by"] == "min_seconds"
    # min_seconds counts summed samples, and the loop stops at the first sample that reaches it
    assert sum(r["samples_ns"]) >= 0.05e9 > sum(r["samples_ns"][:-1])
    assert r["runs"] > 1


def test_max_seconds_caps_the_loop(wd: Path) -> None:
    t = task("t0", blob(wd, "dense.tflite"), wd, runs=10 ** 9, min_seconds=1000.0,
             max_seconds=0.3, warmup=0)
    events, _ = run_agent(job(wd, [t]))
    (r,) = of(events, "result")
    assert r["stopped_by"] == "max_seconds"
    assert 1 <= r["runs"] < 10 ** 9
    assert r["loop_s"] >= 0.3
    assert sum(r["samples_ns"]) < 1000e9


def test_dynamic_batch_is_resized_to_one(wd: Path, eval_x: np.ndarray) -> None:
    t = task("dyn", blob(wd, "dense_dyn.tflite"), wd,
             eval=spec(blob(wd, "eval.npz"), wd))
    events, _ = run_agent(job(wd, [t]))
    (r,) = of(events, "result")
    assert r["inputs"][0]["shape"] == [1, tm.N_IN]
    w, b = tm.dense_softmax_weights(0)
    np.testing.assert_allclose(decode(r["eval"]["outputs"][0]),
                               tm.numpy_dense_softmax(eval_x, w, b), atol=1e-5)


def test_user_input_file_is_used(wd: Path) -> None:
    t = task("in", blob(wd, "dense_int8.tflite"), wd, input=spec(blob(wd, "input.npz"), wd))
    events, _ = run_agent(job(wd, [t]))
    (r,) = of(events, "result")
    assert r["runs"] >= 10


# ------------------------------------------------------------------------------ eval

def test_eval_outputs_match_numpy(wd: Path, eval_x: np.ndarray) -> None:
    t = task("ev", blob(wd, "dense.tflite"), wd, eval=spec(blob(wd, "eval.npz"), wd))
    events, _ = run_agent(job(wd, [t]))
    (r,) = of(events, "result")
    ev = r["eval"]
    assert ev["n"] == len(eval_x)
    (out,) = ev["outputs"]
    assert out["name"] == "y" and out["shape"] == [len(eval_x), tm.N_OUT]
    w, b = tm.dense_softmax_weights(0)
    np.testing.assert_allclose(decode(out), tm.numpy_dense_softmax(eval_x, w, b),
                               rtol=1e-5, atol=1e-6)


def test_int8_eval_is_dequantized_and_close_to_float(wd: Path, eval_x: np.ndarray) -> None:
    t = task("q", blob(wd, "dense_int8.tflite"), wd, eval=spec(blob(wd, "eval.npz"), wd))
    events, _ = run_agent(job(wd, [t]))
    (r,) = of(events, "result")
    assert r["outputs"][0]["dtype"] == "int8"
    out = decode(r["eval"]["outputs"][0])
    assert out.shape == (len(eval_x), tm.N_OUT)
    # exactly what LiteRT computes in this process, with the quantization done by hand
    np.testing.assert_allclose(out, litert_int8_outputs(blob(wd, "dense_int8.tflite"), eval_x),
                               atol=1e-6)
    # and close to the float model: a coarse int8 softmax (scale 1/256), same decisions
    w, b = tm.dense_softmax_weights(0)
    ref = tm.numpy_dense_softmax(eval_x, w, b)
    assert np.abs(out - ref).mean() < 0.02
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.85
    np.testing.assert_allclose(out.sum(1), 1.0, atol=0.05)  # dequantized probabilities


def litert_int8_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(model))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    (si, zi), (so, zo) = i["quantization"], o["quantization"]
    rows = []
    for row in x:
        v = row[None].astype(np.float64) / si + zi
        it.set_tensor(i["index"], np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127)
                      .astype(np.int8))
        it.invoke()
        rows.append((it.get_tensor(o["index"]).astype(np.float32)[0] - zo) * np.float32(so))
    return np.array(rows, dtype=np.float32)


def test_eval_multi_input_by_name(wd: Path) -> None:
    t = task("add", blob(wd, "add.tflite"), wd, eval=spec(blob(wd, "add_eval.npz"), wd))
    events, _ = run_agent(job(wd, [t]))
    (r,) = of(events, "result")
    data = np.load(blob(wd, "add_eval.npz"))
    np.testing.assert_allclose(decode(r["eval"]["outputs"][0]), data["a"] + data["b"],
                               atol=1e-6)


def test_eval_data_errors_name_the_array_and_shape(wd: Path, tmp_path: Path) -> None:
    bad_shape = tmp_path / "bad_shape.npz"
    np.savez(bad_shape, x=np.zeros((4, tm.N_IN - 1), np.float32))
    missing = tmp_path / "missing.npz"
    np.savez(missing, a=np.zeros((4, 4), np.float32))
    tasks = [task("shape", blob(wd, "dense.tflite"), wd, eval=spec(bad_shape, wd)),
             task("name", blob(wd, "add.tflite"), wd, eval=spec(missing, wd))]
    events, _ = run_agent(job(wd, tasks))
    errs = {e["task"]: e for e in of(events, "error")}
    assert errs["shape"]["type"] == "EvalDataError"
    assert "[N, 16]" in errs["shape"]["message"] and "float32" in errs["shape"]["message"]
    assert "'x'" in errs["shape"]["message"]
    assert errs["name"]["type"] == "EvalDataError"
    assert "'b'" in errs["name"]["message"] and "[N, 4]" in errs["name"]["message"]
    assert events[-1]["errors"] == 2


# ------------------------------------------------------------------------------ failures

def test_checksum_mismatch_and_missing_file_do_not_stop_the_job(wd: Path) -> None:
    bad = task("bad", blob(wd, "dense.tflite"), wd)
    bad["model"]["sha256"] = "0" * 64
    gone = task("gone", blob(wd, "dense.tflite"), wd)
    gone["model"] = {"path": "blobs/nope.tflite", "sha256": "1" * 64}
    ok = task("ok", blob(wd, "dense.tflite"), wd)
    events, p = run_agent(job(wd, [bad, gone, ok]))
    assert p.returncode == 0
    check_event_order(events, 3)
    errs = {e["task"]: e for e in of(events, "error")}
    assert errs["bad"]["type"] == "ChecksumMismatch"
    assert str(blob(wd, "dense.tflite")) in errs["bad"]["message"]
    assert errs["gone"]["type"] == "FileMissing"
    assert "nope.tflite" in errs["gone"]["message"]
    assert [r["task"] for r in of(events, "result")] == ["ok"]
    assert events[-1]["errors"] == 2


CRASHY_PYTHON = textwrap.dedent("""
    # Stands in for a device python whose runtime segfaults on one model ("crash-me").
    import ctypes, subprocess, sys
    data = sys.stdin.buffer.read()
    if b'"crash-me"' in data:
        sys.stderr.write("runtime: about to fault\\n")
        sys.stderr.flush()
        ctypes.string_at(0)
    sys.exit(subprocess.run([sys.executable] + sys.argv[1:], input=data).returncode)
""")


def test_worker_segfault_is_reported_and_the_next_task_runs(wd: Path, tmp_path: Path) -> None:
    wrapper = tmp_path / "crashy_python.py"
    wrapper.write_text(CRASHY_PYTHON)
    tasks = [task("crash-me", blob(wd, "dense.tflite"), wd),
             task("after", blob(wd, "dense.tflite"), wd)]
    events, p = run_agent(job(wd, tasks, python=PY + [str(wrapper)]))
    assert p.returncode == 0
    check_event_order(events, 2)
    (err,) = of(events, "error")
    assert err["task"] == "crash-me" and err["type"] == "WorkerCrashed"
    assert err["signal"] == 11 and "SIGSEGV" in err["message"]
    assert "runtime: about to fault" in err["message"]  # the worker's stderr tail
    assert [r["task"] for r in of(events, "result")] == ["after"]


def test_python_that_cannot_run_is_worker_crashed(wd: Path) -> None:
    t = task("t0", blob(wd, "dense.tflite"), wd)
    events, _ = run_agent(job(wd, [t], python=[sys.executable, "-c", "import sys; sys.exit(3)"]))
    (err,) = of(events, "error")
    assert err["type"] == "WorkerCrashed" and err["exit_code"] == 3


def test_hung_worker_times_out(wd: Path, tmp_path: Path) -> None:
    wrapper = tmp_path / "hang_python.py"
    wrapper.write_text(CRASHY_PYTHON.replace("ctypes.string_at(0)", "import time; time.sleep(600)")
                       .replace("crash-me", "hang"))
    tasks = [task("hang", blob(wd, "dense.tflite"), wd, timeout_s=2),
             task("after", blob(wd, "dense.tflite"), wd)]
    events, _ = run_agent(job(wd, tasks, python=PY + [str(wrapper)]))
    (err,) = of(events, "error")
    assert err["task"] == "hang" and err["type"] == "Timeout"
    assert [r["task"] for r in of(events, "result")] == ["after"]


def test_forced_missing_runtime_is_no_runtime_with_install_hint(wd: Path) -> None:
    t = task("t0", blob(wd, "dense.tflite"), wd)
    events, p = run_agent(job(wd, [t], runtime="tflite_runtime"))
    assert p.returncode == 0
    hello = events[0]
    assert hello["runtime"] is None
    assert "pip install tflite-runtime" in hello["runtime_error"]
    assert "numpy<2" in hello["runtime_error"]
    assert "pip install ai-edge-litert" in hello["runtime_error"]
    (err,) = of(events, "error")
    assert err["type"] == "NoRuntime" and "pip install" in err["message"]
    assert events[-1] == {"proto": 1, "event": "bye", "tasks": 1, "errors": 1}


@pytest.mark.parametrize("stdin", [b"this is not json\n", b"[1, 2]\n", b"",
                                   b'{"proto": 2, "tasks": []}\n', b'{"proto": 1}\n',
                                   b"\xff\xfe garbage"])
def test_bad_job_is_bad_job_then_bye_exit_2(stdin: bytes) -> None:
    events, p = run_agent(stdin=stdin)
    assert p.returncode == 2
    assert [e["event"] for e in events] == ["hello", "error", "bye"]
    assert events[1]["type"] == "BadJob" and events[1]["task"] is None
    assert b"Traceback" not in p.stdout


FAKE_TF_INIT = "__version__ = '0.0-fake'\nfrom . import lite\n"
FAKE_TF_LITE = textwrap.dedent("""
    # A "tensorflow" whose import writes to fd 1 from Python and from C, like noisy runtimes.
    import ctypes, os, sys
    os.write(1, b"NOISE from os.write\\n")
    print("NOISE from print")
    libc = ctypes.CDLL(None)
    libc.printf(b"NOISE from C printf\\n")
    libc.fflush(None)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    class experimental:
        OpResolverType = OpResolverType
""")

NOISY_PYTHON = textwrap.dedent("""
    # A python command that prints before the agent starts and after it ends.
    import atexit, os, runpy, sys
    os.write(1, b"NOISE before the agent\\n")
    atexit.register(lambda: os.write(1, b"NOISE at exit\\n"))
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def test_stdout_stays_pure_json_when_the_runtime_writes_to_fd1(wd: Path,
                                                               tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    (fake / "tensorflow").mkdir(parents=True)
    (fake / "tensorflow" / "__init__.py").write_text(FAKE_TF_INIT)
    (fake / "tensorflow" / "lite.py").write_text(FAKE_TF_LITE)
    noisy = tmp_path / "noisy_python.py"
    noisy.write_text(NOISY_PYTHON)
    env = dict(os.environ, PYTHONPATH=str(fake))
    t = task("t0", blob(wd, "dense.tflite"), wd, eval=spec(blob(wd, "eval.npz"), wd))
    # run_agent asserts that every stdout line is protocol JSON
    events, p = run_agent(job(wd, [t], runtime="tensorflow", python=PY + [str(noisy)]),
                          env=env)
    assert p.returncode == 0
    assert events[0]["runtime"]["name"] == "tensorflow"
    assert events[0]["runtime"]["version"] == "0.0-fake"
    (r,) = of(events, "result")
    assert r["runtime"]["name"] == "tensorflow"
    err = p.stderr.decode()
    for noise in ("NOISE from os.write", "NOISE from print", "NOISE from C printf",
                  "NOISE before the agent", "NOISE at exit"):
        assert noise in err, noise
    assert b"NOISE" not in p.stdout


def _python38() -> Optional[str]:
    import glob
    import shutil
    import pwd
    home = pwd.getpwuid(os.getuid()).pw_dir   # not $HOME: a test worker has its own
    cands = sorted(glob.glob(os.path.join(home, ".pyenv/versions/3.8*/bin/python")))
    for cand in cands + [shutil.which("python3.8")]:
        if cand and subprocess.run([cand, "-c", "pass"], capture_output=True,
                                   timeout=60).returncode == 0:
            return cand
    return None


@pytest.mark.skipif(_python38() is None, reason="no Python 3.8 on this machine")
def test_runs_under_python38_and_explains_a_missing_numpy(wd: Path) -> None:
    py38 = _python38()
    assert py38
    has_numpy = subprocess.run([py38, "-c", "import numpy"], capture_output=True).returncode == 0
    t = task("t0", blob(wd, "dense.tflite"), wd)
    events, p = run_agent(job(wd, [t], python=[py38]), python=[py38])
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert events[0]["python"].startswith("3.8.")
    check_event_order(events, 1)
    if not has_numpy:
        assert events[0]["numpy"] is None and "pip install numpy" in events[0]["runtime_error"]
        (err,) = of(events, "error")
        assert err["type"] == "NoRuntime"


def test_agent_is_python38_compatible() -> None:
    p = subprocess.run(["vermin", "-t=3.8-", "--no-tips", "--violations", str(AGENT_SRC)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_agent_imports_only_stdlib_numpy_and_runtimes() -> None:
    import ast
    roots = set()
    for node in (n for f in sorted(AGENT_SRC.glob("*.py")) for n in ast.walk(ast.parse(f.read_text()))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    third_party = roots - set(sys.stdlib_module_names)
    assert third_party == {"numpy"}, third_party


# ------------------------------------------------------------------------------ in-process units

from edge_bench_agent import facts, task as T, tensors  # noqa: E402


def test_decode_throttled_bits() -> None:
    assert facts.decode_throttled(0) == []
    assert facts.decode_throttled(0x50005) == ["under_voltage", "throttled",
                                           "under_voltage_occurred", "throttled_occurred"]
    assert facts.decode_throttled(0xF000F) == [name for _, name in facts.THROTTLE_BITS]


def test_quantize_dequantize_roundtrip() -> None:
    x = np.array([-1.0, -0.5, 0.0, 0.25, 1.0, 5.0], np.float32)
    q = tensors.quantize(x, np.int8, 0.01, 3)
    assert q.dtype == np.int8
    assert q.tolist() == [-97, -47, 3, 28, 103, 127]  # clipped at the top
    d = tensors.dequantize(q, {"quantization": (0.01, 3)})
    assert d.dtype == np.float32
    np.testing.assert_allclose(d[:5], x[:5], atol=0.005 + 1e-6)
    assert tensors.quantize(np.array([0.5, -0.5, 1.5]), np.int16, 1.0, 0).tolist() == [0, 0, 2]  # ties to even


def test_random_inputs_have_dtype_shape_and_range() -> None:
    rng = np.random.default_rng(0)
    f = tensors.random_input({"dtype": np.float32, "shape": [1, 8, 8]}, rng)
    assert f.dtype == np.float32 and f.shape == (1, 8, 8) and -1 <= f.min() and f.max() < 1
    i8 = tensors.random_input({"dtype": np.int8, "shape": [4096]}, rng)
    assert i8.dtype == np.int8 and i8.min() < -100 and i8.max() > 100
    u8 = tensors.random_input({"dtype": np.uint8, "shape": [4096]}, rng)
    assert u8.dtype == np.uint8 and u8.max() > 200
    i16 = tensors.random_input({"dtype": np.int16, "shape": [4096]}, rng)
    assert i16.dtype == np.int16 and i16.max() > 10000
    i32 = tensors.random_input({"dtype": np.int32, "shape": [64]}, rng)
    assert i32.dtype == np.int32 and 0 <= i32.min() and i32.max() < 100


def test_timing_loop_semantics() -> None:
    calls = []
    samples, why, _ = T.timing_loop(lambda: calls.append(1), runs=7, min_seconds=0.0,
                                    max_seconds=None)
    assert len(samples) == len(calls) == 7 and why == "runs"
    samples, why, _ = T.timing_loop(lambda: None, runs=0, min_seconds=0.0, max_seconds=1.0)
    assert samples == [] and why == "runs"
    samples, why, loop_s = T.timing_loop(lambda: None, runs=10 ** 12, min_seconds=0.0,
                                         max_seconds=0.05)
    assert why == "max_seconds" and loop_s >= 0.05 and len(samples) >= 1


# the cooldown wait and the timing loop's stop rules with an injected clock (exact counts):
# tests/test_timing_clock.py


def test_device_info_never_raises_and_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    info = facts.collect_device_info()
    json.dumps(info)
    monkeypatch.setattr(facts, "_read", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    monkeypatch.setattr(facts.os, "cpu_count", lambda: (_ for _ in ()).throw(RuntimeError("x")))
    info = facts.collect_device_info()
    assert info["cores"] is None and info["cpu"] is None and info["os"] is None
    json.dumps(info)


def test_fit_shape_rules() -> None:
    d = {"shape": [1, 16], "shape_signature": [1, 16]}
    assert tensors.fit_shape((16,), d) == [1, 16]
    assert tensors.fit_shape((1, 16), d) == [1, 16]
    assert tensors.fit_shape((15,), d) is None
    dyn = {"shape": [1, 1, 1, 3], "shape_signature": [-1, -1, -1, 3]}
    assert tensors.fit_shape((8, 6, 3), dyn) == [1, 8, 6, 3]
    assert tensors.fit_shape((8, 6, 4), dyn) is None


def test_timing_loop_max_runs_caps_min_seconds() -> None:
    """A microsecond model with min_seconds would return millions of samples: max_runs caps it."""
    samples, why, _ = T.timing_loop(lambda: None, runs=5, min_seconds=100.0, max_seconds=None,
                                    max_runs=123)
    assert len(samples) == 123 and why == "max_runs"
    samples, why, _ = T.timing_loop(lambda: None, runs=5, min_seconds=0.0, max_seconds=None,
                                    max_runs=123)
    assert len(samples) == 5 and why == "runs"


def test_cpu_model_names_the_core_not_the_soc_family(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Pi 4's cpuinfo says Hardware: BCM2835 (the SoC family); the core is a Cortex-A72."""
    pi4 = {"cpu implementer": "0x41", "cpu part": "0xd08", "hardware": "BCM2835",
           "model": "Raspberry Pi 4 Model B Rev 1.4"}
    monkeypatch.setattr(facts, "_cpuinfo", lambda: pi4)
    assert facts.cpu_model() == "ARM Cortex-A72"
    monkeypatch.setattr(facts, "_cpuinfo", lambda: {"model name": "Intel(R) Xeon(R) CPU"})
    assert facts.cpu_model() == "Intel(R) Xeon(R) CPU"
    monkeypatch.setattr(facts, "_cpuinfo", lambda: {"hardware": "Qualcomm SM8550"})
    assert facts.cpu_model() == "Qualcomm SM8550"


def test_heartbeats_while_a_worker_is_quiet_and_timeout_still_kills_it(tmp_path: Path) -> None:
    """A worker that says nothing for a long time: the agent emits heartbeat progress events
    (so the host can tell a long model from a dead link), and the task's timeout_s still ends
    it."""
    sleeper = tmp_path / "slowpython"
    sleeper.write_text("#!/bin/sh\nsleep 30\n")
    sleeper.chmod(0o755)
    job = {"proto": 1, "job_id": "hb", "python": [str(sleeper)], "workdir": str(tmp_path),
           "heartbeat_s": 0.3, "tasks": [{"id": "t0", "model": {"path": "none.tflite"},
                                          "timeout_s": 2.0}]}
    p = subprocess.run([sys.executable, str(AGENT)], input=json.dumps(job), capture_output=True,
                       text=True, timeout=60)
    events = [json.loads(line) for line in p.stdout.splitlines()]
    beats = [e for e in events if e["event"] == "progress" and e.get("heartbeat")]
    assert len(beats) >= 3 and all(b["task"] == "t0" for b in beats)
    assert beats[-1]["elapsed_s"] > beats[0]["elapsed_s"]
    errors = [e for e in events if e["event"] == "error"]
    assert errors and errors[0]["type"] == "Timeout"
    assert events[-1]["event"] == "bye"


def test_bad_heartbeat_is_bad_job(tmp_path: Path) -> None:
    job = {"proto": 1, "python": [sys.executable], "heartbeat_s": -1, "tasks": []}
    p = subprocess.run([sys.executable, str(AGENT)], input=json.dumps(job), capture_output=True,
                       text=True, timeout=60)
    assert any(json.loads(x).get("type") == "BadJob" for x in p.stdout.splitlines())


# ------------------------------------------------------------------------------ processes

def test_processes_merge_into_one_result_with_eval_from_process_0(wd: Path,
                                                                   eval_x: np.ndarray) -> None:
    t = task("p3", blob(wd, "dense.tflite"), wd, runs=7, processes=3,
             eval=spec(blob(wd, "eval.npz"), wd))
    events, p = run_agent(job(wd, [t]))
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert of(events, "error") == []
    (r,) = of(events, "result")
    assert r["processes"] == 3 and len(r["process_runs"]) == 3
    assert all(n >= 7 for n in r["process_runs"])       # each process met its own runs
    assert sum(r["process_runs"]) == r["runs"] == len(r["samples_ns"])
    assert len(r["process_init_ms"]) == 3 and all(x > 0 for x in r["process_init_ms"])
    assert r["init_ms"] == r["process_init_ms"][0]
    assert r["stopped_by"] == "runs"
    assert r["eval"]["n"] == len(eval_x)                 # scored once (process 0)
    # progress: one per process, the last one completes the task
    prog = finished(events)
    assert [(e["done"], e.get("process")) for e in prog] == [(0, 1), (0, 2), (1, None)]
    assert started(events) == [("p3", 1), ("p3", 2), ("p3", 3)]
    # the merged line is still a protocol line the host parses
    assert events[-1] == {"proto": 1, "event": "bye", "tasks": 1, "errors": 0}


def test_single_process_result_says_so(wd: Path) -> None:
    events, _ = run_agent(job(wd, [task("p1", blob(wd, "dense.tflite"), wd, runs=5)]))
    (r,) = of(events, "result")
    assert r["processes"] == 1 and r["process_runs"] == [r["runs"]]


def test_interleave_runs_processes_round_robin(wd: Path) -> None:
    tasks = [task("a", blob(wd, "dense.tflite"), wd, runs=3, processes=2),
             task("b", blob(wd, "add.tflite"), wd, runs=3, processes=3),
             task("c", blob(wd, "dense.tflite"), wd, runs=3)]
    events, p = run_agent(job(wd, tasks, interleave=True))
    assert p.returncode == 0
    order = [(e["task"], e.get("process")) for e in finished(events)]
    # round 1: a1 b1 c(done); round 2: a(done) b2; round 3: b(done)
    assert order == [("a", 1), ("b", 1), ("c", None), ("a", None), ("b", 2), ("b", None)]
    # each process is announced as it starts, in the same round-robin order
    assert started(events) == [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("b", 2), ("b", 3)]
    assert [r["task"] for r in of(events, "result")] == ["c", "a", "b"]
    assert {r["task"]: r["processes"] for r in of(events, "result")} == {"a": 2, "b": 3, "c": 1}


CRASH_ON_PROCESS_1 = CRASHY_PYTHON.replace("b'\"crash-me\"' in data", "b'\"process\": 1' in data")


def test_a_crashing_process_fails_its_task_once_and_skips_the_rest(wd: Path,
                                                                     tmp_path: Path) -> None:
    wrapper = tmp_path / "crash_on_1.py"
    wrapper.write_text(CRASH_ON_PROCESS_1)
    tasks = [task("flaky", blob(wd, "dense.tflite"), wd, runs=3, processes=4),
             task("after", blob(wd, "dense.tflite"), wd, runs=3, processes=1)]
    events, p = run_agent(job(wd, tasks, python=PY + [str(wrapper)]))
    assert p.returncode == 0
    (err,) = of(events, "error")
    assert err["task"] == "flaky" and err["type"] == "WorkerCrashed" and err["process"] == 1
    assert [r["task"] for r in of(events, "result")] == ["after"]
    assert events[-1]["errors"] == 1
    # processes 2 and 3 of the failed task were never started
    assert [(e["task"], e.get("process")) for e in finished(events)] == [
        ("flaky", 1), ("flaky", None), ("after", None)]
    assert started(events) == [("flaky", 1), ("flaky", 2), ("after", 1)]


@pytest.mark.parametrize("bad", [0, 101, "3", 2.5])
def test_bad_processes_is_the_tasks_error(wd: Path, bad: Any) -> None:
    events, _ = run_agent(job(wd, [task("t", blob(wd, "dense.tflite"), wd, processes=bad)]))
    (err,) = of(events, "error")
    assert err["type"] == "BadJob" and "processes" in err["message"]
    assert of(events, "result") == []


def test_bad_interleave_is_bad_job(wd: Path) -> None:
    events, p = run_agent(job(wd, [], interleave="yes"))
    assert p.returncode == 2
    assert "interleave" in of(events, "error")[0]["message"]
