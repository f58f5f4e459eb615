"""The deploy service: prepare devices in parallel (push the agent, optionally run the
bootstrap script that installs a runtime, probe), one report per device, never raising for one
device's trouble.

`Reporter` is called with (device name, line) for every step and every line of bootstrap
output (the command prints them).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..errors import UsageError

Reporter = Callable[[str, str], None]

SCRIPTS = {"pi": "bootstrap_pi.sh", "jetson": "bootstrap_jetson.sh"}
TAGS = {"pi": "pi", "raspberrypi": "pi", "rpi": "pi", "jetson": "jetson"}
ANDROID_NOTE = "no bootstrap script for Android: follow deploy/android-termux.md"


def deploy_dir() -> Path:
    """deploy/ (installed as the edge_bench_deploy package, so wheels carry the scripts)."""
    import edge_bench_deploy
    return Path(edge_bench_deploy.__file__).resolve().parent


def choose_bootstrap(device: Any, base: Optional[Path] = None) -> tuple:
    """(script path or None, note). Raises UsageError when a device has no usable choice."""
    hint = (device.bootstrap or "").strip()
    base = base or deploy_dir()
    if hint.lower() == "none":
        return None, "bootstrap: none (set in devices.yaml)"
    if hint:
        if hint.lower() in SCRIPTS:
            kind = hint.lower()
        else:
            path = Path(hint).expanduser()
            if not path.is_file():
                raise UsageError(f"{device.name}: bootstrap script {hint!r} does not exist",
                                 hint="set bootstrap: to pi, jetson, none, or a script path on"
                                      " this host")
            return path, f"bootstrap script {path}"
    else:
        kinds = sorted({TAGS[t.lower()] for t in device.tags if t.lower() in TAGS})
        if len(kinds) > 1:
            raise UsageError(f"{device.name}: tags {list(device.tags)} match several bootstrap"
                             f" scripts ({', '.join(kinds)})", hint="set bootstrap: in devices.yaml")
        if not kinds:
            if device.transport == "adb" or "android" in [t.lower() for t in device.tags]:
                return None, ANDROID_NOTE
            if device.transport == "local":
                return None, "local: nothing to bootstrap (uses this Python)"
            raise UsageError(f"{device.name}: no bootstrap script for this device",
                             hint="tag it pi or jetson, or set bootstrap: pi|jetson|none|PATH"
                                  " in devices.yaml")
        kind = kinds[0]
    path = base / SCRIPTS[kind]
    if not path.is_file():
        raise UsageError(f"bootstrap script {path} not found (deploy/ ships with the source tree)",
                         hint=f"run from a checkout of edge-bench or set bootstrap: to a copy of"
                              f" {SCRIPTS[kind]}")
    return path, f"bootstrap script {path.name}"


def deploy_one(device: Any, bootstrap: bool, out: Reporter) -> Dict[str, Any]:
    """Never raises: the outcome is data."""
    from ..fleet.deploy import Blob, agent_blob, ensure_blobs, remote_path
    from ..errors import EdgeBenchError
    from ..fleet.probe import probe_device
    from ..transports import open_transport

    name = device.name
    rep: Dict[str, Any] = {"device": name, "ok": False, "error": None, "agent": None,
                           "bootstrap": None, "probe": None, "python_hint": None}
    try:
        script, note = choose_bootstrap(device) if bootstrap else (None, None)
        if note and script is None:
            rep["bootstrap"] = {"script": None, "note": note}
            out(name, note)
        tr = open_transport(device)
        tr.connect()
        try:
            workdir = tr.resolve_workdir(device.workdir)
            agent = agent_blob()
            r = ensure_blobs(tr, workdir, [agent])
            rep["agent"] = {"path": remote_path(workdir, agent), "sha256": agent.sha256,
                            "bytes": agent.local.stat().st_size, "pushed": bool(r.pushed),
                            "bytes_pushed": r.bytes_pushed}
            if script is not None:
                rep["bootstrap"] = _run_bootstrap(tr, device, workdir, Blob.for_file(
                    script, prefix="bootstrap/"), script, out)
        finally:
            tr.close()
        venv_python = (rep["bootstrap"] or {}).get("python")
        probed = device
        if venv_python and tuple(device.python) != (venv_python,):
            rep["python_hint"] = (f"set `python: {venv_python}` for {name} in devices.yaml"
                                  f" (the venv the bootstrap made)")
            probed = device.with_overrides(python=(venv_python,))
        rep["probe"] = probe_device(probed)
        boot = rep["bootstrap"] or {}
        if boot.get("exit_code") not in (None, 0):
            rep["error"] = boot["error"]
        elif not rep["probe"]["ok"]:
            rep["error"] = rep["probe"]["error"]
        rep["ok"] = rep["error"] is None
    except EdgeBenchError as e:
        rep["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - one device's trouble never stops the others
        rep["error"] = f"{type(e).__name__}: {e}"
    return rep


def _run_bootstrap(tr: Any, device: Any, workdir: str, blob: Any, script: Path,
                   out: Reporter) -> Dict[str, Any]:
    from ..fleet.deploy import ensure_blobs, remote_path
    from ..errors import EdgeBenchError
    ensure_blobs(tr, workdir, [blob])
    path = remote_path(workdir, blob)
    out(device.name, f"bootstrap: running {script.name} on the device")
    t0 = time.monotonic()
    python = None
    tail: List[str] = []
    proc = tr.start(["bash", path], env={"EDGE_BENCH_WORKDIR": workdir})
    idle = max(600.0, float(device.idle_timeout_s))  # pip can be silent while it builds/downloads
    code: Optional[int] = None
    error = None
    try:
        for line in proc.lines(idle_timeout=idle):
            out(device.name, line)
            tail = (tail + [line])[-5:]
            if line.startswith("EDGE_BENCH_PYTHON="):
                python = line.split("=", 1)[1].strip() or None
        code = proc.wait(timeout=60)
    except EdgeBenchError as e:
        error = f"bootstrap {script.name} failed: {e}"
    if code not in (None, 0):
        err_tail = " | ".join(proc.stderr_tail(2000).strip().splitlines()[-3:])
        error = f"bootstrap {script.name} exited {code}" + (f": {err_tail}" if err_tail else "")
    return {"script": str(script), "remote": path, "exit_code": code if error is None else (code or -1),
            "seconds": round(time.monotonic() - t0, 1), "python": python, "error": error,
            "output_tail": tail}


def deploy_all(devices: Sequence[Any], bootstrap: bool, out: Reporter) -> List[Dict[str, Any]]:
    """deploy_one on every device in parallel; a bad bootstrap choice is a UsageError before
    any device is touched."""
    if bootstrap:
        for d in devices:
            choose_bootstrap(d)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(devices)))) as ex:
        return list(ex.map(lambda d: deploy_one(d, bootstrap, out), devices))
