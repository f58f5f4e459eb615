"""Finding and talking to the adb binary: which adb, `adb devices` parsing, TCP serials."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path
from typing import Dict, Optional

from ...config import Device
from ...errors import TransportError


_PID_MARK = "__edge_bench_pid_"
_RC_MARK = "__edge_bench_rc_"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$")

INSTALL_HINT = ("install adb: `apt-get install adb` (Debian/Ubuntu), `pip install adbutils` (bundles"
                " an adb binary), or Android SDK platform-tools; or set adb_path: in devices.yaml")


def bundled_adb() -> Optional[str]:
    """The adb binary that adbutils ships, if adbutils is installed (found without importing it)."""
    try:
        spec = importlib.util.find_spec("adbutils")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        for name in ("adb", "adb.exe"):
            p = Path(loc) / "binaries" / name
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    return None


def find_adb(device: Device) -> str:
    """adb_path from devices.yaml, else `adb` on PATH, else adbutils' bundled binary."""
    if device.adb_path:
        p = Path(device.adb_path).expanduser()
        if not p.is_file():
            raise TransportError(device.name, f"adb_path {device.adb_path} does not exist", hint=INSTALL_HINT)
        if not os.access(p, os.X_OK):
            raise TransportError(device.name, f"adb_path {device.adb_path} is not executable",
                       hint=f"chmod +x {device.adb_path}")
        return str(p)
    found = shutil.which("adb") or bundled_adb()
    if not found:
        raise TransportError(device.name, "adb is not installed (no adb_path, no `adb` on PATH, no adbutils)",
                   hint=INSTALL_HINT)
    return found


def is_tcp_serial(serial: str) -> bool:
    """HOST:PORT (adb over TCP/wifi), as opposed to a USB serial number."""
    m = _HOSTPORT.match(serial)
    return bool(m) and 0 < int(m.group(2)) < 65536


def parse_devices(text: str) -> Dict[str, str]:
    """`adb devices` output -> {serial: state}."""
    out: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) >= 2:
            out[parts[0].strip()] = parts[1].strip().split()[0] if parts[1].strip() else ""
    return out
