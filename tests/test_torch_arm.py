"""The PyTorch routes on the emulated aarch64 Raspberry Pi 4 (qemu-user, over real SSH; see
test_arm.py): the variants litert-torch and PT2E made on the host run in the aarch64 LiteRT and
score like on x86_64, against the PyTorch model. Emulated timings mean nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import arm_rootfs
from test_arm import DEVICE, arm_python, fleet, rootfs  # noqa: F401 (fixtures)
from torch_helpers import BUILTIN, require_torch, torch_cache  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.arm, pytest.mark.timeout(1500)]


def test_both_routes_on_the_emulated_pi4_match_x86(fleet: Path, torch_cache: Path,  # noqa: F811
                                                   tmp_path: Path) -> None:
    require_torch()
    out = tmp_path / "run.json"
    env = arm_rootfs.clean_env()
    env["EDGE_BENCH_CACHE"] = str(torch_cache)
    p = subprocess.run(
        [sys.executable, "-m", "edge_bench.cli", "run", "--config", str(fleet),
         "--devices", f"{DEVICE},local", "--model", BUILTIN,
         "--quantizer", "ai-edge-quantizer,pt2e", "--variants", "fp32,int8",
         "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--processes", "1",
         "--json", str(out), "--no-store", "--quiet"],
        capture_output=True, text=True, timeout=1400, env=env, cwd=str(tmp_path))
    assert out.exists(), p.stdout + p.stderr
    doc = json.loads(out.read_text())
    by = {(r["device"], r["variant"]): r for r in doc["results"]}
    variants = ("fp32", "int8", "pt2e-int8")
    assert set(by) == {(d, v) for d in (DEVICE, "local") for v in variants}, by.keys()
    for key, r in by.items():
        assert r["status"] == "ok", (key, r["error"], p.stderr[-3000:])
    assert p.returncode == 0, p.stderr[-3000:]
    fp32_top1 = by[(DEVICE, "fp32")]["accuracy"]["top1"]
    for v in variants:
        arm, x86 = by[(DEVICE, v)], by[("local", v)]
        assert arm["device_info"]["arch"] == "aarch64" and x86["device_info"]["arch"] != "aarch64"
        assert arm["model_sha256"] == x86["model_sha256"]
        a, x = arm["accuracy"], x86["accuracy"]
        assert a["reference"] == "pytorch fp32" and not a.get("flag"), a
        assert a["top1"] >= fp32_top1 - 0.01, (v, a)  # int8 within 1 point of fp32
        assert abs(a["top1"] - x["top1"]) <= 0.01, (v, a, x)
        assert abs(a["agreement_vs_ref"] - x["agreement_vs_ref"]) <= 0.01, (v, a, x)
    assert by[(DEVICE, "fp32")]["accuracy"]["max_abs_err"] < 1e-3
