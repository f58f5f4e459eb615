"""The deploy service: prepare devices in parallel (push the agent, optionally run the
bootstrap script that installs a runtime, probe), one report per device, never raising for one
device's trouble.

`Reporter` is called with (device name, line) for every step and every line of bootstrap
output (the command prints them).
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
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


#: a device still busy this long after the stop is reported as interrupted and left behind
STOP_GRACE_S = 20.0
INTERRUPTED = "interrupted: stopped before it finished (run deploy again to finish it)"


class Stopper:
    """How a deploy in progress is stopped (Ctrl-C, SIGTERM): every device's transport is
    interrupted (a push stops and removes its partial file, a wait between connection attempts
    ends) and every running bootstrap is cancelled (its process group killed on the device).
    What registers after the stop is stopped at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._transports: List[Any] = []
        self._procs: List[Any] = []

    def add_transport(self, tr: Any) -> None:
        with self._lock:
            self._transports.append(tr)
        if self.event.is_set():
            tr.interrupt()

    def add_proc(self, proc: Any) -> None:
        with self._lock:
            self._procs.append(proc)
        if self.event.is_set():
            _cancel(proc)

    def stop(self) -> None:
        """Interrupt everything, cancel every process (in parallel: each may take a round trip
        to its device); returns when they are cancelled or after STOP_GRACE_S."""
        self.event.set()
        with self._lock:
            transports, procs = list(self._transports), list(self._procs)
        for tr in transports:
            tr.interrupt()
        from ..interrupts import stop_all
        stop_all([lambda p=p: _cancel(p) for p in procs], STOP_GRACE_S, name="deploy-stop")


def _cancel(proc: Any) -> None:
    try:
        proc.cancel()
    except Exception:  # noqa: BLE001 - best effort: the device may be gone
        pass


def deploy_one(device: Any, bootstrap: bool, out: Reporter,
               stopper: Optional[Stopper] = None) -> Dict[str, Any]:
    """Never raises: the outcome is data."""
    from ..fleet.deploy import Blob, agent_blob, check_workdir, ensure_blobs, remote_path
    from ..errors import EdgeBenchError
    from ..fleet.probe import probe_device
    from ..transports import open_transport

    name = device.name
    stopper = stopper or Stopper()
    rep = _report(name)
    try:
        script, note = choose_bootstrap(device) if bootstrap else (None, None)
        if note and script is None:
            rep["bootstrap"] = {"script": None, "note": note}
            out(name, note)
        tr = open_transport(device)
        tr.on_retry = lambda text: out(name, text)   # "connection refused; retrying in 2 s"
        stopper.add_transport(tr)
        tr.connect()
        try:
            workdir = check_workdir(tr, tr.resolve_workdir(device.workdir))
            agent = agent_blob()
            r = ensure_blobs(tr, workdir, [agent])
            rep["agent"] = {"path": remote_path(workdir, agent), "sha256": agent.sha256,
                            "bytes": agent.local.stat().st_size, "pushed": bool(r.pushed),
                            "bytes_pushed": r.bytes_pushed}
            if script is not None:
                rep["bootstrap"] = _run_bootstrap(tr, device, workdir, Blob.for_file(
                    script, prefix="bootstrap/"), script, out, stopper)
        finally:
            tr.close()
        if stopper.event.is_set():
            raise _Stopped()
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
    except _Stopped:
        pass
    except EdgeBenchError as e:
        rep["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - one device's trouble never stops the others
        rep["error"] = f"{type(e).__name__}: {e}"
    if stopper.event.is_set():    # whatever failed after the stop failed because of it
        rep.update(ok=False, error=INTERRUPTED, interrupted=True)
    return rep


def _report(name: str) -> Dict[str, Any]:
    """A device's report before anything was done (what deploy_one fills in)."""
    return {"device": name, "ok": False, "error": None, "agent": None, "bootstrap": None,
            "probe": None, "python_hint": None}


class _Stopped(Exception):
    """deploy_one's way out after a stop (not an error of the device)."""


def _run_bootstrap(tr: Any, device: Any, workdir: str, blob: Any, script: Path,
                   out: Reporter, stopper: Stopper) -> Dict[str, Any]:
    from ..fleet.deploy import ensure_blobs, remote_path
    from ..errors import EdgeBenchError
    ensure_blobs(tr, workdir, [blob])
    path = remote_path(workdir, blob)
    out(device.name, f"bootstrap: running {script.name} on the device")
    t0 = time.monotonic()
    python = None
    tail: List[str] = []
    proc = tr.start(["bash", path], env={"EDGE_BENCH_WORKDIR": workdir})
    stopper.add_proc(proc)
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
    if stopper.event.is_set():   # killed by our own stop: not the script's failure
        return {"script": str(script), "remote": path, "exit_code": code,
                "seconds": round(time.monotonic() - t0, 1), "python": None,
                "error": f"bootstrap {script.name} stopped: interrupted", "output_tail": tail,
                "interrupted": True}
    if code not in (None, 0):
        err_tail = " | ".join(proc.stderr_tail(2000).strip().splitlines()[-3:])
        error = f"bootstrap {script.name} exited {code}" + (f": {err_tail}" if err_tail else "")
    return {"script": str(script), "remote": path, "exit_code": code if error is None else (code or -1),
            "seconds": round(time.monotonic() - t0, 1), "python": python, "error": error,
            "output_tail": tail}


@dataclass
class Deployed:
    reports: List[Dict[str, Any]]
    #: the signal that stopped the deploy (SIGINT, SIGTERM), None if it ran to the end
    signal: Optional[int] = None


def deploy_all(devices: Sequence[Any], bootstrap: bool, out: Reporter,
               max_parallel: int = 16) -> Deployed:
    """deploy_one on every device in parallel; a bad bootstrap choice is a UsageError before
    any device is touched. Ctrl-C or SIGTERM stops every device (pushes, bootstraps) and
    returns at once with what each device got to; one still busy after STOP_GRACE_S is
    reported as interrupted and left behind (the worker threads do not keep edge-bench up)."""
    from ..interrupts import handling, join_all
    if bootstrap:
        for d in devices:
            choose_bootstrap(d)
    stopper = Stopper()
    reports: List[Optional[Dict[str, Any]]] = [None] * len(devices)
    slots = threading.BoundedSemaphore(max(1, min(max_parallel, len(devices) or 1)))

    def work(i: int, device: Any) -> None:
        with slots:
            if stopper.event.is_set():
                return
            reports[i] = deploy_one(device, bootstrap, out, stopper)

    got: List[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if not got:
            got.append(signum)   # acted on in the loop below, not inside a device's step

    workers = [threading.Thread(target=work, args=(i, d), name=f"deploy-{d.name}", daemon=True)
               for i, d in enumerate(devices)]
    with handling((signal.SIGINT, signal.SIGTERM), on_signal):
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers) and not got:
            for w in workers:
                w.join(0.1)
                if got:
                    break
        if got:
            out("*", "interrupted: stopping every device")
            stopper.stop()
            join_all(workers, STOP_GRACE_S)
    done = [r if r is not None else dict(_report(d.name), error=INTERRUPTED, interrupted=True)
            for d, r in zip(devices, list(reports))]
    return Deployed(done, got[0] if got else None)
