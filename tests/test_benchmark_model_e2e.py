"""`runner: benchmark_model` end to end: real adb client+server, the adbd stand-in as the phone,
and a stand-in benchmark_model executable (prints a real output text) in the push/run path."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from adb_fixtures import AdbServer, adb_server, standin  # noqa: F401
from adbd_standin import AdbdStandin
from test_adb import edge_bench

FAKE = Path(__file__).parent / "data" / "benchmark_model" / "fake_benchmark_model.sh"


def config(tmp_path: Path, server: AdbServer, phone: AdbdStandin, delegate: str = "xnnpack") -> Path:
    binary = tmp_path / "benchmark_model"
    shutil.copy(FAKE, binary)
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n  phone:\n    transport: adb\n"
                   f"    serial: '{phone.serial}'\n    adb_path: {server.path}\n"
                   f"    adb_port: {server.port}\n    workdir: {phone.workdir}\n"
                   f"    runner: benchmark_model\n    benchmark_model: {binary}\n"
                   f"    delegate: {delegate}\n    retries: 0\n    connect_timeout_s: 5\n")
    return cfg


def test_benchmark_model_runner_end_to_end(adb_server: AdbServer, standin: AdbdStandin,  # noqa: F811
                                           tmp_path: Path) -> None:
    cfg = config(tmp_path, adb_server, standin, delegate="none")
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--config", str(cfg), "--devices", "phone", "--model", "builtin:digits",
                    "--variants", "fp32,int8", "--threads", "2", "--runs", "30", "--warmup", "3", "--op-profiling",
                    "--json", str(out), "--no-store"], tmp_path)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr + stdout
    doc = json.loads(out.read_text())
    assert [r["variant"] for r in doc["results"]] == ["fp32", "int8"]
    for r in doc["results"]:
        assert r["status"] == "ok", r["error"]
        assert r["runtime"]["name"] == "benchmark_model" and r["runtime"]["xnnpack"] is False
        assert r["samples_ms"] == [] and r["samples_source"] == "benchmark_model-summary"
        assert r["latency_ms"]["mean"] > 0 and r["init_ms"] > 0 and r["first_inference_ms"] > 0
        assert r["accuracy"] is None  # benchmark_model cannot run eval data
    # the flags really reached the binary on the phone
    args = list(Path(standin.workdir).glob("bin/last-args.txt"))[0].read_text().split()
    assert "--num_threads=2" in args and "--num_runs=30" in args and "--use_xnnpack=false" in args
    assert "--enable_op_profiling=true" in args
    assert doc["results"][0].get("op_profile"), "the per-op profile table was parsed"
    assert any(a.startswith("--graph=") and a.endswith(".tflite") for a in args)
    from edge_bench.results.document import validate
    validate(doc)


def test_benchmark_model_missing_in_config_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n  phone:\n    transport: adb\n    serial: X\n"
                   "    runner: benchmark_model\n")
    from edge_bench.config import load_fleet
    from edge_bench.errors import ConfigError
    import pytest
    with pytest.raises(ConfigError, match="benchmark_model is missing"):
        load_fleet(cfg, env={})


def test_devices_check_for_adb_phones(adb_server: AdbServer, standin: AdbdStandin,  # noqa: F811
                                      tmp_path: Path) -> None:
    cfg = config(tmp_path, adb_server, standin)
    text = cfg.read_text() + ("  termux:\n    transport: adb\n"
                              f"    serial: '{standin.serial}'\n    adb_path: {adb_server.path}\n"
                              f"    adb_port: {adb_server.port}\n    workdir: {standin.workdir}/py\n"
                              f"    python: {sys.executable}\n    retries: 0\n")
    cfg.write_text(text)
    p = edge_bench(["devices", "--config", str(cfg), "--devices", "phone,termux", "--check", "--json"],
                   tmp_path)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stdout + stderr
    rows = {r["device"]: r for r in json.loads(stdout)}
    for name in ("phone", "termux"):
        assert rows[name]["ok"], rows[name]
        assert rows[name]["phone"]["state"] == "device"
        assert rows[name]["phone"]["model"] == standin.props.get("ro.product.model")
    assert rows["phone"]["runtime"].startswith("benchmark_model")
    assert rows["termux"]["runtime"].startswith("ai-edge-litert")


def test_benchmark_model_respects_the_device_lock(adb_server: AdbServer, standin: AdbdStandin,  # noqa: F811
                                                  tmp_path: Path) -> None:
    """The native runner takes the same lock as the agent: one benchmark at a time per device."""
    import fcntl
    import os
    cfg = config(tmp_path, adb_server, standin)
    lock = Path(standin.workdir) / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    args = ["run", "--config", str(cfg), "--devices", "phone", "--model", "builtin:digits",
            "--variants", "fp32", "--runs", "5", "--no-store", "--json"]
    with open(lock, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        p = edge_bench(args + [str(tmp_path / "busy.json")], tmp_path)
        _, stderr = p.communicate(timeout=300)
    assert p.returncode == 3, stderr
    (r,) = json.loads((tmp_path / "busy.json").read_text())["results"]
    assert r["status"] == "error" and "is busy" in r["error"], r["error"]
    # released: the same run goes through
    p = edge_bench(args + [str(tmp_path / "free.json")], tmp_path)
    _, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    assert os.path.exists(lock)


def test_kill_9_of_the_controller_stops_benchmark_model_on_the_phone(
        adb_server: AdbServer, standin: AdbdStandin, tmp_path: Path) -> None:  # noqa: F811
    """Like the agent's job (tests/test_orphan.py, test_adb.py), the native runner watches the
    stdin the controller keeps open: the controller dies (kill -9) while benchmark_model times,
    its adb client forwards the EOF, and the binary is stopped on the phone and the device lock
    freed within seconds (it used to run on to its end, holding the lock)."""
    import time
    from procs import kill_all, pids_with
    from test_orphan import GONE_WITHIN_S, lock_free
    cfg = config(tmp_path, adb_server, standin)
    (Path(standin.workdir) / "bin" / "last-args.txt").unlink(missing_ok=True)  # an earlier test's
    p = edge_bench(["run", "--config", str(cfg), "--devices", "phone", "--model",
                    "builtin:digits", "--variants", "fp32", "--runs", "5", "--min-seconds", "120",
                    "--max-seconds", "300", "--no-store"], tmp_path)
    binaries = Path(standin.workdir) / "bin"
    lock = Path(standin.workdir) / "lock"
    try:
        deadline = time.monotonic() + 120
        while not (Path(standin.workdir) / "bin" / "last-args.txt").exists():   # it started
            assert p.poll() is None, "edge-bench ended first: " + p.stderr.read()
            assert time.monotonic() < deadline, "benchmark_model never started on the phone"
            time.sleep(0.1)
        assert pids_with(str(binaries)), "benchmark_model is not running"
        assert not lock_free(lock)
        p.kill()
        t_kill = time.monotonic()
        p.communicate(timeout=60)
        while (pids_with(str(binaries)) or not lock_free(lock)) \
                and time.monotonic() < t_kill + GONE_WITHIN_S:
            time.sleep(0.05)
        assert pids_with(str(binaries)) == [], "benchmark_model still runs on the phone"
        assert lock_free(lock), "the device lock is still held"
        print(f"benchmark_model gone, lock free {time.monotonic() - t_kill:.2f} s after kill -9")
    finally:
        kill_all(pids_with(standin.workdir))   # only this test's phone processes


def test_accelerators_map_to_benchmark_model_flags_and_are_checked(
        adb_server: AdbServer, standin: AdbdStandin, tmp_path: Path) -> None:  # noqa: F811
    """--accelerator gpu/npu and --delegate on a benchmark_model phone: the binary gets its own
    flags, and a row under an accelerator's name needs the binary's log saying the delegate ran
    (the stand-in prints the real tool's lines: GPU whole graph, NNAPI nothing, an external
    delegate 20 of 31 nodes, a missing .so its load failure)."""
    cfg = config(tmp_path, adb_server, standin)
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--config", str(cfg), "--devices", "phone", "--model", "builtin:digits",
                    "--variants", "fp32", "--runs", "5", "--warmup", "1", "--accelerator",
                    "cpu,gpu,npu", "--delegate", f"{FAKE}:k=v", "--delegate",
                    f"{tmp_path}/missing.so", "--json", str(out), "--no-store"], tmp_path)
    stdout, stderr = p.communicate(timeout=300)
    rows = {r["accelerator"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"cpu", "gpu", "npu", f"delegate:{FAKE.name}", "delegate:missing.so"}
    assert rows["cpu"]["status"] == "ok" and "placement" not in rows["cpu"]
    gpu = rows["gpu"]
    assert gpu["status"] == "ok", gpu["error"]
    assert gpu["runtime"]["delegate"] == "gpu" and gpu["runtime"]["xnnpack"] is False
    assert (gpu["placement"]["ops_placed"], gpu["placement"]["ops_total"],
            gpu["placement"]["partitions"]) == (31, 31, 1)
    npu = rows["npu"]  # NNAPI took nothing: the CPU timing is not shown under npu
    assert npu["status"] == "error" and "AcceleratorError" in npu["error"]
    assert "fell back to the CPU" in npu["error"] and npu["latency_ms"]["median"] is None
    ext = rows[f"delegate:{FAKE.name}"]
    assert ext["status"] == "ok", ext["error"]
    assert (ext["placement"]["ops_placed"], ext["placement"]["partitions"]) == (20, 3)
    missing = rows["delegate:missing.so"]
    assert missing["status"] == "error" and "Could not load" in missing["error"]
    # the last run was the missing delegate's: its flags reached the binary
    args = list(Path(standin.workdir).glob("bin/last-args.txt"))[0].read_text().split()
    assert f"--external_delegate_path={tmp_path}/missing.so" in args
