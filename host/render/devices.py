"""`edge-bench devices [--check]` on screen: one line per device (table.fit decides which columns
a width holds), then every failure spelled out in full below the table, one paragraph per device:
a reason is a sentence with a path and a hint, never squeezed into a cell."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, TextIO

from ..text import plural
from .table import Col, byte_unit, in_unit, plain_table, rich_table
from .visible import visible


def device_columns(rows: Sequence[Dict[str, Any]], check: bool) -> List[Col]:
    """The listing's columns; with `check` the probe's facts, most useful first (what drops last
    at a small width: device, transport, status, runtime)."""
    cols = {"device": Col("device"), "transport": Col("transport"),
            "where": Col("where", flex=True, priority=4, min_width=8, prefer=18),
            "tags": Col("tags", priority=1, flex=not check, min_width=4, prefer=16)}
    free = [r["free_disk_mb"] * (1 << 20) if isinstance(r.get("free_disk_mb"), (int, float))
            else None for r in rows]
    fname, fsize = byte_unit(free)
    if check:
        cols.update({"status": Col("status"), "runtime": Col("runtime", priority=9),
                     "python": Col("python", priority=7), "agent": Col("agent", priority=3),
                     "arch": Col("arch", priority=6),
                     "free": Col(f"free {fname}", numeric=True, priority=5),
                     "governor": Col("governor", priority=2),
                     "temp": Col("temp °C", numeric=True, priority=2)})
    for r, fb in zip(rows, free):
        cells = {"device": r["device"], "transport": r["transport"], "where": r["where"],
                 "tags": ",".join(r.get("tags") or []) or "-"}
        if check:
            temp = r.get("temp_c")
            cells.update({"status": check_status(r), "runtime": r.get("runtime") or "-",
                          "python": r.get("python") or "-", "agent": r.get("agent_version") or "-",
                          "arch": r.get("arch") or "-", "free": in_unit(fb, fsize),
                          "governor": r.get("governor") or "-",
                          "temp": f"{temp:.1f}" if isinstance(temp, (int, float)) else "-"})
        for k, c in cols.items():
            c.cells.append(str(cells[k]))
    return list(cols.values())


def check_status(r: Dict[str, Any]) -> str:
    return "ok" if r.get("ok") else "FAIL"


def failures(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """One full sentence per failed probe, the device first (the probe's error may already
    start with it)."""
    out = []
    for r in rows:
        if r.get("ok") or "ok" not in r:
            continue
        err = str(r.get("error") or "failed (no reason given)")
        prefix = f"{r['device']}: "
        out.append(err if err.startswith(prefix) else prefix + err)
    return out


#: a runtime's own detail in a reason (a library path, a driver warning) longer than this is left
#: to `devices --check --json`: the screen keeps what failed and what to do
_LONG_DETAIL = re.compile(r"\s*\([^()]{40,}\)")
_ABS_PATH = re.compile(r"(^|[\s\"'])/[\w.+-]+/")


def short_reason(reason: Any) -> str:
    """An accelerator's reason as one readable sentence: the runtime's long parenthesized
    detail dropped, and a tail naming a library path cut (the full text is in --json)."""
    text = _LONG_DETAIL.sub("", " ".join(str(reason or "unknown").split()))
    head, sep, tail = text.partition(": ")
    if sep and _ABS_PATH.search(tail) and len(tail) > 60:
        return head + " (details: devices --check --json)"
    return text


def accelerator_lines(r: Dict[str, Any]) -> List[str]:
    """What `devices --check` says about a device's accelerators (docs/accelerators.md): one
    line each, `DEVICE: NAME: yes|no: reason`."""
    acc = r.get("accelerators")
    if not acc:
        return []
    name = r["device"]
    if acc.get("api"):
        return [f"{name}: gpu/npu: no: {short_reason(acc['api'])}"]
    out = []
    for a in acc.get("accelerators") or []:
        if a.get("usable"):
            where = f" (adapter {a['adapter']})" if a.get("adapter") else ""
            out.append(f"{name}: {a['name']}: yes{where}")
        else:
            out.append(f"{name}: {a['name']}: no: {short_reason(a.get('reason'))}")
    disp = ", ".join(acc.get("npu_dispatch") or []) or "none"
    out.append(f"{name}: NPU dispatch libraries: {disp}")
    for d in acc.get("delegates") or []:
        out.append(f"{name}: delegate {d['path']}: "
                   + ("yes" if d.get("usable") else f"no: {short_reason(d.get('reason'))}"))
    return out


def print_devices(rows: Sequence[Dict[str, Any]], check: bool, title: str,
                  stream: TextIO, tty: bool, width: Optional[int] = None,
                  notes: Sequence[str] = ()) -> None:
    """The table (fitted to the terminal when `tty`, under `title`; full width as plain text
    otherwise, the caller says the title on stderr) and, with `check`, the failures below it in
    full; `notes` (sentences) last."""
    cols = device_columns(rows, check)
    styles = ["bold red" if check and not r.get("ok") else "" for r in rows]
    failed = [visible(f) for f in failures(rows)] if check else []  # device text: untrusted
    accel = [visible(ln) for r in rows for ln in accelerator_lines(r)] if check else []
    accel_title = "accelerators (each compiled a one-op model; docs/accelerators.md):"
    title = visible(title)
    if tty:
        from rich.console import Console
        from rich.text import Text
        console = Console(file=stream, width=width)
        console.print(Text(title, style="italic"))  # as wide as the screen, not the table
        console.print(rich_table(cols, console.width, styles=styles))
        if failed:
            console.print(Text(f"{plural(len(failed), 'device')} failed the check:", style="bold"))
            for line in failed:  # wrapped at words by the console: every line fits
                console.print(Text(line, style="red"))
        if accel:
            console.print(Text(accel_title, style="bold"))
            for line in accel:
                console.print(Text("  " + line))
        for line in notes:
            console.print(Text(line, style="dim"))
        return
    for line in plain_table(cols, None):
        print(line, file=stream)
    if failed:
        print(f"{plural(len(failed), 'device')} failed the check:", file=stream)
        for line in failed:
            print(line, file=stream)
    if accel:
        print(accel_title, file=stream)
        for line in accel:
            print("  " + line, file=stream)
    for line in notes:
        print(line, file=stream)
