"""Health of one device: reachable, python, runtime, agent version, disk, governor, temperature."""
from __future__ import annotations

import time
from typing import Any, Dict

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
            res = tr.run(argv, timeout=device.idle_timeout_s)
            hello: Dict[str, Any] = {}
            for line in res.stdout.splitlines():
                msg = agent_message(device.name, line)
                if msg["event"] == "hello":
                    hello = msg
                elif msg["event"] == "error" and not hello:   # the bootstrap refused the agent
                    raise EdgeBenchError(f"{msg.get('type')}: {msg.get('message')}")
            if not hello:
                tail = " | ".join(res.stderr.strip().splitlines()[-3:])
                raise EdgeBenchError(f"agent probe exited {res.exit_code} without hello: {tail}")
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
            "device_info": info,
        })
        out["ok"] = bool(rt)
        if not rt:
            out["error"] = "no TFLite runtime: " + str(hello.get("runtime_error"))
    except EdgeBenchError as e:
        out["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - a probe reports, never crashes the listing
        out["error"] = f"{type(e).__name__}: {e}"
    return out


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
