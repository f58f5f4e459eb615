"""How the stored history is shown: the runs, one trend line per key (with a sparkline), and
each key's runs with the change against the previous one."""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

from ..analysis.verdict import Key

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: List[Optional[float]]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif hi - lo <= 1e-12 * max(abs(hi), 1):
            out.append(SPARK[3])
        else:
            out.append(SPARK[int(round((v - lo) / (hi - lo) * (len(SPARK) - 1)))])
    return "".join(out)


def group_by_key(rows: List[Dict[str, Any]]) -> Dict[Key, List[Dict[str, Any]]]:
    out: Dict[Key, List[Dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["device"], r["model"], r["variant"], r["threads"]), []).append(r)
    return out


def _ms(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if x < 1 else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def print_history(rows: List[Dict[str, Any]], runs: List[Dict[str, Any]], *, filtered: bool = False,
                  summary: bool = False, file: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table
    file = file or sys.stdout
    console = Console(file=file, width=None if file.isatty() else 160)
    if not rows and not runs:
        console.print("no runs stored yet: `edge-bench run` stores every run")
        return
    if not filtered and runs:
        t = Table(title="runs (newest first)")
        for c in ("run", "label", "started", "finished", "status", "results"):
            t.add_column(c)
        for r in runs:
            t.add_row(r["run_id"], r.get("label") or "", r.get("started_at") or "",
                      r.get("finished_at") or "", r.get("status") or "",
                      f"{r.get('n_ok', 0)}/{r.get('n_results', 0)} ok")
        console.print(t)
    if not rows:
        console.print("no stored results match")
        return
    groups = group_by_key(rows)
    t = Table(title="trend per key (median latency, oldest -> newest)")
    for c in ("device", "model", "variant", "thr", "runs", "first ms", "last ms", "change",
              "last 95% CI", "trend"):
        t.add_column(c, justify="right" if c in ("thr", "runs", "first ms", "last ms", "change") else "left")
    for k, rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok" and r["median_ms"] is not None]
        first, last = (ok[0], ok[-1]) if ok else (None, None)
        change = "-"
        if first and last and first["median_ms"]:
            change = f"{(last['median_ms'] / first['median_ms'] - 1) * 100:+.1f}%"
        ci = "-"
        if last and last["ci_lo"] is not None:
            ci = f"[{_ms(last['ci_lo'])}, {_ms(last['ci_hi'])}]"
        t.add_row(k[0], k[1], k[2], "-" if k[3] is None else str(k[3]), str(len(rs)),
                  _ms(first["median_ms"]) if first else "-", _ms(last["median_ms"]) if last else "-",
                  change, ci, sparkline([r["median_ms"] if r["status"] == "ok" else None for r in rs]))
    console.print(t)
    if summary:
        return
    for k, rs in groups.items():
        t = Table(title=f"{k[0]}  {k[1]}  {k[2]}  threads={k[3]}", title_justify="left")
        for c in ("run", "label", "started", "median ms", "95% CI", "n", "vs previous", "runtime", "status"):
            t.add_column(c, justify="right" if c in ("median ms", "n", "vs previous") else "left")
        prev = None
        for r in rs:
            vs = "-"
            if prev and r["median_ms"] and prev["median_ms"]:
                vs = f"{(r['median_ms'] / prev['median_ms'] - 1) * 100:+.1f}%"
            ci = f"[{_ms(r['ci_lo'])}, {_ms(r['ci_hi'])}]" if r["ci_lo"] is not None else "-"
            rt = " ".join(x for x in (r.get("runtime"), r.get("runtime_version")) if x)
            st = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error') or ''}"
            t.add_row(r["run_id"], r.get("label") or "", r.get("started_at") or "", _ms(r["median_ms"]),
                      ci, str(r["n_samples"]), vs, rt, st,
                      style=None if r["status"] == "ok" else "red")
            if r["status"] == "ok":
                prev = r
        console.print(t)
