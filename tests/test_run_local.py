"""`edge-bench run` end to end on the `local` device: real agent, real LiteRT, real files."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parents[1]


def edge_bench(args: List[str], tmp_path: Path, env: Dict[str, str] = None,
               cwd: Path = None, timeout: float = 600) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["EDGE_BENCH_CACHE"] = str(tmp_path / "cache")
    # a private HOME: the `local` device's default workdir (and its device lock) is ~/.cache,
    # which a user's own edge-bench run on this machine may be holding
    e["HOME"] = str(tmp_path / "home")
    e.pop("EDGE_BENCH_CONFIG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", *args], capture_output=True,
                          text=True, env=e, cwd=str(cwd or tmp_path), timeout=timeout)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    tmp = tmp_path_factory.mktemp("run")
    out = tmp / "out.json"
    p = edge_bench(["run", "--model", "builtin:digits", "--variants", "fp32,dynamic-int8,int8",
                    "--threads", "1,2", "--runs", "20", "--warmup", "2", "--min-seconds", "0",
                    "--json", str(out), "--db", str(tmp / "r.sqlite"), "--label", "t1"], tmp)
    assert p.returncode == 0, p.stderr + p.stdout
    return {"doc": json.loads(out.read_text()), "proc": p, "tmp": tmp}


def test_document_has_every_result_with_raw_samples(local_run: Dict[str, Any]) -> None:
    doc = local_run["doc"]
    assert doc["schema"] == "edge-bench/run/1"
    assert doc["label"] == "t1"
    keys = {(r["variant"], r["threads"]) for r in doc["results"]}
    assert keys == {(v, t) for v in ("fp32", "dynamic-int8", "int8") for t in (1, 2)}
    for r in doc["results"]:
        assert r["status"] == "ok", r["error"]
        assert r["device"] == "local" and r["model"] == "builtin:digits"
        assert len(r["samples_ms"]) == r["runs"] >= 20
        # timed in 3 worker processes (the default) that share --runs: 7 each
        assert r["processes"] == 3 and len(r["process_runs"]) == 3
        assert sum(r["process_runs"]) == r["runs"] and min(r["process_runs"]) >= 7
        lat = r["latency_ms"]
        assert lat["min"] <= lat["median"] <= lat["p95"] <= lat["max"]
        assert r["init_ms"] > 0 and r["first_inference_ms"] > 0
        assert r["runtime"]["name"] == "ai-edge-litert" and r["runtime"]["xnnpack"] is True
        assert r["runtime"]["threads"] == r["threads"]
        assert platform.machine() in (r["device_info"].get("arch"), r["device_info"].get("machine"))
        assert r["peak_rss_mb"] > 1
        assert len(r["model_sha256"]) == 64 and r["model_bytes"] > 0
        # which quantizer made the variant, and with which recipe, travels with the result
        assert r["quantizer"] == (None if r["variant"] == "fp32" else "ai-edge-quantizer")
        assert r["recipe"]
        acc = r["accuracy"]
        assert acc["top1"] > 0.9 and abs(acc["top1"] - acc["top1_ref"]) <= 0.01
        assert acc["agreement_vs_ref"] >= 0.97 and not acc["flag"]
    sizes = {r["variant"]: r["model_bytes"] for r in doc["results"]}
    assert sizes["int8"] <= 0.4 * sizes["fp32"]


def test_document_validates_against_schema(local_run: Dict[str, Any]) -> None:
    from edge_bench.results.document import validate
    validate(local_run["doc"])


def test_plain_output_when_not_a_tty(local_run: Dict[str, Any]) -> None:
    out, err = local_run["proc"].stdout, local_run["proc"].stderr
    # one line per result as it arrives, with the full model name, then the table once
    lines = [ln for ln in out.splitlines() if ln.startswith("result ")]
    assert len(lines) == 6 and all("model=builtin:digits" in ln for ln in lines)
    assert out.count("edge-bench results") == 1
    header = next(ln for ln in out.splitlines() if ln.startswith("variant") or ln.startswith("model"))
    assert "median" in header and "dynamic-int8" in out
    # progress, one line per event on stderr: quantization, then the device's tasks
    assert "quantizing builtin:digits int8" in err and "[local] 6/6" in err
    assert "\x1b[" not in out + err  # no terminal escapes in a pipe
    assert "XNNPACK delegate" not in out + err  # the runtime's INFO line stays captured


def test_results_are_in_the_store(local_run: Dict[str, Any]) -> None:
    from edge_bench.results.store import Store
    with Store(local_run["tmp"] / "r.sqlite") as st:
        run = st.get_run("t1")
    assert len(run["results"]) == 6
    assert all(len(r["samples_ms"]) >= 20 for r in run["results"])


def test_json_to_stdout_is_pure_json(tmp_path: Path) -> None:
    p = edge_bench(["run", "--model", "builtin:digits", "--variants", "fp32", "--runs", "5",
                    "--min-seconds", "0", "--json", "-", "--no-store"], tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["results"][0]["status"] == "ok"


def test_min_seconds_and_max_seconds_bound_the_loop(tmp_path: Path) -> None:
    """runs AND min-seconds must both be met; max-seconds caps (benchmark_model semantics)."""
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--model", "builtin:mobilenet", "--variants", "fp32", "--runs", "3",
                    "--warmup", "0", "--min-seconds", "0.5", "--max-seconds", "20",
                    "--json", str(out), "--no-store"], tmp_path)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())["results"][0]
    assert sum(r["samples_ms"]) >= 500 and r["runs"] > 3
    p = edge_bench(["run", "--model", "builtin:mobilenet", "--variants", "fp32", "--runs", "100000000",
                    "--warmup", "0", "--min-seconds", "0", "--max-seconds", "0.3",
                    "--json", str(out), "--no-store"], tmp_path)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())["results"][0]
    assert 1 <= r["runs"] < 100000000


def test_one_process_and_interleave(tmp_path: Path) -> None:
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--model", "builtin:digits", "--variants", "fp32,int8", "--runs", "9",
                    "--min-seconds", "0", "--processes", "1", "--json", str(out), "--no-store"],
                   tmp_path)
    assert p.returncode == 0, p.stderr
    for r in json.loads(out.read_text())["results"]:
        assert r["processes"] == 1 and r["process_runs"] == [r["runs"]] and r["runs"] >= 9
    p = edge_bench(["run", "--model", "builtin:digits", "--variants", "fp32,int8", "--runs", "9",
                    "--min-seconds", "0", "--processes", "2", "--interleave", "--json", str(out),
                    "--no-store"], tmp_path)
    assert p.returncode == 0, p.stderr
    for r in json.loads(out.read_text())["results"]:
        assert r["status"] == "ok" and r["processes"] == 2 and r["process_runs"][0] >= 5


def test_second_run_pushes_nothing_new(tmp_path: Path) -> None:
    from edge_bench.config import Device
    from edge_bench.fleet.deploy import Blob, agent_blob, ensure_blobs
    from edge_bench.transports.local import LocalTransport
    model = REPO / "host" / "models" / "builtin" / "data" / "digits.tflite"
    dev = Device(name="local", transport="local", workdir=str(tmp_path / "wd"))
    blobs = [agent_blob(), Blob.for_file(model)]
    with LocalTransport(dev) as tr:
        first = ensure_blobs(tr, str(tmp_path / "wd"), blobs)
        second = ensure_blobs(tr, str(tmp_path / "wd"), blobs)
    assert first.bytes_pushed == model.stat().st_size + agent_blob().local.stat().st_size
    assert second.bytes_pushed == 0 and len(second.present) == 2


@pytest.mark.parametrize("args,pattern,code", [
    (["run", "--model", "nope.tflite"], "no such file", 2),
    (["run", "--devices", "pi9"], "unknown device 'pi9'", 2),
    (["run", "--variants", "fp32,int3"], "int3", 2),
    (["run", "--threads", "two"], "--threads", 2),
    (["run", "--processes", "0"], "--processes 0: expected 1 to 100", 2),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: List[str], pattern: str,
                                          code: int) -> None:
    p = edge_bench(args + ["--no-store"], tmp_path)
    assert p.returncode == code
    assert pattern in p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_not_a_tflite_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"this is not a flatbuffer at all")
    p = edge_bench(["run", "--model", str(bad), "--no-store"], tmp_path)
    assert p.returncode == 2 and "TFLite" in p.stderr and "Traceback" not in p.stderr


def test_device_without_python_is_a_failed_result_not_a_crash(tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n  nopy:\n    transport: local\n"
                   f"    python: /nonexistent/python3\n    workdir: {tmp_path / 'wd'}\n")
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--config", str(cfg), "--devices", "nopy", "--model", "builtin:digits",
                    "--variants", "fp32", "--json", str(out), "--no-store"], tmp_path)
    assert p.returncode == 3, p.stderr
    r = json.loads(out.read_text())["results"][0]
    assert r["status"] == "error" and "/nonexistent/python3" in r["error"]


def test_agent_that_prints_garbage_is_a_protocol_error(tmp_path: Path) -> None:
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho 'Welcome to my shell!'\ncat >/dev/null\n")
    fake.chmod(0o755)
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  chatty:\n    transport: local\n    python: {fake}\n"
                   f"    workdir: {tmp_path / 'wd'}\n")
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--config", str(cfg), "--devices", "chatty", "--model", "builtin:digits",
                    "--variants", "fp32", "--json", str(out), "--no-store"], tmp_path)
    assert p.returncode == 3
    r = json.loads(out.read_text())["results"][0]
    assert r["status"] == "error" and "not protocol JSON" in r["error"]
    assert "Welcome to my shell" in r["error"]


def _python_without_runtime() -> str:
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(cand) and os.path.realpath(cand) != os.path.realpath(sys.executable):
            ok = subprocess.run([cand, "-c", "import ai_edge_litert.interpreter"],
                                capture_output=True).returncode == 0
            if not ok:
                return cand
    pytest.skip("no python3 without a TFLite runtime on this machine")


def test_device_without_runtime_says_what_to_install(tmp_path: Path) -> None:
    py = _python_without_runtime()
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  bare:\n    transport: local\n    python: {py}\n"
                   f"    workdir: {tmp_path / 'wd'}\n")
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--config", str(cfg), "--devices", "bare", "--model", "builtin:digits",
                    "--variants", "fp32", "--json", str(out), "--no-store"], tmp_path)
    assert p.returncode == 3
    r = json.loads(out.read_text())["results"][0]
    assert r["status"] == "error" and "NoRuntime" in r["error"]
    assert "pip install ai-edge-litert" in r["error"]


@pytest.mark.parametrize("text,pattern", [
    ("version: 1\ndevices:\n  a:\n    transport: ssh\n", "devices.yaml:3: field devices.a.host is missing"),
    ("version: 1\ndevices: {a: {transport: local\n", "not valid YAML"),
])
def test_bad_devices_yaml_is_one_line_exit_2(tmp_path: Path, text: str, pattern: str) -> None:
    (tmp_path / "devices.yaml").write_text(text)
    p = edge_bench(["run", "--no-store"], tmp_path)  # ./devices.yaml is picked up
    assert p.returncode == 2 and pattern in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    p = edge_bench(["devices", "--config", str(tmp_path / "nope.yaml")], tmp_path)
    assert p.returncode == 2 and "no such devices file" in p.stderr


def test_a_model_longer_than_the_idle_timeout_is_not_a_stall(tmp_path: Path) -> None:
    """idle_timeout_s detects dead links and stopped agents, it does not cap a model's run time:
    the agent's heartbeats keep a long, quiet timing loop alive."""
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  slowpoke:\n    transport: local\n"
                   f"    workdir: {tmp_path / 'wd'}\n    idle_timeout_s: 1.5\n")
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--config", str(cfg), "--devices", "slowpoke", "--model",
                    "builtin:mobilenet", "--variants", "fp32", "--runs", "10", "--min-seconds", "4",
                    "--max-runs", "1000000", "--json", str(out), "--no-store"], tmp_path)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())["results"][0]
    assert r["status"] == "ok" and sum(r["samples_ms"]) >= 4000


def test_a_failed_commands_last_stderr_is_there_when_wait_returns() -> None:
    """wait() returns once the local command has exited; what it wrote to stderr just before
    must be in stderr_tail() then (a failed bootstrap's "exited 7" lost its reason, 2 times in
    300 here, when the stderr reader had not caught up). Real processes, many times over."""
    from edge_bench.transports.local import LocalProcess
    for i in range(300):
        p = LocalProcess("box", ["sh", "-c", f"echo out; echo 'E: reason {i}' >&2; exit 7"],
                         None, None)
        assert list(p.lines(idle_timeout=30)) == ["out"]
        assert p.wait(30) == 7
        assert f"E: reason {i}" in p.stderr_tail(), (i, p.stderr_tail())
