"""runner: benchmark_model -- flag mapping, the parser on REAL output texts (tests/data/benchmark_model,
sources in SOURCES.md there), and the push/run path through the real adb client and server to the
adbd stand-in with a stand-in executable (tests/data/benchmark_model/fake_benchmark_model.sh).
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from adb_fixtures import AdbServer, adb_server, make_adb_device, standin  # noqa: F401
from adbd_standin import AdbdStandin
from edge_bench.fleet import benchmark_model as bm
from edge_bench.errors import DeviceError, RemoteCommandError
from edge_bench.hashing import sha256_file
from edge_bench.fleet.plan import Artifact, ModelSpec, Timing
from edge_bench.fleet.runner import Task

pytestmark = pytest.mark.timeout(120)

DATA = Path(__file__).resolve().parent / "data" / "benchmark_model"
REPO = Path(__file__).resolve().parents[1]


def sample(name: str) -> dict:
    return bm.parse_output((DATA / name).read_text())


def close(a, b, rel=1e-9) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# --- flags --------------------------------------------------------------------------------------
def test_flags_map_every_option() -> None:
    f = bm.build_flags("/data/local/tmp/m.tflite", threads=4, runs=50, warmup=5, min_seconds=1.0,
                       max_seconds=60, xnnpack=False, gpu=True, nnapi=True, op_profiling=True,
                       peak_memory=True)
    assert f == ["--graph=/data/local/tmp/m.tflite", "--num_threads=4", "--num_runs=50",
                 "--warmup_runs=6", "--min_secs=1", "--max_secs=60", "--warmup_min_secs=0",
                 "--use_xnnpack=false", "--use_gpu=true", "--use_nnapi=true",
                 "--enable_op_profiling=true", "--report_peak_memory_footprint=true"]
    g = bm.build_flags("m.tflite", 1, 10, 0, 0.25, 5.5, xnnpack=None, exact_warmup=False)
    assert g == ["--graph=m.tflite", "--num_threads=1", "--num_runs=10", "--warmup_runs=1",
                 "--min_secs=0.25", "--max_secs=5.5"]
    assert set(bm.FLAGS.values()) >= {"--graph", "--num_threads", "--num_runs", "--warmup_runs",
                                      "--min_secs", "--max_secs", "--use_xnnpack", "--use_gpu",
                                      "--use_nnapi", "--enable_op_profiling"}


# --- parser on real texts ---------------------------------------------------------------------------
def test_current_format_with_percentiles() -> None:
    p = sample("linux_arm64_mobilenet_quant_cpu.txt")
    r = bm.result_fields(p)
    assert close(r["init_ms"], 87.639) and close(r["first_inference_ms"], 106.436)
    assert r["warmup"] == 4 and close(r["warmup_avg_ms"], 106.065)   # warmup count=5 incl. the first
    assert r["runs"] == 50
    lat = r["latency_ms"]
    assert close(lat["mean"], 105.784) and close(lat["std"], 0.260) and close(lat["min"], 105.416)
    assert close(lat["max"], 106.528) and close(lat["median"], 105.718) and close(lat["p95"], 106.281)
    assert lat["p90"] is None and lat["p99"] is None
    assert r["memory_mb"] == {"init": 14.4414, "overall": 14.8164, "peak": None}
    assert r["model_size_mb"] == 4.2761 and p["init_session_ms"] == 87.639
    assert r["samples_ms"] == [] and r["samples_source"] == "benchmark_model-summary"
    assert p["phases"][0]["min_runs"] == 1 and p["phases"][1]["min_secs"] == 1.0
    assert p["params"]["Graph"] == "mobilenet_quant_v1_224.tflite"
    assert r["op_profile"] is None


def test_gpu_run() -> None:
    r = bm.result_fields(sample("linux_arm64_mobilenet_quant_gpu.txt"))
    assert close(r["init_ms"], 1361.236) and close(r["latency_ms"]["mean"], 115.246)
    assert r["memory_mb"]["init"] == r["memory_mb"]["overall"] == 132.816


def test_single_sample_stat_and_scientific_notation() -> None:
    p = sample("ti_am62x_ssd_mobilenet_v2_no_xnnpack.txt")     # "count=1 curr=1041765", "1.04176e+06"
    assert p["warmup"]["count"] == 1 and p["warmup"]["min"] == p["warmup"]["max"] == 1041765
    r = bm.result_fields(p)
    assert r["warmup"] == 0 and close(r["warmup_avg_ms"], 1041.76)
    assert close(r["first_inference_ms"], 1041.765) and close(r["init_ms"], 6.418)
    assert r["runs"] == 50 and close(r["latency_ms"]["mean"], 971.535)
    assert r["latency_ms"]["median"] is None       # this build prints no percentiles
    assert p["params"]["Use xnnpack"] == "0"


def test_android_logcat_threadtime_prefixes() -> None:
    p = sample("android_logcat_yolo26n_p2.txt")
    r = bm.result_fields(p)
    assert r["runs"] == 25 and r["warmup"] == 2
    assert close(r["latency_ms"]["mean"], 145.528) and close(r["latency_ms"]["median"], 141.253)
    assert close(r["init_ms"], 92.318) and r["memory_mb"]["overall"] == 73.4102
    assert p["params"]["Num threads"] == "4" and p["params"]["Graph"] == "/data/local/tmp/best_int8.tflite"


def test_android_logcat_time_prefixes_excerpt() -> None:
    r = bm.result_fields(sample("android_logcat_time_excerpt.txt"))
    assert r["runs"] == 10 and r["warmup"] == 1
    assert close(r["latency_ms"]["mean"], 295.775) and close(r["latency_ms"]["p95"], 331.407)
    assert close(r["first_inference_ms"], 344.846) and r["memory_mb"]["init"] == 81.3125


def test_readme_op_profile_legacy_format() -> None:
    p = sample("tflite_readme_op_profiling.txt")
    prof = p["op_profile"]["regular"]
    assert len(prof["run_order"]) == 31 and prof["nodes_executed"] == 31
    first = prof["run_order"][0]
    assert first == {"node_type": "CONV_2D", "start_ms": 0.0, "first_ms": 4.269, "avg_ms": 4.269,
                     "pct": 0.107, "cdf_pct": 0.107, "mem_kb": 0.0, "times_called": 0,
                     "name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]"}
    assert [r["avg_ms"] for r in prof["top_by_computation_time"][:2]] == [6.652, 6.107]
    by_type = {r["node_type"]: r for r in prof["summary_by_node_type"]}
    assert by_type["CONV_2D"]["count"] == 15 and by_type["CONV_2D"]["pct"] == 89.27
    r = bm.result_fields(p)
    # old builds: the legacy summary line + the profiler's per-run totals (no count= stat lines)
    assert close(r["init_ms"], 38.467) and close(r["warmup_avg_ms"], 83.235)
    assert close(r["latency_ms"]["mean"], 79.7609) and r["runs"] == 50
    assert close(r["latency_ms"]["min"], 77.385) and close(r["latency_ms"]["max"], 88.213)


def test_current_op_profile_with_init_and_regular_sections() -> None:
    p = sample("linux_x86_efficientdet_op_profiling_head.txt")
    init = p["op_profile"]["init"]
    assert [r["node_type"] for r in init["run_order"]] == ["ModifyGraphWithDelegate", "AllocateTensors"]
    assert init["run_order"][1]["mem_kb"] == 10292.0 and init["run_order"][0]["name"] == "ModifyGraphWithDelegate/0"
    assert init["timings_us"]["count"] == 1 and init["timings_us"]["avg"] == 11409   # count=1 curr=11409
    reg = p["op_profile"]["regular"]["run_order"]
    assert reg[1]["node_type"] == "Convolution (NHWC, QC8) IGEMM"
    assert reg[1]["name"] == "Delegate/Convolution (NHWC, QC8) IGEMM:0"
    assert reg[2]["times_called"] == 13 and "start_ms" not in reg[2]
    r = bm.result_fields(p)
    assert r["runs"] == 64 and close(r["latency_ms"]["mean"], 15.5176)   # stat lines, not the profiler's


def test_formats_from_the_source_peak_memory_and_all_same() -> None:
    """Not a recorded run: the line formats of benchmark_model.cc / Stat::OutputToStream."""
    text = ("INFO: Running benchmark for at least 3 iterations and at least 0 seconds but terminate if"
            " exceeding 150 seconds.\nINFO: count=3 curr=250(all same)\n\n"
            "INFO: Running benchmark for at least 10 iterations and at least 0 seconds but terminate if"
            " exceeding 150 seconds.\nINFO: count=10 first=240 curr=239 min=238 max=241 avg=239.5 std=1\n"
            "INFO: Inference timings in us: Init: 1200, First inference: 250, Warmup (avg): 250,"
            " Inference (avg): 239.5\n"
            "INFO: Memory footprint delta from the start of the tool (MB): init=1.5 overall=2.25\n"
            "INFO: Overall peak memory footprint (MB) via periodic monitoring: 3.125\n")
    p = bm.parse_output(text)
    assert p["warmup"]["min"] == p["warmup"]["max"] == 250 and p["warmup"]["std"] == 0
    r = bm.result_fields(p)
    assert r["memory_mb"] == {"init": 1.5, "overall": 2.25, "peak": 3.125} and r["peak_rss_mb"] == 3.125
    assert r["warmup"] == 2 and close(r["latency_ms"]["mean"], 0.2395)


def test_garbage_is_no_result_not_a_crash() -> None:
    p = bm.parse_output("ERROR: Could not open 'x.tflite'.\nERROR: Failed to mmap model x.tflite\n")
    assert p["inference"] is None and p["errors"]


def _task(model: Path, threads: int = 1, timing: Timing = None) -> Task:
    spec = ModelSpec(name=str(model), path=model)
    art = Artifact(model=spec, variant="fp32", path=model, sha256=sha256_file(model),
                   bytes=model.stat().st_size)
    return Task(id="t0", artifact=art, threads=threads, timing=timing or Timing())


def test_result_record_is_a_valid_document_entry(tmp_path: Path) -> None:
    import jsonschema
    m = tmp_path / "m.tflite"
    m.write_bytes(b"\0" * 64)
    rec = bm.result_record("pixel", _task(m, threads=4), sample("android_logcat_yolo26n_p2.txt"))
    assert rec["status"] == "ok" and rec["runs"] == 25 and rec["samples_ms"] == []
    assert rec["samples_source"] == "benchmark_model-summary" and rec["median_ci_ms"] is None
    assert rec["runtime"]["name"] == "benchmark_model" and rec["runtime"]["threads"] == 4
    schema = json.loads((REPO / "host" / "results" / "schemas" / "run-1.json").read_text())
    doc = {"schema": "edge-bench/run/1", "run_id": "x", "label": None, "started_at": "2024-01-01T00:00:00+00:00",
           "host": {"edge_bench": "0", "python": "3"}, "results": [rec]}
    jsonschema.validate(json.loads(json.dumps(doc)), schema)
    bad = bm.result_record("pixel", _task(m), bm.parse_output("ERROR: Failed to mmap model m\n"))
    assert bad["status"] == "error" and "no timing summary" in bad["error"] and "mmap" in bad["error"]


# --- binaries: ELF ABI --------------------------------------------------------------------------------
def fake_elf(path: Path, ei_class: int, machine: int) -> Path:
    head = b"\x7fELF" + bytes([ei_class, 1, 1, 0]) + b"\0" * 8 + struct.pack("<HH", 2, machine)
    path.write_bytes(head + b"\0" * 100)
    return path


def test_elf_abi_and_mismatch(tmp_path: Path) -> None:
    a64 = fake_elf(tmp_path / "bm64", 2, 0xB7)
    a32 = fake_elf(tmp_path / "bm32", 1, 0x28)
    assert bm.elf_abi(a64) == "arm64-v8a" and bm.elf_abi(a32) == "armeabi-v7a"
    assert bm.elf_abi(DATA / "fake_benchmark_model.sh") is None
    assert bm.check_abi("p", a32, ["arm64-v8a", "armeabi-v7a"]) == "armeabi-v7a"
    with pytest.raises(DeviceError) as ei:
        bm.check_abi("p", a64, ["armeabi-v7a", "armeabi"])
    assert "ABI mismatch" in str(ei.value) and "arm64-v8a" in str(ei.value)


def test_missing_binary_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(DeviceError) as ei:
        bm.check_local_binary("pixel", None)
    assert "benchmark_model:" in str(ei.value)
    with pytest.raises(DeviceError) as ei:
        bm.check_local_binary("pixel", str(tmp_path / "nope"))
    assert "does not exist" in str(ei.value)


# --- push/run path through real adb to the stand-in ---------------------------------------------------
def _digits_or_tmp(tmp_path: Path) -> Path:
    d = REPO / "host" / "models" / "builtin" / "data" / "digits.tflite"
    if d.exists():
        return d
    m = tmp_path / "model.tflite"
    m.write_bytes(b"TFL3" + b"\0" * 1000)
    return m


def test_benchmark_model_pushed_and_run_over_adb(adb_server: AdbServer, standin: AdbdStandin,  # noqa: F811
                                                 make_adb_device, tmp_path: Path) -> None:
    from edge_bench.fleet.deploy import Blob, ensure_blobs, remote_path
    from edge_bench.transports.adb import ADBTransport
    dev = make_adb_device(adb_server, standin, runner="benchmark_model", taskset="1",
                          benchmark_model=str(DATA / "fake_benchmark_model.sh"))
    model = _digits_or_tmp(tmp_path)
    with ADBTransport(dev) as tr:
        wd = tr.resolve_workdir(dev.workdir)
        binary = bm.deploy_binary(tr, wd, bm.check_local_binary(dev.name, dev.benchmark_model))
        assert binary.startswith(wd + "/bin/")
        before = tr.bytes_pushed
        assert bm.deploy_binary(tr, wd, Path(dev.benchmark_model)) == binary
        assert tr.bytes_pushed == before          # content-addressed: not pushed twice
        mblob = Blob.for_file(model)
        ensure_blobs(tr, wd, [mblob])
        task = _task(model, threads=2, timing=Timing(runs=7, warmup=3, min_seconds=0.5, max_seconds=10))
        rec = bm.run_task(tr, task, binary, remote_path(wd, mblob), op_profiling=True,
                          device_info=tr.facts())
    args = (Path(binary).parent / "last-args.txt").read_text().split("\n")
    assert f"--graph={remote_path(wd, mblob)}" in args
    assert {"--num_threads=2", "--num_runs=7", "--warmup_runs=4", "--min_secs=0.5", "--max_secs=10",
            "--use_xnnpack=true", "--enable_op_profiling=true"} <= set(args)
    assert rec["status"] == "ok", rec
    assert rec["runs"] == 7 and rec["warmup"] == 3 and rec["threads"] == 2
    assert rec["samples_ms"] == [] and rec["samples_source"] == "benchmark_model-summary"
    assert close(rec["latency_ms"]["mean"], 105.784) and close(rec["init_ms"], 87.639)
    assert rec["op_profile"]["regular"]["summary_by_node_type"][0]["node_type"] == "CONV_2D"
    assert rec["device_info"]["model"] == "EdgeBenchStandin"
    assert rec["runtime"]["delegate"] == "xnnpack"


def test_benchmark_model_failure_is_a_remote_command_error(adb_server: AdbServer, standin: AdbdStandin,  # noqa: F811
                                                           make_adb_device, tmp_path: Path) -> None:
    from edge_bench.transports.adb import ADBTransport
    dev = make_adb_device(adb_server, standin, runner="benchmark_model")
    model = _digits_or_tmp(tmp_path)
    with ADBTransport(dev) as tr:
        wd = tr.resolve_workdir(dev.workdir)
        binary = bm.deploy_binary(tr, wd, DATA / "fake_benchmark_model.sh")
        with pytest.raises(RemoteCommandError) as ei:
            bm.run_task(tr, _task(model), binary, wd + "/blobs/missing.tflite")
        assert "Could not open" in str(ei.value) and ei.value.remote_exit_code == 1
        with pytest.raises(RemoteCommandError) as ei:
            bm.run_task(tr, _task(model), wd + "/bin/not-there", wd + "/x.tflite")
        assert ei.value.remote_exit_code == 127 and "ABI" in str(ei.value)


def test_abi_mismatch_is_caught_before_pushing(adb_server: AdbServer, make_adb_device,  # noqa: F811
                                               tmp_path: Path) -> None:
    from edge_bench.transports.adb import ADBTransport
    phone32 = AdbdStandin(tmp_path / "phone32", props={"ro.product.cpu.abi": "armeabi-v7a",
                                                       "ro.product.cpu.abilist": "armeabi-v7a,armeabi"}).start()
    try:
        dev = make_adb_device(adb_server, phone32)
        binary = fake_elf(tmp_path / "android_aarch64_benchmark_model", 2, 0xB7)
        with ADBTransport(dev) as tr:
            with pytest.raises(DeviceError) as ei:
                bm.deploy_binary(tr, tr.resolve_workdir(dev.workdir), binary)
            assert tr.bytes_pushed == 0
        assert "ABI mismatch" in str(ei.value) and "armeabi-v7a" in str(ei.value)
    finally:
        phone32.stop()


def test_run_tasks_emits_one_record_per_task_and_survives_a_bad_model(adb_server: AdbServer,  # noqa: F811
                                                                      standin: AdbdStandin,
                                                                      make_adb_device, tmp_path: Path) -> None:
    from edge_bench.transports.adb import ADBTransport
    dev = make_adb_device(adb_server, standin, runner="benchmark_model",
                          benchmark_model=str(DATA / "fake_benchmark_model.sh"))
    good = _digits_or_tmp(tmp_path)
    bad = tmp_path / "unreadable.tflite"
    bad.write_bytes(b"TFL3")    # 4 bytes: the fake binary rejects it as the real one would
    tasks = [_task(good, threads=1), _task(bad, threads=1), _task(good, threads=2)]
    tasks[1].id, tasks[2].id = "t1", "t2"
    got = []
    with ADBTransport(dev) as tr:
        bm.run_tasks(tr, tasks, lambda task, rec: got.append(rec))
    assert [r["status"] for r in got] == ["ok", "error", "ok"]
    assert "not a valid Flatbuffer" in got[1]["error"] and not got[1]["error"].startswith("phone:")
    assert got[2]["threads"] == 2 and got[0]["device_info"]["model"] == "EdgeBenchStandin"


def test_accelerator_names_map_to_benchmark_model_flags() -> None:
    from edge_bench.fleet.bm_accel import accelerator_flags
    from edge_bench_agent.accel_spec import parse_delegate
    assert accelerator_flags("cpu", None, "gpu") == (True, False, [], "gpu")
    assert accelerator_flags("cpu", None, "") == (False, False, [], "xnnpack")
    assert accelerator_flags("gpu", {"name": "gpu", "gpu_precision": "fp32"}, "") == (
        True, False, ["--gpu_precision_loss_allowed=false"], "gpu")
    assert accelerator_flags("npu", {"name": "npu"}, "") == (False, True, [], "nnapi")
    d = parse_delegate("/data/local/tmp/libedgetpu.so.1:device=usb,x=1")
    assert accelerator_flags("delegate:libedgetpu.so.1", d, "xnnpack") == (
        False, False, ["--external_delegate_path=/data/local/tmp/libedgetpu.so.1",
                       "--external_delegate_options=device:usb;x:1"], "delegate:libedgetpu.so.1")
