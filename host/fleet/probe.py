"""Health of one device: reachable, python, runtime, agent version, disk, governor, temperature."""
from __future__ import annotations

import time
from typing import Any, Dict, List

from ..config import Device
from .deploy import agent_argv, agent_blob, check_workdir, ensure_blobs
from ..errors import EdgeBenchError
from .runner import agent_message, device_python
from ..transports import open_transport


def probe_device(device: Device) -> Dict[str, Any]:
    """Never raises: the outcome is data ({"ok": bool, "error": str|None, ...facts})."""
    out: Dict[str, Any] = {"device": device.name, "transport": device.transport, "ok": False,
                           "error": None}
    t0 = time.monotonic()
    try:
        tr = open_transport(device)
        tr.connect()
        out["connect_ms"] = round((time.monotonic() - t0) * 1000, 1)
        if device.runner == "benchmark_model":
            try:
                return _probe_benchmark_model(device, tr, out)
            finally:
                tr.close()
        try:
            workdir = check_workdir(tr, tr.resolve_workdir(device.workdir))
            agent = agent_blob()
            ensure_blobs(tr, workdir, [agent])
            argv = agent_argv(device_python(device), workdir, agent, "--probe")
            hello = _hello(device, tr, argv)
            try:  # apart: a driver that crashes the process costs the accelerators line only
                accels = _hello(device, tr, argv + ["--accelerators"]).get("accelerators")
            except EdgeBenchError as e:
                accels = {"api": f"the accelerator probe failed: {e}"}
            df = tr.run(["df", "-Pk", workdir], timeout=30)
            free_mb = None
            lines = df.stdout.strip().splitlines()
            if df.exit_code == 0 and len(lines) >= 2:
                try:
                    free_mb = int(lines[-1].split()[3]) // 1024
                except (IndexError, ValueError):
                    pass
        finally:
            tr.close()
        info = hello.get("device_info") or {}
        if device.transport == "adb":
            out["phone"] = _adb_facts(tr)
        rt = hello.get("runtime") or {}
        out.update({
            "python": hello.get("python"), "numpy": hello.get("numpy"),
            "runtime": (f"{rt.get('name')} {rt.get('version')}" if rt else None),
            "runtime_error": hello.get("runtime_error"),
            "agent_version": hello.get("agent_version"), "free_disk_mb": free_mb,
            "arch": info.get("arch") or info.get("machine"), "cpu": info.get("cpu"),
            "cores": info.get("cores"), "governor": info.get("governor"),
            "temp_c": info.get("temp_c"), "throttled": info.get("throttled"),
            "device_info": info, "accelerators": accels,
        })
        out["ok"] = bool(rt)
        if not rt:
            out["error"] = "no TFLite runtime: " + str(hello.get("runtime_error"))
    except EdgeBenchError as e:
        out["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - a probe reports, never crashes the listing
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def _hello(device: Device, tr: Any, argv: List[str]) -> Dict[str, Any]:
    """The agent's hello for `argv`, run with the device's env (devices.yaml `env:`, as a job
    gets it: accelerator drivers such as VK_ICD_FILENAMES are often set there)."""
    proc = tr.start(argv, env=dict(device.env) or None)
    lines = list(proc.lines(idle_timeout=device.idle_timeout_s))
    code = proc.wait(device.idle_timeout_s)
    for line in lines:
        msg = agent_message(device.name, line)
        if msg["event"] == "hello":
            return msg
        if msg["event"] == "error":   # the bootstrap refused the agent (safepath): its reason
            raise EdgeBenchError(f"{msg.get('type')}: {msg.get('message')}")
    tail = " | ".join(proc.stderr_tail(100_000).strip().splitlines()[-3:])
    raise EdgeBenchError(f"agent probe exited {code} without hello: {tail}")


def _adb_facts(tr: Any) -> Dict[str, Any]:
    """state, model, ABI of an adb device (best effort: a probe never fails on facts)."""
    try:
        f = tr.facts()
        return {"state": tr.state(), "model": f.get("model"), "android": f.get("android"),
                "abi": f.get("abi"), "board": f.get("board")}
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


def _probe_benchmark_model(device: Device, tr: Any, out: Dict[str, Any]) -> Dict[str, Any]:
    """runner: benchmark_model: the binary on this host, its ABI vs the phone's, phone facts."""
    from .benchmark_model import check_abi, check_local_binary, elf_abi
    phone = _adb_facts(tr)
    out["phone"] = phone
    out["arch"] = phone.get("abi")
    binary = check_local_binary(device.name, device.benchmark_model)
    abilist = tr.abilist() if hasattr(tr, "abilist") else []
    check_abi(device.name, binary, abilist)
    out["runtime"] = f"benchmark_model ({elf_abi(binary) or 'unknown ABI'})"
    out["ok"] = True
    return out
