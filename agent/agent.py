#!/usr/bin/env python3
"""edge-bench device agent: time TFLite/LiteRT models on this device (protocol: docs/protocol.md).

One self-contained file: stdlib + numpy + one TFLite runtime. It runs under the device's own
Python (>= 3.8 syntax).

    PYTHON agent.py            job (JSON) on stdin -> one JSON event per line on stdout
    PYTHON agent.py --probe    hello + bye (device facts, runtime)
    PYTHON agent.py --worker   internal: run ONE task (JSON on stdin) in this process
    PYTHON agent.py --version  print the agent version

stdout carries protocol lines only: at startup the real stdout is duplicated to a private fd used
for protocol writes and fd 1 is pointed at stderr, so prints from Python or C (the runtime) land
on stderr.
"""
from __future__ import annotations

import base64
import errno
import glob
import hashlib
import importlib
import json
import os
import platform
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from typing import IO, Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

try:
    import fcntl
except ImportError:  # not on POSIX: the device lock is skipped (logged)
    fcntl = None  # type: ignore[assignment]

try:
    import numpy as np
except Exception:  # noqa: BLE001 - reported in hello / as NoRuntime, never a bare traceback
    np = None  # type: ignore[assignment]

AGENT_VERSION = "0.1.0"
PROTO = 1

# (name, module, package for the version, what to install)
RUNTIMES: Tuple[Tuple[str, str, str, str], ...] = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "ai_edge_litert",
     "pip install ai-edge-litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "tflite_runtime",
     "pip install tflite-runtime 'numpy<2'"),
    ("tensorflow", "tensorflow.lite", "tensorflow", "pip install tensorflow"),
)
_RUNTIME_ALIASES: Dict[str, str] = {"litert": "ai-edge-litert", "tflite": "tflite-runtime",
                                    "tf": "tensorflow"}
INSTALL_HINT = ("install a TFLite runtime into this Python: `pip install ai-edge-litert` "
                "(preferred, Python 3.10-3.13), or `pip install tflite-runtime 'numpy<2'` "
                "(tflite-runtime needs numpy<2), or tensorflow")

TASK_DEFAULTS: Dict[str, Any] = {"threads": 1, "xnnpack": True, "warmup": 5, "runs": 50,
                                 "min_seconds": 1.0, "max_seconds": 150.0, "max_runs": None,
                                 "seed": 0, "timeout_s": None, "processes": 1}
#: most worker processes one task may ask for
MAX_PROCESSES = 100
STDERR_TAIL_LINES = 40
LOCK_NAME = "lock"
#: tests only: a directory prefixed to the /sys and /etc paths of the thermal, cooling and
#: Jetson probes (a fake sysfs); never set on a real device
SYSROOT_ENV = "EDGE_BENCH_AGENT_SYSROOT"
JETSON_POWER_GLOBS: Tuple[str, ...] = (
    # JetPack 4 (L4T 32, ina3221x iio driver): rail_name_N + in_power N _input (mW)
    "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_*",
    "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_power*_input",
    # JetPack 5/6 (mainline ina3221 hwmon driver): inN_label + inN_input (mV) + currN_input (mA)
    "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in*_label",
    "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in*_input",
    "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/curr*_input",
)
JETSON_POWER_MAX_FILES = 96

THROTTLE_BITS: Tuple[Tuple[int, str], ...] = (
    (0, "under_voltage"), (1, "arm_freq_capped"), (2, "throttled"), (3, "soft_temp_limit"),
    (16, "under_voltage_occurred"), (17, "arm_freq_capped_occurred"),
    (18, "throttled_occurred"), (19, "soft_temp_limit_occurred"),
)
ARM_PARTS: Dict[Tuple[str, str], str] = {
    ("0x41", "0xd03"): "ARM Cortex-A53", ("0x41", "0xd04"): "ARM Cortex-A35",
    ("0x41", "0xd05"): "ARM Cortex-A55", ("0x41", "0xd07"): "ARM Cortex-A57",
    ("0x41", "0xd08"): "ARM Cortex-A72", ("0x41", "0xd09"): "ARM Cortex-A73",
    ("0x41", "0xd0a"): "ARM Cortex-A75", ("0x41", "0xd0b"): "ARM Cortex-A76",
    ("0x41", "0xd0c"): "ARM Neoverse-N1", ("0x41", "0xd0d"): "ARM Cortex-A77",
    ("0x41", "0xd41"): "ARM Cortex-A78", ("0x41", "0xd44"): "ARM Cortex-X1",
    ("0x41", "0xd46"): "ARM Cortex-A510", ("0x41", "0xd47"): "ARM Cortex-A710",
    ("0x41", "0xd48"): "ARM Cortex-X2", ("0x41", "0xd4b"): "ARM Cortex-A78C",
    ("0x4e", "0x004"): "NVIDIA Carmel", ("0x41", "0xc07"): "ARM Cortex-A7",
    ("0x41", "0xc09"): "ARM Cortex-A9", ("0x41", "0xc0f"): "ARM Cortex-A15",
}


class AgentError(Exception):
    """An error with a protocol `type` (BadJob, NoRuntime, ChecksumMismatch, ...)."""

    def __init__(self, type_: str, message: str,
                 extra: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.extra = extra or {}


# --------------------------------------------------------------------------- output

_OUT: Optional[IO[str]] = None


def protect_stdout() -> None:
    """Keep the real stdout for protocol lines only; send fd 1 (Python and C prints) to stderr."""
    global _OUT
    if _OUT is not None:
        return
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001
        pass
    try:
        fd = os.dup(1)
        os.dup2(2, 1)
        _OUT = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
    except OSError:
        _OUT = sys.stdout
    sys.stdout = sys.stderr


def _json_default(o: Any) -> Any:
    if np is not None:
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    return str(o)


def write_line(msg: Dict[str, Any]) -> None:
    """Write one protocol object as a line on the protocol stream and flush it."""
    write_raw(json.dumps(msg, separators=(",", ":"), default=_json_default) + "\n")


def write_raw(line: str) -> None:
    out = _OUT if _OUT is not None else sys.stdout
    out.write(line)
    out.flush()


def emit(event: str, **fields: Any) -> None:
    msg: Dict[str, Any] = {"proto": PROTO, "event": event}
    msg.update(fields)
    write_line(msg)


def emit_error(task: Optional[str], type_: str, message: str,
               tb: Optional[str] = None, **extra: Any) -> None:
    emit("error", task=task, type=type_, message=message, traceback=tb, **extra)


def log(text: str) -> None:
    try:
        sys.stderr.write("edge-bench-agent: " + text + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass


# --------------------------------------------------------------------------- device facts

def _read(path: str, limit: int = 1 << 20) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001
        return None


def _read_int(path: str) -> Optional[int]:
    text = _read(path, 64)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _run(argv: Sequence[str], timeout: float = 3.0) -> Optional[str]:
    """stdout of a command, or None (missing, failing, slow). Never touches our stdout."""
    try:
        if shutil.which(argv[0]) is None:
            return None
        p = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=timeout)
        if p.returncode != 0:
            return None
        return p.stdout.decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001
        return None


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a fact probe never raises
        return None


def _cpuinfo() -> Dict[str, str]:
    """First value of every key in /proc/cpuinfo, keys lower-cased."""
    out: Dict[str, str] = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            out.setdefault(key.strip().lower(), value.strip())
    return out


def cpu_model() -> Optional[str]:
    """The CPU core's name. On ARM the decoded implementer/part (e.g. "ARM Cortex-A72") wins over
    /proc/cpuinfo's "Hardware" line, which names the SoC family (a Pi 4 says "BCM2835")."""
    info = _cpuinfo()
    for key in ("model name", "cpu model", "processor name"):
        value = info.get(key)
        if value and not value.isdigit():
            return value
    part = ARM_PARTS.get((info.get("cpu implementer", "").lower(),
                          info.get("cpu part", "").lower()))
    if part:
        return part
    for key in ("hardware", "model"):
        value = info.get(key)
        if value and not value.isdigit():
            return value
    return platform.processor() or None


def cpu_freq() -> Dict[str, Any]:
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    gov = _read(base + "scaling_governor", 256)
    cur = _read_int(base + "scaling_cur_freq")
    if cur is None:
        cur = _read_int(base + "cpuinfo_cur_freq")
    return {"governor": gov.strip() if gov else None, "cur_freq_khz": cur,
            "max_freq_khz": _read_int(base + "cpuinfo_max_freq"),
            "scaling_max_freq_khz": _read_int(base + "scaling_max_freq")}


def _zone_temp_c(zone: str) -> Optional[float]:
    raw = _read_int(os.path.join(zone, "temp"))
    if raw is None:
        return None
    temp = raw / 1000.0 if abs(raw) >= 1000 else float(raw)
    return round(temp, 2) if -40.0 < temp < 150.0 else None


def thermal_zones() -> Dict[str, float]:
    """{zone type: °C} of every readable /sys/class/thermal/thermal_zone*."""
    out: Dict[str, float] = {}
    for zone in sorted(glob.glob(_sys("/sys/class/thermal/thermal_zone*"))):
        temp = _zone_temp_c(zone)
        if temp is None:
            continue
        kind = (_read(os.path.join(zone, "type"), 256) or os.path.basename(zone)).strip()
        key = kind if kind not in out else kind + "." + os.path.basename(zone)
        out[key] = temp
    return out


def read_temp_c() -> Optional[float]:
    """SoC temperature: max over the thermal zones (PMIC zones report fixed values: skipped)."""
    temps = [t for k, t in thermal_zones().items() if "pmic" not in k.lower()]
    return max(temps) if temps else None


def _sys(path: str) -> str:
    """`path` under EDGE_BENCH_AGENT_SYSROOT when the tests set it (a fake sysfs)."""
    root = os.environ.get(SYSROOT_ENV)
    return root.rstrip("/") + path if root else path


def _unsys(path: str) -> str:
    root = os.environ.get(SYSROOT_ENV)
    return path[len(root.rstrip("/")):] if root and path.startswith(root.rstrip("/")) else path


def cooling_devices() -> Dict[str, Dict[str, Optional[int]]]:
    """{type: {cur, max}} of every /sys/class/thermal/cooling_device* (raw; the host decides
    which ones mean throttling: cpufreq/devfreq-type devices with cur > 0)."""
    out: Dict[str, Dict[str, Optional[int]]] = {}
    for dev in sorted(glob.glob(_sys("/sys/class/thermal/cooling_device*"))):
        cur = _read_int(os.path.join(dev, "cur_state"))
        if cur is None:
            continue
        kind = (_read(os.path.join(dev, "type"), 256) or os.path.basename(dev)).strip()
        key = kind if kind not in out else kind + "." + os.path.basename(dev)
        out[key] = {"cur": cur, "max": _read_int(os.path.join(dev, "max_state"))}
    return out


def is_jetson() -> bool:
    return os.path.exists(_sys("/etc/nv_tegra_release")) or shutil.which("tegrastats") is not None


def tegrastats_line(timeout: float = 2.0) -> Optional[str]:
    """ONE raw line of `tegrastats --interval 100`: start it, read a line, kill it. Never blocks
    past `timeout` (a hung tegrastats is killed, with its process group)."""
    exe = shutil.which("tegrastats")
    if exe is None:
        return None
    try:
        proc = subprocess.Popen([exe, "--interval", "100"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError:
        return None
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in buf and len(buf) < 65536:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    except Exception:  # noqa: BLE001
        pass
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass
        try:
            proc.wait(2.0)
        except Exception:  # noqa: BLE001
            pass
        try:
            proc.stdout.close()  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001
            pass
    if b"\n" not in buf:
        return None
    line = buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return line or None


def jetson_power_sysfs() -> Dict[str, str]:
    """Raw INA3221 power-monitor files {path: text} (JetPack 4 iio or JetPack 5/6 hwmon)."""
    out: Dict[str, str] = {}
    for pattern in JETSON_POWER_GLOBS:
        for path in sorted(glob.glob(_sys(pattern))):
            if len(out) >= JETSON_POWER_MAX_FILES:
                return out
            text = _read(path, 256)
            if text is not None:
                out[_unsys(path)] = text.strip()
    return out


def jetson_facts() -> Optional[Dict[str, Any]]:
    """Raw Jetson facts (the host parses them): L4T release, `nvpmodel -q`, one tegrastats
    line, INA3221 power rails from sysfs. None when this is not a Jetson."""
    if not is_jetson():
        return None
    release = _read(_sys("/etc/nv_tegra_release"), 4096)
    return {"l4t": release.strip().splitlines()[0] if release and release.strip() else None,
            "nvpmodel": _safe(lambda: _run(["nvpmodel", "-q"])),
            "tegrastats": _safe(tegrastats_line),
            "power_sysfs": _safe(jetson_power_sysfs) or {}}


def decode_throttled(value: int) -> List[str]:
    return [name for bit, name in THROTTLE_BITS if value & (1 << bit)]


def throttled() -> Optional[Dict[str, Any]]:
    """Raspberry Pi `vcgencmd get_throttled` -> {raw, value, flags}; None elsewhere."""
    text = _run(["vcgencmd", "get_throttled"])
    if not text or "=" not in text:
        return None
    raw = text.split("=", 1)[1].strip()
    try:
        value = int(raw, 0)
    except ValueError:
        return {"raw": raw, "value": None, "flags": []}
    return {"raw": raw, "value": value, "flags": decode_throttled(value)}


def meminfo() -> Dict[str, Optional[float]]:
    vals: Dict[str, int] = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            vals[parts[0].rstrip(":")] = int(parts[1])
    total, avail = vals.get("MemTotal"), vals.get("MemAvailable", vals.get("MemFree"))
    return {"mem_total_mb": round(total / 1024.0, 1) if total is not None else None,
            "mem_available_mb": round(avail / 1024.0, 1) if avail is not None else None}


def os_release() -> Optional[str]:
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"') or None
    return None


def board_model() -> Optional[str]:
    text = _read("/proc/device-tree/model", 4096)
    if not text:
        return None
    return text.replace("\x00", "").strip() or None


def android_props() -> Optional[Dict[str, Optional[str]]]:
    """Android build facts from `getprop`; None when not on Android."""
    if shutil.which("getprop") is None:
        return None
    keys = {"model": "ro.product.model", "platform": "ro.board.platform",
            "release": "ro.build.version.release", "abi": "ro.product.cpu.abi"}
    return {k: (_run(["getprop", prop]) or None) for k, prop in keys.items()}


def _arch() -> str:
    machine = platform.machine().lower()
    if machine in ("amd64", "x64"):
        return "x86_64"
    if machine in ("arm64", "armv8", "armv8l") and sys.maxsize > 2 ** 32:
        return "aarch64"
    return machine or "unknown"


def collect_device_info() -> Dict[str, Any]:
    """Best-effort facts about this device (docs/protocol.md "device_info"); never raises."""
    info: Dict[str, Any] = {
        "arch": _safe(_arch), "machine": _safe(platform.machine),
        "system": _safe(platform.system), "kernel": _safe(platform.release),
        "os": _safe(os_release), "cpu": _safe(cpu_model), "cores": _safe(os.cpu_count),
        "hostname": _safe(socket.gethostname), "python": platform.python_version(),
        "python_bits": 64 if sys.maxsize > 2 ** 32 else 32, "board": _safe(board_model),
    }
    info.update(_safe(cpu_freq) or {"governor": None, "cur_freq_khz": None,
                                    "max_freq_khz": None})
    zones = _safe(thermal_zones) or {}
    info["thermal_zones"] = zones
    info["temp_c"] = _safe(read_temp_c)
    info["throttled"] = _safe(throttled)
    info["cooling_devices"] = _safe(cooling_devices) or {}
    jetson = _safe(jetson_facts)
    if jetson:
        info["jetson"] = jetson
    info.update(_safe(meminfo) or {"mem_total_mb": None, "mem_available_mb": None})
    android = _safe(android_props)
    if android:
        info["android"] = android
        if not info["os"] and android.get("release"):
            info["os"] = "Android " + str(android["release"])
        if not info["board"]:
            info["board"] = android.get("model")
    return info


# --------------------------------------------------------------------------- runtime

class Runtime:
    """One imported TFLite runtime: its Interpreter class and OpResolverType enum."""

    def __init__(self, name: str, module: str, version: Optional[str],
                 interpreter_cls: Any, resolver_enum: Any) -> None:
        self.name = name
        self.module = module
        self.version = version
        self.interpreter_cls = interpreter_cls
        self.resolver_enum = resolver_enum

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "module": self.module, "version": self.version}

    def make(self, model_path: str, threads: Optional[int], xnnpack: bool) -> Any:
        kwargs: Dict[str, Any] = {"model_path": model_path}
        if threads is not None:
            kwargs["num_threads"] = int(threads)
        if not xnnpack:
            if self.resolver_enum is None:
                raise AgentError("ModelLoadError", "runtime %s cannot turn XNNPACK off "
                                 "(no OpResolverType)" % self.name)
            kwargs["experimental_op_resolver_type"] = \
                self.resolver_enum.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return self.interpreter_cls(**kwargs)


def _package_version(package: str) -> Optional[str]:
    try:
        mod = importlib.import_module(package)
        version = getattr(mod, "__version__", None)
        if version:
            return str(version)
    except Exception:  # noqa: BLE001
        pass
    try:
        import importlib.metadata as md
        return md.version(package.replace("_", "-"))
    except Exception:  # noqa: BLE001
        return None


def _import_runtime(entry: Tuple[str, str, str, str]) -> Runtime:
    name, module, package, _ = entry
    if package == "tensorflow":
        tf = importlib.import_module("tensorflow")
        lite = tf.lite
        resolver = getattr(getattr(lite, "experimental", None), "OpResolverType", None)
        return Runtime(name, module, _package_version(package), lite.Interpreter, resolver)
    mod = importlib.import_module(module)
    return Runtime(name, module, _package_version(package), mod.Interpreter,
                   getattr(mod, "OpResolverType", None))


def _runtime_entry(requested: str) -> Optional[Tuple[str, str, str, str]]:
    key = requested.strip().lower().replace("_", "-")
    key = _RUNTIME_ALIASES.get(key, key)
    for entry in RUNTIMES:
        names = (entry[0], entry[1].replace("_", "-"), entry[2].replace("_", "-"))
        if key in names:
            return entry
    return None


def _numpy_major() -> int:
    try:
        return int(np.__version__.split(".")[0]) if np is not None else 0
    except ValueError:
        return 0


def load_runtime(requested: Optional[str] = "auto") -> Runtime:
    """Import the requested runtime (or the first that imports for `auto`); AgentError NoRuntime."""
    if np is None:
        raise AgentError("NoRuntime", "numpy does not import in this Python; "
                         "pip install numpy, then " + INSTALL_HINT)
    req = (requested or "auto").strip()
    if req.lower() != "auto":
        entry = _runtime_entry(req)
        if entry is None:
            raise AgentError("NoRuntime", "unknown runtime %r: use auto, ai-edge-litert, "
                             "tflite-runtime or tensorflow" % req)
        try:
            return _import_runtime(entry)
        except Exception as e:  # noqa: BLE001 - ImportError, or a broken install
            raise AgentError("NoRuntime", "runtime %s (%s) does not import under %s: %s: %s; "
                             "to use it: %s. Or %s" % (entry[0], entry[1], sys.executable,
                                                       type(e).__name__, e, entry[3],
                                                       INSTALL_HINT))
    reasons: List[str] = []
    for entry in RUNTIMES:
        if entry[0] == "tflite-runtime" and _numpy_major() >= 2:
            reasons.append("%s: skipped, needs numpy<2 (numpy %s here)"
                           % (entry[1], np.__version__))
            continue
        try:
            return _import_runtime(entry)
        except Exception as e:  # noqa: BLE001
            reasons.append("%s: %s: %s" % (entry[1], type(e).__name__, e))
    raise AgentError("NoRuntime", "no TFLite runtime imports under %s (%s); %s"
                     % (sys.executable, "; ".join(reasons), INSTALL_HINT))


def probe_runtime(requested: Optional[str]) -> Tuple[Optional[Runtime], Optional[str]]:
    try:
        return load_runtime(requested), None
    except AgentError as e:
        return None, e.message


def hello_event(requested: Optional[str]) -> Dict[str, Any]:
    rt, err = probe_runtime(requested)
    return {"agent_version": AGENT_VERSION, "python": platform.python_version(),
            "executable": sys.executable,
            "numpy": np.__version__ if np is not None else None,
            "runtime": rt.describe() if rt is not None else None, "runtime_error": err,
            "device_info": collect_device_info()}


# --------------------------------------------------------------------------- files

def resolve_path(workdir: str, path: str) -> str:
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.join(workdir, path)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(workdir: str, spec: Any, what: str) -> Tuple[str, str, int]:
    """(absolute path, sha256, size) of a {"path", "sha256"} file, checked before use."""
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
        raise AgentError("BadJob", "%s must be an object with a 'path' (and 'sha256'), got %r"
                         % (what, spec))
    path = resolve_path(workdir, spec["path"])
    if not os.path.isfile(path):
        raise AgentError("FileMissing", "%s file is missing on the device: %s" % (what, path))
    actual = sha256_file(path)
    expected = spec.get("sha256")
    if expected and str(expected).lower() != actual:
        raise AgentError("ChecksumMismatch", "%s file %s has sha256 %s, expected %s (a partial "
                         "or stale upload: push it again)" % (what, path, actual, expected))
    return path, actual, os.path.getsize(path)


# --------------------------------------------------------------------------- tensors and data

def tensor_info(detail: Dict[str, Any], sig_name: Optional[str] = None) -> Dict[str, Any]:
    scale, zero_point = detail.get("quantization", (0.0, 0)) or (0.0, 0)
    out = {"name": detail.get("name"), "shape": [int(x) for x in detail["shape"]],
           "dtype": np.dtype(detail["dtype"]).name, "scale": float(scale),
           "zero_point": int(zero_point)}
    if sig_name is not None and sig_name != out["name"]:
        out["signature_name"] = sig_name
    return out


def _signature_names(interp: Any, kind: str) -> Dict[int, str]:
    """{tensor index: signature name} for inputs/outputs of the model's signatures."""
    out: Dict[int, str] = {}
    try:
        full = interp._get_full_signature_list()
        for sig in full.values():
            for name, index in (sig.get(kind) or {}).items():
                out.setdefault(int(index), str(name))
    except Exception:  # noqa: BLE001 - older runtimes: tensor names only
        pass
    return out


def _qparams(detail: Dict[str, Any]) -> Tuple[float, int]:
    scale, zero_point = detail.get("quantization", (0.0, 0)) or (0.0, 0)
    return float(scale), int(zero_point)


def quantize(x: "np.ndarray", dtype: Any, scale: float, zero_point: int) -> "np.ndarray":
    """Float -> integer with TFLite's rounding (half away from zero), clipped to the dtype."""
    v = np.asarray(x, dtype=np.float64) / scale + zero_point
    v = np.sign(v) * np.floor(np.abs(v) + 0.5)
    info = np.iinfo(dtype)
    return np.clip(v, info.min, info.max).astype(dtype)


def dequantize(y: "np.ndarray", detail: Dict[str, Any]) -> "np.ndarray":
    scale, zero_point = _qparams(detail)
    if np.issubdtype(y.dtype, np.integer) and scale > 0:
        return ((y.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
                ).astype(np.float32)
    return y.astype(np.float32)


def random_input(detail: Dict[str, Any], rng: "np.random.Generator") -> "np.ndarray":
    """Seeded random data of the tensor's dtype/shape: floats in [-1, 1), ints over their range."""
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(x) for x in detail["shape"])
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype.kind in "iu":
        if dtype.itemsize <= 2:
            info = np.iinfo(dtype)
            lo, hi = int(info.min), int(info.max) + 1
        else:  # int32/int64 inputs are usually indices or lengths: keep them small
            lo, hi = 0, 100
        return rng.integers(lo, hi, size=shape, dtype=dtype)
    raise AgentError("InvokeError", "cannot make random data for input %r of dtype %s; "
                     "send an `input` file" % (detail.get("name"), dtype))


def convert_for(arr: "np.ndarray", detail: Dict[str, Any], what: str) -> "np.ndarray":
    """User data -> the input tensor's dtype (quantizing floats for quantized integer inputs)."""
    target = np.dtype(detail["dtype"])
    if arr.dtype == target:
        return arr
    scale, zero_point = _qparams(detail)
    if target.kind in "iu" and arr.dtype.kind == "f":
        if scale > 0:
            return quantize(arr, target, scale, zero_point)
        return np.rint(arr).astype(target)
    if arr.dtype.kind in "biuf" and target.kind in "biuf":
        return arr.astype(target)
    raise AgentError("EvalDataError", "%s has dtype %s, the model input %r wants %s"
                     % (what, arr.dtype, detail.get("name"), target))


def load_npz(path: str, what: str) -> Dict[str, "np.ndarray"]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except Exception as e:  # noqa: BLE001
        raise AgentError("EvalDataError", "%s file %s is not a readable .npz of plain arrays: "
                         "%s: %s" % (what, path, type(e).__name__, e))


def _expected(detail: Dict[str, Any]) -> str:
    sig = detail.get("shape_signature")
    shape = [int(x) for x in (sig if sig is not None and len(sig) else detail["shape"])]
    return "[N, %s] (one sample %s) %s" % (", ".join(str(x) for x in shape[1:]) or "...",
                                           shape, np.dtype(detail["dtype"]).name)


def match_arrays(data: Dict[str, "np.ndarray"], details: List[Dict[str, Any]],
                 sig_names: Dict[int, str], what: str) -> List["np.ndarray"]:
    """The array for each model input: by tensor name, signature name, or `x` for one input."""
    arrays: List["np.ndarray"] = []
    for d in details:
        names = [d.get("name"), sig_names.get(int(d["index"]))]
        if len(details) == 1:
            names.append("x")
        found = next((data[n] for n in names if n is not None and n in data), None)
        if found is None and len(details) == 1 and len(data) == 1:
            found = next(iter(data.values()))
        if found is None:
            raise AgentError("EvalDataError", "%s has no array for model input %r (expected %s);"
                             " arrays in the file: %s" % (what, d.get("name"), _expected(d),
                                                          sorted(data)))
        if found.ndim == 0 or found.shape[0] == 0:
            raise AgentError("EvalDataError", "%s array for input %r is empty or a scalar "
                             "(shape %s); expected %s" % (what, d.get("name"),
                                                          list(found.shape), _expected(d)))
        arrays.append(found)
    counts = sorted(set(int(a.shape[0]) for a in arrays))
    if len(counts) > 1:
        raise AgentError("EvalDataError", "%s arrays have different sample counts %s"
                         % (what, counts))
    return arrays


def fit_shape(sample_shape: Tuple[int, ...], detail: Dict[str, Any]) -> Optional[List[int]]:
    """The batch-1 tensor shape that feeds one sample, honouring -1 dims; None if impossible."""
    sig = detail.get("shape_signature")
    sig = [int(x) for x in (sig if sig is not None and len(sig) else detail["shape"])]
    for cand in ([1] + list(sample_shape), list(sample_shape)):
        if len(cand) == len(sig) and all(s == -1 or s == c for s, c in zip(sig, cand)):
            if sig and sig[0] in (-1, 1) and cand[0] == 1:
                return cand
            if sig and sig[0] not in (-1, 1) and cand[0] == sig[0]:
                return cand
    return None


def sample_for(arr: "np.ndarray", i: int, detail: Dict[str, Any], what: str
               ) -> Tuple["np.ndarray", List[int]]:
    """(sample i converted to the input dtype and reshaped for batch 1, tensor shape it needs)."""
    sample = arr[i]
    shape = fit_shape(tuple(int(x) for x in sample.shape), detail)
    if shape is None:
        raise AgentError("EvalDataError", "%s array for input %r has samples of shape %s; "
                         "expected %s" % (what, detail.get("name"), list(sample.shape),
                                          _expected(detail)))
    return convert_for(np.ascontiguousarray(sample).reshape(shape), detail, what), shape


# --------------------------------------------------------------------------- one task

def _initial_shapes(interp: Any, first: Optional[List["np.ndarray"]], what: str) -> None:
    """Resize dynamic (-1) input dims: to the user sample's shape, else to 1."""
    for k, d in enumerate(interp.get_input_details()):
        sig = d.get("shape_signature")
        if sig is None or not len(sig) or all(int(x) >= 0 for x in sig):
            continue
        if first is not None:
            _, shape = sample_for(first[k], 0, d, what)
        else:
            shape = [1 if int(x) < 0 else int(x) for x in sig]
        interp.resize_tensor_input(int(d["index"]), shape)


def open_interpreter(rt: Runtime, path: str, threads: Optional[int], xnnpack: bool,
                     user_first: Optional[Dict[str, "np.ndarray"]]
                     ) -> Tuple[Any, float, Optional[List["np.ndarray"]]]:
    """(interpreter, init_ms, the user's input arrays matched to inputs): construct + allocate."""
    t0 = time.perf_counter_ns()
    try:
        interp = rt.make(path, threads, xnnpack)
    except AgentError:
        raise
    except Exception as e:  # noqa: BLE001
        hint = ""
        if rt.name == "tflite-runtime" and _numpy_major() >= 2:
            hint = " (tflite-runtime needs numpy<2; numpy %s is installed)" % np.__version__
        raise AgentError("ModelLoadError", "%s cannot load %s: %s: %s%s"
                         % (rt.name, path, type(e).__name__, e, hint))
    matched = None
    if user_first is not None:
        matched = match_arrays(user_first, interp.get_input_details(),
                               _signature_names(interp, "inputs"), "input")
    try:
        _initial_shapes(interp, matched, "input")
        interp.allocate_tensors()
    except AgentError:
        raise
    except Exception as e:  # noqa: BLE001
        raise AgentError("ModelLoadError", "allocate_tensors failed for %s: %s: %s"
                         % (path, type(e).__name__, e))
    return interp, (time.perf_counter_ns() - t0) / 1e6, matched


def set_inputs(interp: Any, matched: Optional[List["np.ndarray"]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for k, d in enumerate(interp.get_input_details()):
        if matched is not None:
            data, _ = sample_for(matched[k], 0, d, "input")
        else:
            data = random_input(d, rng)
        interp.set_tensor(int(d["index"]), data)


def timing_loop(invoke: Callable[[], Any], runs: int, min_seconds: float,
                max_seconds: Optional[float],
                max_runs: Optional[int] = None) -> Tuple[List[int], str, float]:
    """(samples_ns, stopped_by, loop_s): time invoke() until >= runs samples AND >= min_seconds
    of summed samples; stop anyway once max_seconds of wall time passed or max_runs samples were
    taken (after >= 1 sample). Only invoke() itself is between the two clock reads."""
    clock = time.perf_counter_ns
    min_ns = int(min_seconds * 1e9)
    max_ns = int(max_seconds * 1e9) if max_seconds is not None and max_seconds > 0 else -1
    cap = max_runs if max_runs is not None and max_runs > 0 else -1
    samples: List[int] = []
    append = samples.append
    n = 0
    total = 0
    stopped_by = "runs"
    start = clock()
    t1 = start
    while n < runs or total < min_ns:
        if n > 0:
            if max_ns >= 0 and t1 - start >= max_ns:
                stopped_by = "max_seconds"
                break
            if n == cap:
                stopped_by = "max_runs"
                break
        t0 = clock()
        invoke()
        t1 = clock()
        append(t1 - t0)
        total += t1 - t0
        n += 1
    if stopped_by == "runs" and n > runs:
        stopped_by = "min_seconds"
    return samples, stopped_by, (clock() - start) / 1e9


def _invoke_checked(interp: Any, what: str) -> Callable[[], Any]:
    def call() -> Any:
        try:
            return interp.invoke()
        except Exception as e:  # noqa: BLE001
            raise AgentError("InvokeError", "invoke() failed during %s: %s: %s"
                             % (what, type(e).__name__, e))
    return call


def run_eval(interp: Any, data: Dict[str, "np.ndarray"]) -> Dict[str, Any]:
    """Every eval sample through the model (batch 1); outputs dequantized, stacked, base64."""
    in_details = interp.get_input_details()
    out_details = interp.get_output_details()
    arrays = match_arrays(data, in_details, _signature_names(interp, "inputs"), "eval")
    current = {int(d["index"]): [int(x) for x in d["shape"]] for d in in_details}
    n = int(arrays[0].shape[0])
    collected: List[List["np.ndarray"]] = []
    for i in range(n):
        feeds = [sample_for(arrays[k], i, d, "eval") for k, d in enumerate(in_details)]
        resized = False
        for d, (_, shape) in zip(in_details, feeds):
            if current[int(d["index"])] != shape:
                interp.resize_tensor_input(int(d["index"]), shape)
                current[int(d["index"])] = shape
                resized = True
        if resized:
            interp.allocate_tensors()
            out_details = interp.get_output_details()
        for d, (sample, _) in zip(in_details, feeds):
            interp.set_tensor(int(d["index"]), sample)
        _invoke_checked(interp, "eval sample %d" % i)()
        outs = [dequantize(interp.get_tensor(int(d["index"])), d) for d in out_details]
        collected.append([o[0] if o.ndim >= 1 and o.shape[0] == 1 else o for o in outs])
    return {"n": n, "outputs": _pack_outputs(interp, collected)}


def _pack_outputs(interp: Any, collected: List[List["np.ndarray"]]) -> List[Dict[str, Any]]:
    sig_names = _signature_names(interp, "outputs")
    packed = []
    for j, d in enumerate(interp.get_output_details()):
        try:
            stacked = np.ascontiguousarray(np.stack([row[j] for row in collected]),
                                           dtype="<f4")
        except ValueError as e:
            raise AgentError("EvalDataError", "output %r changes shape between eval samples: %s"
                             % (d.get("name"), e))
        entry = {"name": d.get("name"), "shape": [int(x) for x in stacked.shape],
                 "dtype": "float32", "b64": base64.b64encode(stacked.tobytes()).decode("ascii")}
        sig = sig_names.get(int(d["index"]))
        if sig is not None and sig != entry["name"]:
            entry["signature_name"] = sig
        packed.append(entry)
    return packed


def peak_rss_kb() -> Optional[int]:
    try:
        import resource
    except ImportError:
        return None
    try:
        rss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except Exception:  # noqa: BLE001
        return None
    return rss // 1024 if sys.platform == "darwin" else rss


def _num(task: Dict[str, Any], key: str, kind: type, minimum: float,
         allow_none: bool = False) -> Any:
    value = task.get(key, TASK_DEFAULTS[key])
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum \
            or (kind is int and int(value) != value):
        raise AgentError("BadJob", "task field %r must be %s >= %s, got %r"
                         % (key, kind.__name__, minimum, value))
    return kind(value)


def task_params(task: Dict[str, Any]) -> Dict[str, Any]:
    """Validated task settings with defaults (TASK_DEFAULTS)."""
    if not isinstance(task, dict):
        raise AgentError("BadJob", "a task must be a JSON object, got %r" % (task,))
    xnnpack = task.get("xnnpack", True)
    if not isinstance(xnnpack, bool):
        raise AgentError("BadJob", "task field 'xnnpack' must be true or false, got %r"
                         % (xnnpack,))
    return {"threads": _num(task, "threads", int, 1, allow_none=True), "xnnpack": xnnpack,
            "warmup": _num(task, "warmup", int, 0), "runs": _num(task, "runs", int, 0),
            "min_seconds": _num(task, "min_seconds", float, 0),
            "max_seconds": _num(task, "max_seconds", float, 0, allow_none=True),
            "max_runs": _num(task, "max_runs", int, 0, allow_none=True),
            "seed": _num(task, "seed", int, 0), "processes": _processes(task)}


def _processes(task: Dict[str, Any]) -> int:
    k = _num(task, "processes", int, 1)
    if k > MAX_PROCESSES:
        raise AgentError("BadJob", "task field 'processes' must be at most %d, got %r"
                         % (MAX_PROCESSES, k))
    return k


def run_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Run one task in this process; the fields of its `result` event. AgentError on failure."""
    task = payload.get("task")
    p = task_params(task)
    workdir = os.path.expanduser(str(payload.get("workdir") or os.getcwd()))
    temp_before = _safe(read_temp_c)
    throttled_before = _safe(throttled)
    cooling_before = _safe(cooling_devices) or {}
    model_path, model_sha, model_bytes = verify_file(workdir, task.get("model"), "model")
    eval_path = verify_file(workdir, task["eval"], "eval")[0] if task.get("eval") else None
    input_path = verify_file(workdir, task["input"], "input")[0] if task.get("input") else None
    rt = load_runtime(payload.get("runtime") or "auto")
    user = load_npz(input_path, "input") if input_path else None
    interp, init_ms, matched = open_interpreter(rt, model_path, p["threads"], p["xnnpack"], user)
    set_inputs(interp, matched, p["seed"])
    t0 = time.perf_counter_ns()
    _invoke_checked(interp, "the first inference")()
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    invoke = _invoke_checked(interp, "warmup")
    for _ in range(p["warmup"]):
        invoke()
    try:  # the bare bound method inside the loop: no wrapper call between the clock reads
        samples, stopped_by, loop_s = timing_loop(interp.invoke, p["runs"], p["min_seconds"],
                                                  p["max_seconds"], p["max_runs"])
    except Exception as e:  # noqa: BLE001
        raise AgentError("InvokeError", "invoke() failed during timing: %s: %s"
                         % (type(e).__name__, e))
    info = collect_device_info()
    info["temp_c_before"] = temp_before
    info["temp_c_after"] = info.get("temp_c")
    info["throttled_before"] = throttled_before
    info["cooling_devices_before"] = cooling_before
    sig_in, sig_out = _signature_names(interp, "inputs"), _signature_names(interp, "outputs")
    ins = [tensor_info(d, sig_in.get(int(d["index"]))) for d in interp.get_input_details()]
    outs = [tensor_info(d, sig_out.get(int(d["index"]))) for d in interp.get_output_details()]
    ev = run_eval(interp, load_npz(eval_path, "eval")) if eval_path else None
    return {"init_ms": init_ms, "first_inference_ms": first_ms, "warmup": p["warmup"],
            "runs": len(samples), "samples_ns": samples, "stopped_by": stopped_by,
            "loop_s": loop_s, "peak_rss_kb": peak_rss_kb(),
            "cooldown_s": float(payload.get("cooldown_s") or 0.0),
            "runtime": {"name": rt.name, "module": rt.module, "version": rt.version,
                        "xnnpack": p["xnnpack"], "threads": p["threads"]},
            "device_info": info, "model_sha256": model_sha, "model_bytes": model_bytes,
            "inputs": ins, "outputs": outs, "eval": ev}


def worker_main() -> int:
    """--worker: one task from stdin -> one `result` or `error` line."""
    task_id: Optional[str] = None
    try:
        payload = json.loads(sys.stdin.read())
        if not isinstance(payload, dict) or not isinstance(payload.get("task"), dict):
            raise AgentError("BadJob", "worker input must be {\"task\": {...}, ...}")
        task_id = payload["task"].get("id")
        result = run_task(payload)
        emit("result", task=task_id, **result)
        return 0
    except AgentError as e:
        emit_error(task_id, e.type, e.message, traceback.format_exc())
        return 1
    except Exception as e:  # noqa: BLE001
        emit_error(task_id, "InternalError", "%s: %s" % (type(e).__name__, e),
                   traceback.format_exc())
        return 1


# --------------------------------------------------------------------------- job (parent)

def _read_job_text(stream: IO[bytes]) -> str:
    """The job text: up to EOF, or as soon as the lines read so far form one JSON object."""
    text = ""
    while True:
        line = stream.readline()
        if not line:
            return text
        text += line.decode("utf-8", "replace")
        stripped = text.lstrip()
        if stripped and not stripped.startswith("{"):
            return text
        try:
            json.loads(text)
            return text
        except ValueError:
            continue


def parse_job(text: str) -> Dict[str, Any]:
    """The validated job dict; AgentError BadJob saying what is wrong."""
    try:
        job = json.loads(text)
    except ValueError as e:
        raise AgentError("BadJob", "the job on stdin is not JSON (%s): %r" % (e, text[:200]))
    if not isinstance(job, dict):
        raise AgentError("BadJob", "the job must be a JSON object, got %s" % type(job).__name__)
    if job.get("proto", PROTO) != PROTO:
        raise AgentError("BadJob", "job speaks protocol %r, this agent %s speaks %d: deploy the "
                         "agent that matches the host" % (job.get("proto"), AGENT_VERSION, PROTO))
    python = job.get("python", [sys.executable])
    if isinstance(python, str):
        python = python.split()
    if not python or not all(isinstance(x, str) and x for x in python):
        raise AgentError("BadJob", "job 'python' must be a non-empty argv list, got %r"
                         % (job.get("python"),))
    job["python"] = python
    tasks = job.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise AgentError("BadJob", "job 'tasks' must be a list of objects")
    cooldown = job.get("cooldown")
    if cooldown is not None and not isinstance(cooldown, dict):
        raise AgentError("BadJob", "job 'cooldown' must be an object {temp_c, max_s}")
    wait = job.get("lock_wait_s")
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float))
                             or wait < 0):
        raise AgentError("BadJob", "job 'lock_wait_s' must be a number >= 0, got %r" % (wait,))
    beat = job.get("heartbeat_s")
    if beat is not None and (isinstance(beat, bool) or not isinstance(beat, (int, float))
                             or beat <= 0):
        raise AgentError("BadJob", "job 'heartbeat_s' must be a number > 0, got %r" % (beat,))
    controller = job.get("controller")
    if controller is not None and not isinstance(controller, dict):
        raise AgentError("BadJob", "job 'controller' must be an object {host, user}")
    if not isinstance(job.get("interleave", False), bool):
        raise AgentError("BadJob", "job 'interleave' must be true or false, got %r"
                         % (job.get("interleave"),))
    return job


# --------------------------------------------------------------------------- device lock

_LOCK_FD: Optional[int] = None


def lock_holder(job: Dict[str, Any]) -> Dict[str, Any]:
    """What this job writes into <workdir>/lock while it holds it."""
    ctl = job.get("controller") or {}
    now = time.time()
    return {"pid": os.getpid(), "job_id": job.get("job_id"),
            "controller_host": ctl.get("host"), "controller_user": ctl.get("user"),
            "device_host": _safe(socket.gethostname),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "since_unix": round(now, 3), "agent_version": AGENT_VERSION}


def read_lock_holder(path: str, tries: int = 10) -> Optional[Dict[str, Any]]:
    """The holder info in a lock file (retried briefly: the holder writes it just after
    taking the lock); None when unreadable."""
    for i in range(tries):
        text = _read(path, 8192)
        if text and text.strip():
            try:
                data = json.loads(text)
                if isinstance(data, dict):
                    return data
            except ValueError:
                pass
        if i + 1 < tries:
            time.sleep(0.02)
    return None


def _pid_alive(pid: Any) -> Optional[bool]:
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: exists, another user's
        return True


def describe_holder(holder: Optional[Dict[str, Any]]) -> str:
    """'held by job J (pid P, since T) from controller user@host'."""
    if not holder:
        return "held by another process (no holder info in the lock file)"
    text = "held by job %s (pid %s, since %s)" % (holder.get("job_id") or "?",
                                                 holder.get("pid") or "?",
                                                 holder.get("since") or "?")
    host, user = holder.get("controller_host"), holder.get("controller_user")
    if host or user:
        text += " from controller %s%s" % (user + "@" if user else "", host or "?")
    if _pid_alive(holder.get("pid")) is False:
        text += "; that pid has exited but a worker process it started still holds the lock"
    return text


def acquire_lock(workdir: str, holder: Dict[str, Any], wait_s: float = 0.0,
                 on_wait: Optional[Callable[[Optional[Dict[str, Any]], float], None]] = None,
                 poll_s: float = 0.2, note_every_s: float = 10.0) -> Optional[int]:
    """Take the exclusive flock on <workdir>/lock (waiting up to wait_s) and write `holder`
    into it; the fd, or AgentError DeviceBusy naming the holder. The kernel drops the lock
    when every process holding the fd is gone, so a dead holder never leaves a stale lock."""
    if fcntl is None:
        log("no fcntl on this platform: running without the device lock")
        return None
    path = os.path.join(workdir, LOCK_NAME)
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    except OSError as e:
        raise AgentError("InternalError", "cannot open the device lock %s: %s (another login "
                         "user's workdir? give each user its own workdir)" % (path, e))
    start = time.monotonic()
    next_note = start
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise AgentError("InternalError", "cannot lock %s: %s" % (path, e))
        now = time.monotonic()
        left = start + wait_s - now
        if left <= 0:
            current = read_lock_holder(path)
            os.close(fd)
            waited = " after waiting %.0f s" % wait_s if wait_s else ""
            raise AgentError("DeviceBusy", describe_holder(current) + waited,
                             {"holder": current, "lock_path": path})
        if on_wait is not None and now >= next_note:
            on_wait(read_lock_holder(path), left)
            next_note = now + note_every_s
        time.sleep(min(poll_s, left))
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(holder, sort_keys=True) + "\n").encode("utf-8"))
    return fd


def release_lock(fd: Optional[int]) -> None:
    if fd is None:
        return
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass


def cooldown_wait(cfg: Optional[Dict[str, Any]],
                  temp_fn: Callable[[], Optional[float]] = read_temp_c,
                  sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait (polling every 1 s, at most max_s) until the temperature is below temp_c."""
    if not cfg or cfg.get("temp_c") is None:
        return 0.0
    limit, max_s = float(cfg["temp_c"]), float(cfg.get("max_s", 120.0))
    start = time.monotonic()
    while True:
        temp = _safe(temp_fn)
        waited = time.monotonic() - start
        if temp is None or temp < limit or waited >= max_s:
            return round(waited, 3)
        sleep(min(1.0, max(0.0, max_s - waited)))


def _pump(stream: IO[bytes], sink: Callable[[bytes], None]) -> None:
    try:
        for line in iter(stream.readline, b""):
            sink(line)
    except Exception:  # noqa: BLE001
        pass
    finally:
        sink(b"")


def _stderr_sink(tail: Deque[str]) -> Callable[[bytes], None]:
    def sink(chunk: bytes) -> None:
        if not chunk:
            return
        tail.append(chunk.decode("utf-8", "replace").rstrip("\n"))
        try:
            os.write(2, chunk)
        except OSError:
            pass
    return sink


def _crash_message(rc: int, python: List[str], tail: Deque[str]) -> Tuple[str, Dict[str, Any]]:
    if rc < 0:
        try:
            signame = signal.Signals(-rc).name
        except ValueError:
            signame = "signal %d" % -rc
        head = "worker killed by %s" % signame
        extra: Dict[str, Any] = {"signal": -rc, "signal_name": signame, "exit_code": None}
    else:
        head = "worker exited with code %d without a result" % rc
        extra = {"signal": None, "exit_code": rc}
    text = "\n".join(tail).strip()
    extra["stderr_tail"] = text or None
    msg = "%s (python: %s)%s" % (head, " ".join(python),
                                 "; stderr tail:\n" + text if text else "; no stderr output")
    return msg, extra


def run_worker(python: List[str], payload: Dict[str, Any], timeout_s: Optional[float],
               heartbeat_s: Optional[float] = None, position: Tuple[int, int] = (0, 1),
               on_result: Optional[Callable[[Dict[str, Any]], None]] = None) -> Tuple[int, int]:
    """Run one task in a child process. Its `error` events are relayed at once; its `result`
    goes to `on_result` (default: relayed as is). Returns (result events, error events)."""
    task_id = payload["task"].get("id")
    extra = {"process": payload["process"]} if "process" in payload else {}
    argv = list(python) + [os.path.abspath(__file__), "--worker"]
    try:
        # the worker inherits the lock fd: the device stays locked while any process of this
        # job is timing, even if the job process itself is killed
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                pass_fds=(_LOCK_FD,) if _LOCK_FD is not None else ())
    except OSError as e:
        emit_error(task_id, "WorkerCrashed", "cannot start the worker %s: %s" % (argv, e),
                   None, **extra)
        return 0, 1
    tail: Deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    lines: "queue.Queue[bytes]" = queue.Queue()
    readers = [threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, _stderr_sink(tail)),
                                daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.stdin.write(json.dumps(payload).encode("utf-8"))
        proc.stdin.close()
    except OSError:
        pass
    results, errors, timed_out = _relay(lines, task_id, timeout_s, heartbeat_s, position,
                                        on_result, extra)
    if timed_out:
        proc.kill()
    rc = proc.wait()
    for t in readers:
        t.join(5.0)
    if timed_out:
        emit_error(task_id, "Timeout", "task did not finish within timeout_s=%s; worker killed"
                   % timeout_s, None, stderr_tail="\n".join(tail).strip() or None, **extra)
        return results, errors + 1
    if results or errors:
        if rc != 0 and results:
            log("worker for %s exited with %d after its result" % (task_id, rc))
        return results, errors
    msg, info = _crash_message(rc, python, tail)
    info.update(extra)
    emit_error(task_id, "WorkerCrashed", msg, None, **info)
    return 0, 1


def _relay(lines: "queue.Queue[bytes]", task_id: Optional[str], timeout_s: Optional[float],
           heartbeat_s: Optional[float] = None, position: Tuple[int, int] = (0, 1),
           on_result: Optional[Callable[[Dict[str, Any]], None]] = None,
           extra: Optional[Dict[str, Any]] = None) -> Tuple[int, int, bool]:
    """Forward the worker's protocol lines (non-JSON noise goes to stderr) until its EOF.
    With heartbeat_s, a `progress` event with "heartbeat": true goes out whenever the worker has
    been quiet that long, so the host can tell a long model from a dead link."""
    start = time.monotonic()
    deadline = start + timeout_s if timeout_s else None
    results = errors = 0
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if heartbeat_s:
            wait = heartbeat_s if wait is None else min(wait, heartbeat_s)
        try:
            raw = lines.get(timeout=wait)
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                return results, errors, True
            emit("progress", done=position[0], total=position[1], task=task_id, heartbeat=True,
                 elapsed_s=round(time.monotonic() - start, 1), **(extra or {}))
            continue
        if not raw:
            return results, errors, False
        msg = _parse_event(raw)
        if msg is None:
            log("worker stdout (not protocol): " + raw.decode("utf-8", "replace").rstrip())
            continue
        had_task = msg.get("task") is not None
        if not had_task:
            msg["task"] = task_id
        if msg["event"] == "result" and on_result is not None:
            on_result(msg)
        elif had_task and not extra:  # already one compact line: pass it on as is
            write_raw(raw.rstrip(b"\r\n").decode("utf-8") + "\n")
        else:
            msg.update(extra or {})
            write_line(msg)
        results += msg["event"] == "result"
        errors += msg["event"] == "error"


def _parse_event(raw: bytes) -> Optional[Dict[str, Any]]:
    try:
        msg = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    if isinstance(msg, dict) and msg.get("proto") == PROTO and msg.get("event") in (
            "result", "error"):
        return msg
    return None


def run_job(job: Dict[str, Any]) -> int:
    """Take the device lock, run every task of a parsed job, each in its own worker; stream
    events. Exit code 0 (3 when the device is busy: DeviceBusy)."""
    global _LOCK_FD
    tasks = job["tasks"]
    workdir = os.path.expanduser(str(job.get("workdir") or os.getcwd()))
    runtime_req = str(job.get("runtime") or "auto")
    hello = hello_event(runtime_req)
    emit("hello", job_id=job.get("job_id"), **hello)
    resolved = hello["runtime"]["module"] if hello["runtime"] else runtime_req

    def waiting(holder: Optional[Dict[str, Any]], left: float) -> None:
        emit("progress", done=0, total=len(tasks), task=None, waiting_for_lock=holder,
             lock_wait_left_s=round(left, 1))

    try:
        _LOCK_FD = acquire_lock(workdir, lock_holder(job), float(job.get("lock_wait_s") or 0.0),
                                on_wait=waiting)
    except AgentError as e:
        emit_error(None, e.type, e.message, None, **e.extra)
        emit("bye", tasks=0, errors=1)
        return 3 if e.type == "DeviceBusy" else 1
    try:
        return _run_tasks(job, tasks, workdir, resolved)
    finally:
        release_lock(_LOCK_FD)
        _LOCK_FD = None


def _task_processes(task: Dict[str, Any]) -> int:
    try:
        return _processes(task)
    except AgentError:
        return 1  # the worker reports the bad field as this task's error


def schedule(ks: List[int], interleave: bool) -> List[Tuple[int, int]]:
    """(task index, process index) in the order the workers run, for tasks of ks[i] processes:
    each task's processes back to back, or with `interleave` round-robin over the tasks
    (process 0 of every task, then process 1 of every task, ...), so that slow drift (heat,
    other load) touches all alike."""
    if not interleave:
        return [(i, p) for i, k in enumerate(ks) for p in range(k)]
    return [(i, p) for p in range(max(ks or [0])) for i, k in enumerate(ks) if p < k]


def merge_results(parts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One task's `result` from the results of its worker processes (in process order):
    samples concatenated in process order with the count of each in `process_runs` (the host
    splits them again: statistics between processes are its job); init, first inference and
    eval from process 0, the environment before from the first and after from the last."""
    first, last = parts[0], parts[-1]
    out = dict(first)
    out["samples_ns"] = [x for p in parts for x in p.get("samples_ns") or []]
    out["runs"] = len(out["samples_ns"])
    out["processes"] = len(parts)
    out["process_runs"] = [len(p.get("samples_ns") or []) for p in parts]
    out["process_init_ms"] = [p.get("init_ms") for p in parts]
    out["process_first_inference_ms"] = [p.get("first_inference_ms") for p in parts]
    stops = [p.get("stopped_by") for p in parts]
    out["stopped_by"] = stops[0] if len(set(stops)) == 1 else ",".join(
        sorted(set(str(x) for x in stops)))
    out["loop_s"] = sum(float(p.get("loop_s") or 0.0) for p in parts)
    out["cooldown_s"] = sum(float(p.get("cooldown_s") or 0.0) for p in parts)
    rss = [p["peak_rss_kb"] for p in parts if p.get("peak_rss_kb")]
    out["peak_rss_kb"] = max(rss) if rss else None
    info = dict(last.get("device_info") or {})
    before = first.get("device_info") or {}
    for key in ("temp_c_before", "throttled_before", "cooling_devices_before"):
        info[key] = before.get(key)
    out["device_info"] = info
    return out


def _run_tasks(job: Dict[str, Any], tasks: List[Dict[str, Any]], workdir: str,
               resolved: str) -> int:
    """Run every task in its worker process(es) (task field `processes`, default 1): errors
    are relayed at once, the results of a task's processes are merged into its one `result`."""
    for i, task in enumerate(tasks):
        task.setdefault("id", "t%d" % i)
    need = [_task_processes(t) for t in tasks]
    order = schedule(need, bool(job.get("interleave")))
    parts: List[List[Dict[str, Any]]] = [[] for _ in tasks]
    failed = [False] * len(tasks)
    done = errors = 0
    beat = job.get("heartbeat_s")
    for i, proc_no in order:
        task, task_id = tasks[i], tasks[i]["id"]
        if failed[i]:
            continue  # one failed process fails the task: its other processes are not run
        try:
            # cool down before a task's first process only: "before each model", as configured
            waited = cooldown_wait(job.get("cooldown")) if proc_no == 0 else 0.0
            timeout = task.get("timeout_s")
            if proc_no and task.get("eval"):
                task = dict(task, eval=None)  # outputs are scored once, from process 0
            payload = {"task": task, "runtime": resolved, "workdir": workdir,
                       "cooldown_s": waited, "job_id": job.get("job_id")}
            if need[i] > 1:
                payload["process"] = proc_no
            got, errs = run_worker(job["python"], payload,
                                   float(timeout) if timeout else None,
                                   float(beat) if beat else None, (done, len(tasks)),
                                   on_result=parts[i].append)
            if errs or not got:
                failed[i] = True
                errors += 1
        except Exception as e:  # noqa: BLE001 - one task's trouble never ends the job
            emit_error(task_id, "InternalError", "%s: %s" % (type(e).__name__, e),
                       traceback.format_exc())
            failed[i] = True
            errors += 1
        if failed[i] or len(parts[i]) == need[i]:
            if not failed[i]:
                write_line(merge_results(parts[i]))
            parts[i] = []
            done += 1
            emit("progress", done=done, total=len(tasks), task=task_id)
        else:
            emit("progress", done=done, total=len(tasks), task=task_id, process=proc_no + 1,
                 processes=need[i])
    emit("bye", tasks=len(tasks), errors=errors)
    return 0


def job_main(stdin: IO[bytes]) -> int:
    text = _read_job_text(stdin)
    try:
        job = parse_job(text)
    except AgentError as e:
        emit("hello", job_id=None, **hello_event("auto"))
        emit_error(None, e.type, e.message)
        emit("bye", tasks=0, errors=1)
        return 2
    return run_job(job)


def _arg_value(argv: List[str], flag: str) -> Optional[str]:
    if flag in argv:
        i = argv.index(flag)
        return argv[i + 1] if i + 1 < len(argv) else None
    return None


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    protect_stdout()
    try:
        if "--version" in args:
            write_raw(AGENT_VERSION + "\n")
            return 0
        if "--worker" in args:
            return worker_main()
        if "--probe" in args:
            emit("hello", job_id=None, **hello_event(_arg_value(args, "--runtime") or "auto"))
            emit("bye", tasks=0, errors=0)
            return 0
        return job_main(sys.stdin.buffer)
    except BrokenPipeError:
        return 1
    except BaseException as e:  # noqa: BLE001 - never a bare traceback on stdout
        if isinstance(e, SystemExit):
            raise
        try:
            emit_error(None, "InternalError", "%s: %s" % (type(e).__name__, e),
                       traceback.format_exc())
            emit("bye", tasks=0, errors=1)
        except Exception:  # noqa: BLE001
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
