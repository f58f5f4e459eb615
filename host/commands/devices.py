"""edge-bench devices: list the fleet; --check probes every device in parallel."""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

HELP = """\
List the devices of devices.yaml (plus `local`). With --check, connect to each one (in parallel),
push the agent if needed and report python, TFLite runtime, agent version, free disk, CPU
governor, temperature and throttling.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("devices", help="list the fleet; --check probes health", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=None, help="devices.yaml to use")
    p.add_argument("--devices", "-d", default="all", help="names / tag:TAG to show (default: all)")
    p.add_argument("--check", action="store_true", help="probe each device")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _where(d: Any) -> str:
    if d.transport == "ssh":
        return f"{d.user + '@' if d.user else ''}{d.host}{':' + str(d.port) if d.port else ''}"
    if d.transport == "adb":
        return f"adb {d.serial}"
    return "this machine"


def run(args: argparse.Namespace) -> int:
    from ..config import find_config, load_fleet
    fleet = load_fleet(find_config(args.config))
    devices = fleet.select(args.devices)
    rows: List[Dict[str, Any]] = [{"device": d.name, "transport": d.transport, "where": _where(d),
                                   "tags": list(d.tags), "workdir": d.workdir} for d in devices]
    code = 0
    if args.check:
        from ..probe import probe_device
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(devices)))) as ex:
            probes = list(ex.map(probe_device, devices))
        for row, pr in zip(rows, probes):
            row.update({k: v for k, v in pr.items() if k != "device_info"})
        if any(not p["ok"] for p in probes):
            code = 3
    if args.json:
        json.dump(rows, sys.stdout, indent=2, default=str)
        print()
        return code
    _print(rows, args.check, fleet.path)
    return code


def _print(rows: List[Dict[str, Any]], check: bool, path: Any) -> None:
    cols = ["device", "transport", "where", "tags"]
    if check:
        cols += ["status", "runtime", "python", "agent", "arch", "free disk", "governor", "temp"]
    table: List[List[str]] = []
    styles: List[str] = []
    for r in rows:
        cells = [r["device"], r["transport"], r["where"], ",".join(r["tags"])]
        if check:
            status = "ok" if r.get("ok") else f"FAIL: {r.get('error')}"
            cells += [status, r.get("runtime") or "-", r.get("python") or "-",
                      r.get("agent_version") or "-", r.get("arch") or "-",
                      f"{r['free_disk_mb']} MB" if r.get("free_disk_mb") is not None else "-",
                      r.get("governor") or "-",
                      f"{r['temp_c']:.1f} C" if isinstance(r.get("temp_c"), (int, float)) else "-"]
        table.append(cells)
        styles.append("" if not check or r.get("ok") else "bold red")
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        t = Table(title=f"devices ({path or 'no devices.yaml: built-in local only'})")
        for c in cols:
            t.add_column(c, overflow="fold")
        for cells, st in zip(table, styles):
            t.add_row(*cells, style=st)
        Console().print(t)
        return
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
