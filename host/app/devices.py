"""The devices service: the fleet as rows (with a parallel health probe for --check), and the
known_hosts edits of `devices trust` (the command asks the user; this module only reads and
writes the file)."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple


def _where(d: Any) -> str:
    if d.transport == "ssh":
        return f"{d.user + '@' if d.user else ''}{d.host}{':' + str(d.port) if d.port else ''}"
    if d.transport == "adb":
        return f"adb {d.serial}"
    return "this machine"


def device_rows(config: Optional[str], select: Optional[str], check: bool
                ) -> Tuple[List[Dict[str, Any]], Any, bool]:
    """(one row per selected device, the devices.yaml path, all probes ok). With `check`,
    every device is probed in parallel and its probe's fields join its row."""
    from ..config import find_config, load_fleet
    fleet = load_fleet(find_config(config))
    devices = fleet.select(select)
    rows: List[Dict[str, Any]] = [{"device": d.name, "transport": d.transport, "where": _where(d),
                                   "tags": list(d.tags), "workdir": d.workdir} for d in devices]
    ok = True
    if check:
        from ..fleet.probe import probe_device
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(devices)))) as ex:
            probes = list(ex.map(probe_device, devices))
        for row, pr in zip(rows, probes):
            row.update({k: v for k, v in pr.items() if k != "device_info"})
        ok = all(p["ok"] for p in probes)
    return rows, fleet.path, ok


def known_hosts_entries(path: Path, name: str) -> List[Tuple[int, str, str]]:
    """(line number, key type, base64) of every known_hosts line for `name` (plain or hashed)."""
    import paramiko
    from ..transports.ssh.hostkeys import known_hosts_lines
    out: List[Tuple[int, str, str]] = []
    try:
        lines = known_hosts_lines(str(path))
    except FileNotFoundError:
        return out
    for line in lines:
        if line.marker:  # @cert-authority / @revoked: not a key trusted for this host
            continue
        hit = False
        for h in line.names:
            if h.startswith("|1|"):
                try:
                    hit = paramiko.HostKeys.hash_host(name, h) == h
                except Exception:  # noqa: BLE001 - malformed hash
                    hit = False
            else:
                hit = h == name
            if hit:
                break
        if hit:
            out.append((line.number, line.keytype, line.key_b64))
    return out


def remove_known_hosts_lines(path: Path, numbers: Iterable[int]) -> None:
    """Drop the given (1-based) lines of a known_hosts file."""
    drop = set(numbers)
    kept = [ln for i, ln in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if i not in drop]
    path.write_text("".join(ln + "\n" for ln in kept))


def append_known_host(path: Path, line: str) -> None:
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    old = path.read_bytes() if path.exists() else b""
    sep = b"\n" if old and not old.endswith(b"\n") else b""
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, sep + line.encode() + b"\n")
    finally:
        os.close(fd)
