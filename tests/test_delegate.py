"""`run --delegate PATH[:key=value,...]` end to end on `local`: an external delegate .so built
here with gcc from tests/claim_delegate.c, loaded by the agent through the Interpreter API.
The delegate claims the nodes of the op codes given in its option `claim` (except one fed by a
node it already claimed), so how many ops it took and in how many partitions is known from the
model's graph alone, and the agent's count (read from the delegated graph) is checked against
it. A .so that does not load, refuses the model or takes nothing is a named error row."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import missing_system  # noqa: E402
from test_run_local import edge_bench  # noqa: E402
from test_wrong_runtime import old_runtime_python  # noqa: E402,F401 - a fixture

from edge_bench_agent.accel_spec import parse_delegate  # noqa: E402

BUILTIN = Path(__file__).resolve().parent.parent / "host" / "models" / "builtin" / "data"
FC, DEPTHWISE = 9, 4  # TFLite builtin op codes: FULLY_CONNECTED, DEPTHWISE_CONV_2D
FAST = ["--processes", "1", "--runs", "5", "--warmup", "1", "--min-seconds", "0"]


def build(tmp: Path) -> Path:
    if shutil.which("gcc") is None:
        missing_system("gcc is not installed (apt-get install gcc)")
    so = tmp / "claim.so"
    src = Path(__file__).resolve().parent / "claim_delegate.c"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(so), str(src)], check=True)
    return so


def expected(model: Path, codes: Tuple[int, ...]) -> Tuple[int, int]:
    """(ops, partitions) the delegate takes, from the model's graph by its own rule: each node
    of a claimed code, in execution order, unless an input comes from a node already taken."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.python import schema_py_generated as s  # op name -> code
    code = {k: v for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    made: set = set()
    taken = 0
    for d in Interpreter(model_path=str(model))._get_ops_details():
        if code.get(d["op_name"]) not in codes:
            continue
        if any(int(t) in made for t in d["inputs"]):
            continue
        made.update(int(t) for t in d["outputs"])
        taken += 1
    return taken, taken  # one node per partition


def config(tmp: Path) -> Path:
    p = tmp / "devices.yaml"
    p.write_text("version: 1\ndevices:\n  local:\n    transport: local\n")
    return p


def run(tmp: Path, args: List[str]) -> Dict[str, Any]:
    out = tmp / f"out{len(list(tmp.glob('out*.json')))}.json"
    p = edge_bench(["run", "--config", str(config(tmp)), *FAST, "--variants", "fp32",
                    "--no-store", "--json", str(out), *args], tmp, timeout=900)
    assert out.is_file(), p.stderr + p.stdout
    return {(r["model"], r["accelerator"]): r for r in json.loads(out.read_text())["results"]}


@pytest.fixture(scope="module")
def delegate_run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    tmp = tmp_path_factory.mktemp("delegate")
    so = build(tmp)
    for name in ("refuses.so", "takes_none.so"):
        shutil.copy(so, tmp / name)
    rows = run(tmp, ["--model", "builtin:digits", "--model", "builtin:mobilenet",
                     "--delegate", f"{so}:claim={FC}+{DEPTHWISE}",
                     "--delegate", str(tmp / "missing.so"),
                     "--delegate", f"{tmp / 'refuses.so'}:fail=prepare",
                     "--delegate", f"{tmp / 'takes_none.so'}:claim=77"])
    return {"rows": rows, "tmp": tmp, "so": so}


def test_ops_placed_match_the_known_answer(delegate_run: Dict[str, Any]) -> None:
    rows = delegate_run["rows"]
    for model in ("digits", "mobilenet"):
        r = rows[(f"builtin:{model}", "delegate:claim.so")]
        assert r["status"] == "ok", r["error"]
        p = r["placement"]
        ops, parts = expected(BUILTIN / f"{model}.tflite", (FC, DEPTHWISE))
        assert ops > 0
        assert (p["ops_placed"], p["partitions"]) == (ops, parts), (model, p)
        assert p["ops_total"] > ops  # the model's own ops: the softmax is never claimed
        assert p["asked"] == p["ran"] == "delegate:claim.so" and p["fallback"] is None
        assert p["options"]["options"] == {"claim": f"{FC}+{DEPTHWISE}"}
        assert r["latency_ms"]["median"] > 0
    # the delegate runs each node's own kernel: scored against fp32 like any row, it agrees
    acc = rows[("builtin:digits", "delegate:claim.so")]["accuracy"]
    cpu = rows[("builtin:digits", "cpu")]["accuracy"]
    assert acc["top1"] == pytest.approx(cpu["top1"]) and acc.get("flag") is None


def test_a_delegate_that_cannot_run_is_a_named_error_row(delegate_run: Dict[str, Any]) -> None:
    rows = delegate_run["rows"]
    tmp = delegate_run["tmp"]
    for model in ("builtin:digits", "builtin:mobilenet"):
        missing = rows[(model, "delegate:missing.so")]
        assert missing["status"] == "error" and "AcceleratorError" in missing["error"]
        assert str(tmp / "missing.so") in missing["error"], missing["error"]
        refuses = rows[(model, "delegate:refuses.so")]
        assert refuses["status"] == "error" and "refused" in refuses["error"], refuses["error"]
        none = rows[(model, "delegate:takes_none.so")]
        assert none["status"] == "error" and "took none of the model's" in none["error"]
        assert none["placement"]["ops_placed"] == 0 and none["placement"]["ran"] == "cpu"
        assert rows[(model, "cpu")]["status"] == "ok"  # the other rows are unchanged


def test_require_full_makes_a_partial_delegate_an_error(delegate_run: Dict[str, Any]) -> None:
    tmp = delegate_run["tmp"]
    rows = run(tmp, ["--model", "builtin:digits", "--require-full",
                     "--delegate", f"{delegate_run['so']}:claim={FC}"])
    r = rows[("builtin:digits", "delegate:claim.so")]
    ops, _ = expected(BUILTIN / "digits.tflite", (FC,))
    total = r["placement"]["ops_total"]
    assert ops < total
    assert r["status"] == "error" and f"ran {ops} of {total} ops (require_full)" in r["error"]


def test_delegate_argument_parsing() -> None:
    assert parse_delegate("/usr/lib/libedgetpu.so.1") == {
        "name": "delegate", "path": "/usr/lib/libedgetpu.so.1", "options": {},
        "require_full": False}
    d = parse_delegate("/opt/a:b/libarmnn.so:backends=GpuAcc,logging-severity=info")
    assert d["path"] == "/opt/a:b/libarmnn.so"
    assert d["options"] == {"backends": "GpuAcc", "logging-severity": "info"}
    assert parse_delegate("/opt/a:b/x.so")["path"] == "/opt/a:b/x.so"
    for bad in ("-x.so", "/x.so:=1", ""):
        with pytest.raises(ValueError):
            parse_delegate(bad)


def test_the_delegate_runs_on_tflite_runtime_too(old_runtime_python: Path,
                                                  delegate_run: Dict[str, Any]) -> None:
    """tflite-runtime 2.14 (its own venv, numpy<2) has no CompiledModel API but has
    load_delegate: the same delegate row, the same count, from an older runtime's graph."""
    tmp = delegate_run["tmp"]
    cfg = tmp / "old.yaml"
    cfg.write_text("version: 1\ndevices:\n"
                   f"  old:\n    transport: local\n    python: {old_runtime_python}\n"
                   f"    runtime: tflite_runtime\n    workdir: {tmp / 'wd-old'}\n")
    out = tmp / "old.json"
    p = edge_bench(["run", "--config", str(cfg), *FAST, "--devices", "old", "--variants", "fp32",
                    "--no-store", "--json", str(out), "--model", "builtin:digits",
                    "--delegate", f"{delegate_run['so']}:claim={FC}"], tmp, timeout=900)
    assert out.is_file(), p.stderr + p.stdout
    rows = {r["accelerator"]: r for r in json.loads(out.read_text())["results"]}
    r = rows["delegate:claim.so"]
    assert r["status"] == "ok", r["error"]
    assert r["runtime"]["name"] == "tflite-runtime"
    assert (r["placement"]["ops_placed"], r["placement"]["partitions"]) == \
        expected(BUILTIN / "digits.tflite", (FC,))


def test_devices_yaml_delegate_path_adds_the_row_on_that_device(
        delegate_run: Dict[str, Any]) -> None:
    """devices.yaml `delegate:` (benchmark_model's xnnpack/gpu/nnapi/none) also takes the path of
    an external delegate .so: the device's own file, so each device names its own; a value that
    is neither is one config error line naming the field."""
    tmp = delegate_run["tmp"]
    cfg = tmp / "own.yaml"
    cfg.write_text("version: 1\ndevices:\n  local:\n    transport: local\n"
                   f"    delegate: {delegate_run['so']}:claim={FC}\n")
    out = tmp / "own.json"
    p = edge_bench(["run", "--config", str(cfg), *FAST, "--variants", "fp32", "--no-store",
                    "--json", str(out), "--model", "builtin:digits"], tmp, timeout=900)
    assert out.is_file(), p.stderr + p.stdout
    rows = {r["accelerator"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"cpu", "delegate:claim.so"}
    r = rows["delegate:claim.so"]
    assert r["status"] == "ok", r["error"]
    assert (r["placement"]["ops_placed"], r["placement"]["partitions"]) == \
        expected(BUILTIN / "digits.tflite", (FC,))
    cfg.write_text("version: 1\ndevices:\n  local:\n    transport: local\n    delegate: edgetpu\n")
    p = edge_bench(["run", "--config", str(cfg), "--model", "builtin:digits", "--no-store"], tmp)
    assert p.returncode != 0 and "field devices.local.delegate is 'edgetpu'" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "path of an external delegate" in p.stderr
