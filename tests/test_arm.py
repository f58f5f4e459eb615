"""The agent on aarch64: an emulated Raspberry Pi 4 (qemu-user, Debian bookworm arm64 rootfs,
the aarch64 wheels of numpy and LiteRT), reached over real SSH like a real board.

Opt-in: `pytest -m arm` (see docs/arm.md). The first run builds the root filesystem (about
25 s, needs Debian's archive and PyPI), later runs reuse it. Emulated timings mean nothing:
these tests check correctness only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import arm_rootfs  # noqa: E402

pytestmark = [pytest.mark.arm, pytest.mark.timeout(900)]

DATA = Path(__file__).resolve().parents[1] / "host" / "models" / "builtin" / "data"
DIGITS = DATA / "digits.tflite"
DIGITS_EVAL = DATA / "digits_eval.npz"
DIGITS_CALIB = DATA / "digits_calib.npz"
MOBILENET = DATA / "mobilenet.tflite"
MOBILENET_CALIB = DATA / "mobilenet_calib.npz"
DEVICE = "pi4-emu"
EM_AARCH64 = 183


# ------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def rootfs() -> Path:
    missing = arm_rootfs.missing_tools()
    if missing:
        msg = (f"the arm tests need {', '.join(missing)}: "
               f"apt-get install {' '.join(arm_rootfs.APT_PACKAGES)}")
        if os.environ.get("CI"):
            pytest.fail(msg)  # selected on purpose (-m arm): a skip would hide it
        pytest.skip(msg)
    return arm_rootfs.ensure_rootfs()


@pytest.fixture(scope="session")
def arm_python(rootfs: Path) -> List[str]:
    return arm_rootfs.python_cmd(rootfs)


def _run_emulated(arm_python: List[str], args: List[str], timeout: float = 600) -> str:
    p = subprocess.run(arm_python + args, capture_output=True, text=True, timeout=timeout,
                       env=arm_rootfs.clean_env())
    assert p.returncode == 0, f"emulated python failed ({p.returncode}):\n{p.stderr[-3000:]}"
    return p.stdout


@pytest.fixture(scope="session")
def mobilenet_int8(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """Full-integer int8 of the built-in MobileNet-style model (conv, depthwise, mean, FC), and a
    few of its calibration images as eval inputs."""
    from ai_edge_quantizer import quantizer, recipe
    from edge_bench.models.builtin.make_models import MOBILENET_INPUT
    d = tmp_path_factory.mktemp("arm-mobilenet")
    x = np.load(MOBILENET_CALIB)["x"].astype(np.float32)
    qt = quantizer.Quantizer(str(MOBILENET), recipe.static_wi8_ai8())
    cal = qt.calibrate({"serving_default": [{MOBILENET_INPUT: r[None]} for r in x[:8]]})
    qt.quantize(cal).export_model(str(d / "mobilenet_int8.tflite"))
    np.savez(d / "images.npz", x=x[-3:])
    return {"model": d / "mobilenet_int8.tflite", "data": d / "images.npz"}


@pytest.fixture(scope="session")
def digits_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Full-integer int8 digits (ai-edge-quantizer static_wi8_ai8, calibrated)."""
    from tflite_models import write_int8_model
    from edge_bench.models.builtin.make_models import DIGITS_INPUT
    out = tmp_path_factory.mktemp("arm-models") / "digits_int8.tflite"
    return write_int8_model(DIGITS, out, np.load(DIGITS_CALIB)["x"], input_name=DIGITS_INPUT)


# Runs every eval sample through a model with the first input/output, (de)quantizing int8.
# The same file runs on the host (x86_64) and in the rootfs (aarch64).
RUN_MODEL = r'''
import sys, json, platform, numpy as np
from ai_edge_litert.interpreter import Interpreter
model, data, out = sys.argv[1:4]
x = np.load(data)["x"]
it = Interpreter(model_path=model, num_threads=1)
it.allocate_tensors()
i, o = it.get_input_details()[0], it.get_output_details()[0]
rows = []
for row in x:
    v = row[None].astype(np.float32)
    if i["dtype"] != np.float32:
        s, z = i["quantization"]
        info = np.iinfo(i["dtype"])
        v = np.clip(np.round(v / s + z), info.min, info.max)
    it.set_tensor(i["index"], v.astype(i["dtype"]))
    it.invoke()
    r = it.get_tensor(o["index"]).astype(np.float32)
    if o["dtype"] != np.float32:
        s, z = o["quantization"]
        r = (r - z) * s
    rows.append(r[0])
np.save(out, np.array(rows, dtype=np.float32))
print(json.dumps({"machine": platform.machine(), "out_scale": float(o["quantization"][0])}))
'''


def _outputs(python: List[str], model: Path, tmp: Path, tag: str, env=None,
             data: Path = DIGITS_EVAL) -> Dict[str, Any]:
    script = tmp / "run_model.py"
    script.write_text(RUN_MODEL)
    out = tmp / f"{tag}.npy"
    p = subprocess.run(python + [str(script), str(model), str(data), str(out)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, f"{tag}: {p.stderr[-3000:]}"
    info = json.loads(p.stdout.strip().splitlines()[-1])
    info["y"] = np.load(out)
    return info


# ----------------------------------------------------------------------- the emulated python

def test_emulated_python_is_aarch64_with_the_aarch64_litert(rootfs: Path) -> None:
    info = arm_rootfs.smoke(rootfs)
    assert info["machine"] == "aarch64"
    assert info["python"].startswith("3.11.")
    from importlib.metadata import version
    assert info["litert"] == version("ai-edge-litert")  # same release as the host's reference
    assert info["numpy"] == version("numpy")
    assert info["litert_file"].startswith(str(rootfs)), "imported a LiteRT outside the rootfs"
    # the native parts of the LiteRT that ran are aarch64 ELF objects
    sos = list((rootfs / "usr/local/lib/python3.11/dist-packages/ai_edge_litert").rglob("*.so*"))
    assert sos
    for so in sos:
        head = so.read_bytes()[:20]
        assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == EM_AARCH64, so


def test_board_facts_come_from_the_rootfs(arm_python: List[str]) -> None:
    out = _run_emulated(arm_python, ["-c", (
        "import os, platform; print(open('/proc/device-tree/model','rb').read().rstrip(b'\\0')"
        ".decode()); print(platform.machine()); print(open('/proc/cpuinfo').read().count("
        "'CPU part\\t: 0xd08')); print(os.cpu_count())")])
    model, machine, a72, ncpu = out.strip().splitlines()
    assert model == arm_rootfs.BOARD_MODEL
    assert machine == "aarch64"
    assert int(a72) == os.cpu_count()


def test_litert_outputs_on_aarch64_match_the_host(arm_python: List[str], digits_int8: Path,
                                                   tmp_path: Path) -> None:
    """fp32 and int8 digits, every eval sample, aarch64 LiteRT vs the host's x86_64 one."""
    labels = np.load(DIGITS_EVAL)["y"]
    for model, tag in ((DIGITS, "fp32"), (digits_int8, "int8")):
        host = _outputs([sys.executable], model, tmp_path, f"host-{tag}")
        arm = _outputs(arm_python, model, tmp_path, f"arm-{tag}", env=arm_rootfs.clean_env())
        assert arm["machine"] == "aarch64"
        h, a = host["y"], arm["y"]
        assert h.shape == a.shape == (len(labels), 10)
        agree = float((h.argmax(1) == a.argmax(1)).mean())
        err = float(np.abs(h - a).max())
        if tag == "fp32":
            assert agree == 1.0 and err < 1e-5, (agree, err)
        else:  # ARM (NEON) and x86 int8 kernels differ: allow two output quantization steps
            assert agree >= 0.99, agree
            assert err <= 2 * arm["out_scale"] + 1e-6, (err, arm["out_scale"])
        top1_h = float((h.argmax(1) == labels).mean())
        top1_a = float((a.argmax(1) == labels).mean())
        assert top1_a > 0.9 and abs(top1_a - top1_h) <= 0.01, (tag, top1_h, top1_a)


# ------------------------------------------------------------ end to end: a Pi 4 over real SSH

@pytest.fixture
def fleet(sshd_server, arm_python: List[str], tmp_path: Path) -> Path:
    """devices.yaml with `pi4-emu` (ssh to the test sshd; python = the qemu command) and
    `local` (the host: the x86_64 reference for the same run)."""
    import yaml
    cfg = {"version": 1, "devices": {
        DEVICE: {"transport": "ssh", "host": sshd_server.host, "port": sshd_server.port,
                 "user": sshd_server.user, "key": str(sshd_server.client_key),
                 "known_hosts": str(sshd_server.known_hosts),
                 "python": list(arm_python),
                 "workdir": str(tmp_path / "pi4-workdir"),
                 "timeout_s": 600, "idle_timeout_s": 300, "retries": 0,
                 "tags": ["pi", "arm64", "emulated"]},
        "local": {"transport": "local", "workdir": str(tmp_path / "local-workdir")},
    }}
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _edge_bench(args: List[str], tmp_path: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = arm_rootfs.clean_env()
    env["EDGE_BENCH_CACHE"] = str(tmp_path / "cache")  # quantized variants
    env["EDGE_BENCH_DB"] = str(tmp_path / "results.sqlite")
    return subprocess.run([sys.executable, "-m", "edge_bench.cli"] + args, capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(tmp_path))


def test_probe_over_ssh_reports_an_aarch64_pi4(fleet: Path, rootfs: Path, tmp_path: Path) -> None:
    """`edge-bench devices --check`: the agent's --probe runs under the emulated python over SSH."""
    p = _edge_bench(["devices", "--check", "--json", "--config", str(fleet), "--devices", DEVICE],
                    tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    (row,) = json.loads(p.stdout)
    assert row["ok"], row
    from importlib.metadata import version
    assert row["arch"] == "aarch64"
    assert row["runtime"] == f"ai-edge-litert {version('ai-edge-litert')}"
    assert row["python"].startswith("3.11.")
    assert row["cores"] == os.cpu_count()
    # the full hello facts (the CLI's JSON leaves device_info out): probe in-process too
    from edge_bench.config import load_fleet
    from edge_bench.fleet.probe import probe_device
    (dev,) = load_fleet(fleet).select(DEVICE)
    pr = probe_device(dev)
    assert pr["ok"], pr
    info = pr["device_info"]
    assert info["machine"] == "aarch64"
    assert info["board"] == arm_rootfs.BOARD_MODEL
    assert info["os"] and "bookworm" in info["os"]


def test_run_fp32_and_int8_on_the_emulated_pi4_over_ssh(fleet: Path, tmp_path: Path) -> None:
    """`edge-bench run` on pi4-emu and local at once: fp32 and int8 (static_wi8_ai8, calibrated)
    builtin:digits, every eval sample scored on the host. The aarch64 results must be ok,
    come from the aarch64 LiteRT, and agree with the host's fp32 reference AND with what the
    x86_64 kernels computed for the same variant (int8 is where the two differ)."""
    out = tmp_path / "run.json"
    p = _edge_bench(["run", "--config", str(fleet), "--devices", f"{DEVICE},local",
                     "--model", "builtin:digits", "--variants", "fp32,int8",
                     "--runs", "3", "--warmup", "1", "--min-seconds", "0",
                     "--json", str(out), "--no-store", "--quiet"], tmp_path)
    assert out.exists(), p.stdout + p.stderr
    doc = json.loads(out.read_text())
    by = {(r["device"], r["variant"]): r for r in doc["results"]}
    assert set(by) == {(d, v) for d in (DEVICE, "local") for v in ("fp32", "int8")}, by.keys()
    for key, r in by.items():
        assert r["status"] == "ok", (key, r["error"], p.stderr[-3000:])
    assert p.returncode == 0, p.stdout + p.stderr

    from importlib.metadata import version
    for v in ("fp32", "int8"):
        arm, x86 = by[(DEVICE, v)], by[("local", v)]
        assert arm["device_info"]["arch"] == "aarch64"
        assert arm["device_info"]["board"] == arm_rootfs.BOARD_MODEL
        assert x86["device_info"]["arch"] != "aarch64"
        assert arm["runtime"]["name"] == "ai-edge-litert"
        assert arm["runtime"]["version"] == version("ai-edge-litert")
        assert arm["runs"] >= 3 and arm["model_sha256"] == x86["model_sha256"]
        acc_a, acc_x = arm["accuracy"], x86["accuracy"]
        assert acc_a is not None and acc_x is not None
        assert not acc_a.get("flag"), acc_a
        assert acc_a["top1"] > 0.9, acc_a
        # vs the host's fp32 reference
        if v == "fp32":
            assert acc_a["agreement_vs_ref"] == 1.0 and acc_a["max_abs_err"] < 1e-5, acc_a
        else:
            assert acc_a["agreement_vs_ref"] >= 0.95, acc_a
            assert acc_a["max_abs_err"] < 0.25, acc_a
        # vs the x86_64 kernels on the same variant: at most 1 % of the samples flip, and the
        # error vs fp32 is the same within two int8 output steps (1/256 each for softmax)
        assert abs(acc_a["top1"] - acc_x["top1"]) <= 0.01, (acc_a, acc_x)
        assert abs(acc_a["agreement_vs_ref"] - acc_x["agreement_vs_ref"]) <= 0.01, (acc_a, acc_x)
        assert abs(acc_a["max_abs_err"] - acc_x["max_abs_err"]) <= 2 / 256 + 1e-6, (acc_a, acc_x)


def test_conv_kernels_on_aarch64_match_the_host(arm_python: List[str], mobilenet_int8,
                                                 tmp_path: Path) -> None:
    """The MobileNet-style model (conv / depthwise / mean / FC: the NEON kernels a Pi runs for
    vision models), fp32 and int8, a few images: aarch64 vs the host."""
    data = mobilenet_int8["data"]
    for model, tag in ((MOBILENET, "fp32"), (mobilenet_int8["model"], "int8")):
        host = _outputs([sys.executable], model, tmp_path, f"host-mb-{tag}", data=data)
        arm = _outputs(arm_python, model, tmp_path, f"arm-mb-{tag}", env=arm_rootfs.clean_env(),
                       data=data)
        assert arm["machine"] == "aarch64"
        h, a = host["y"], arm["y"]
        assert h.shape == a.shape == (3, 1000)
        err = float(np.abs(h - a).max())
        if tag == "fp32":
            assert err < 1e-5 * max(1.0, float(np.abs(h).max())), err
        else:
            assert err <= 2 * arm["out_scale"] + 1e-6, (err, arm["out_scale"])
