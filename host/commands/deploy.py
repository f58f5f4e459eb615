"""edge-bench deploy: prepare devices (push the agent; --bootstrap installs a runtime), then probe."""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import UsageError

HELP = """\
Prepare devices for benchmarking, in parallel:
  1. push the agent (content-addressed: an unchanged agent is never pushed twice),
  2. with --bootstrap, push and run the device's bootstrap script (its output is streamed):
     deploy/bootstrap_pi.sh (Raspberry Pi OS 64-bit) or deploy/bootstrap_jetson.sh (JetPack 5/6),
     chosen by the device's `bootstrap:` setting (pi, jetson, none, or a script path on this
     host) or else by its tags (pi / raspberrypi / rpi, jetson). Android: see
     deploy/android-termux.md.
  3. probe the device (python, TFLite runtime, agent version) and report what was done.
"""

EXAMPLES = """\
examples:
  edge-bench deploy --devices pi4
  edge-bench deploy --devices tag:jetson --bootstrap
"""

SCRIPTS = {"pi": "bootstrap_pi.sh", "jetson": "bootstrap_jetson.sh"}
TAGS = {"pi": "pi", "raspberrypi": "pi", "rpi": "pi", "jetson": "jetson"}
ANDROID_NOTE = "no bootstrap script for Android: follow deploy/android-termux.md"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("deploy", help="prepare devices: push the agent, --bootstrap a runtime",
                       description=HELP, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", "-d", default=None,
                   help="device names and tag:TAG, comma separated (default: local)")
    p.add_argument("--config", "-c", default=None, help="devices.yaml to use")
    p.add_argument("--bootstrap", action="store_true",
                   help="also run the device's bootstrap script (installs numpy + a TFLite"
                        " runtime in a venv)")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    p.set_defaults(func=run)


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


class _Printer:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.lock = threading.Lock()

    def line(self, device: str, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            print(f"[{device}] {text}", flush=True)


def deploy_one(device: Any, bootstrap: bool, out: _Printer) -> Dict[str, Any]:
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
            out.line(name, note)
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
                   out: _Printer) -> Dict[str, Any]:
    from ..fleet.deploy import ensure_blobs, remote_path
    from ..errors import EdgeBenchError
    ensure_blobs(tr, workdir, [blob])
    path = remote_path(workdir, blob)
    out.line(device.name, f"bootstrap: running {script.name} on the device")
    t0 = time.monotonic()
    python = None
    tail: List[str] = []
    proc = tr.start(["bash", path], env={"EDGE_BENCH_WORKDIR": workdir})
    idle = max(600.0, float(device.idle_timeout_s))  # pip can be silent while it builds/downloads
    code: Optional[int] = None
    error = None
    try:
        for line in proc.lines(idle_timeout=idle):
            out.line(device.name, line)
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


def run(args: argparse.Namespace) -> int:
    from ..config import find_config, load_fleet
    fleet = load_fleet(find_config(args.config))
    devices = fleet.select(args.devices)
    if args.bootstrap:
        for d in devices:  # a bad bootstrap choice is a usage error before touching anything
            choose_bootstrap(d)
    out = _Printer(quiet=args.json)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(devices)))) as ex:
        reports = list(ex.map(lambda d: deploy_one(d, args.bootstrap, out), devices))
    if args.json:
        json.dump(reports, sys.stdout, indent=2, default=str)
        print()
    else:
        for rep in reports:
            for line in summary(rep):
                print(f"{rep['device']}: {line}")
    return 0 if all(r["ok"] for r in reports) else 3


def summary(rep: Dict[str, Any]) -> List[str]:
    """What deploy did on one device, one line per step."""
    lines: List[str] = []
    agent = rep.get("agent")
    if agent:
        name = agent["path"].rsplit("/", 1)[-1]
        if agent["pushed"]:
            lines.append(f"agent {name} pushed ({agent['bytes_pushed']:,} bytes)")
        else:
            lines.append(f"agent {name} already present ({agent['bytes']:,} bytes, nothing pushed)")
    boot = rep.get("bootstrap")
    if boot and boot.get("script"):
        state = "ok" if boot["exit_code"] == 0 else f"FAILED ({boot['error']})"
        lines.append(f"bootstrap {Path(boot['script']).name}: {state} in {boot['seconds']:.1f} s")
    elif boot and boot.get("note"):
        lines.append(boot["note"])
    pr = rep.get("probe")
    if pr:
        if pr.get("runtime"):
            lines.append(f"runtime {pr['runtime']} (python {pr.get('python')}, numpy"
                         f" {pr.get('numpy')}, agent {pr.get('agent_version')})")
        elif pr.get("ok") is False:
            lines.append(f"no runtime: {pr.get('error')}")
    if rep.get("python_hint"):
        lines.append(rep["python_hint"])
    if rep.get("error") and not (pr and pr.get("error") == rep["error"]) and \
            not (boot and boot.get("error") == rep["error"]):
        lines.append(f"FAILED: {rep['error']}")
    lines.append("ready" if rep["ok"] else "NOT ready")
    return lines
