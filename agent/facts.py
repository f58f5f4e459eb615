"""Device facts for `hello` and `result` (docs/protocol.md "device_info"); no probe ever raises."""
from __future__ import annotations

import glob
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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
