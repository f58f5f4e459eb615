"""How the stored history is shown: the runs, one trend line per key (with a sparkline), and
each key's runs with the change against the previous one."""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Tuple

from edge_bench_agent.accel_spec import result_accelerator

from ..analysis.verdict import Key
from .table import Col, in_unit, rich_table, short_labels, time_unit

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
        out.setdefault((r["device"], r["model"], r["variant"], r["threads"],
                        result_accelerator(r)), []).append(r)
    return out


def _console(file: Any) -> Any:
    from rich.console import Console
    return Console(file=file, width=None if file.isatty() else 160)


def _ci(r: Optional[Dict[str, Any]], size: float) -> str:
    if not r or r["ci_lo"] is None:
        return "-"
    return f"{in_unit(r['ci_lo'], size)}–{in_unit(r['ci_hi'], size)}"


def _change(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> str:
    if not a or not b or not a["median_ms"] or not b["median_ms"]:
        return "-"
    return f"{(b['median_ms'] / a['median_ms'] - 1) * 100:+.1f}%"


def runs_columns(runs: List[Dict[str, Any]]) -> List[Col]:
    cols = [Col("run"), Col("label", flex=True, min_width=8, prefer=20),
            Col("started", priority=3), Col("finished", priority=2), Col("status"),
            Col("ok", numeric=True)]
    for r in runs:
        for c, v in zip(cols, (r["run_id"], r.get("label") or "", (r.get("started_at") or "")[:19],
                               (r.get("finished_at") or "")[:19], r.get("status") or "",
                               f"{r.get('n_ok', 0)}/{r.get('n_results', 0)}")):
            c.cells.append(v)
    return cols


def trend_columns(groups: Dict[Key, List[Dict[str, Any]]]) -> List[Col]:
    """One row per key: first and last median, change, last CI and a sparkline."""
    ok = {k: [r for r in rs if r["status"] == "ok" and r["median_ms"] is not None]
          for k, rs in groups.items()}
    unit, size = time_unit([r["median_ms"] for rs in ok.values() for r in rs])
    labels = short_labels(k[1] for k in groups)
    cols = {n: c for n, c in (
        ("device", Col("device")), ("model", Col("model", flex=True, min_width=8, prefer=24)),
        ("variant", Col("variant")), ("thr", Col("thr", numeric=True)),
        ("accel", Col("accelerator")),
        ("runs", Col("runs", numeric=True, priority=2)),
        ("first", Col(f"first {unit}", numeric=True, priority=3)),
        ("last", Col(f"last {unit}", numeric=True)), ("change", Col("change", numeric=True)),
        ("ci", Col(f"last 95% CI {unit}", numeric=True, priority=1)),
        ("trend", Col("trend", flex=True, min_width=6, prefer=12)))}
    for k, rs in groups.items():
        first, last = (ok[k][0], ok[k][-1]) if ok[k] else (None, None)
        for n, v in (("device", k[0]), ("model", labels[k[1]]), ("variant", k[2]),
                     ("thr", "-" if k[3] is None else str(k[3])), ("accel", k[4]),
                     ("runs", str(len(rs))),
                     ("first", in_unit(first and first["median_ms"], size)),
                     ("last", in_unit(last and last["median_ms"], size)),
                     ("change", _change(first, last)), ("ci", _ci(last, size)),
                     ("trend", sparkline([r["median_ms"] if r["status"] == "ok" else None
                                          for r in rs]))):
            cols[n].cells.append(v)
    drop = {"device"} if len({k[0] for k in groups}) == 1 else set()
    if len({k[3] for k in groups}) == 1:
        drop.add("thr")
    if {k[4] for k in groups} == {"cpu"}:
        drop.add("accel")
    return [c for n, c in cols.items() if n not in drop]


def key_columns(rs: List[Dict[str, Any]]) -> Tuple[List[Col], List[str]]:
    """One row per run of a key, and the row styles."""
    unit, size = time_unit([r["median_ms"] for r in rs])
    # the run id is never dropped: it is what `compare` and `report` take, and without it (or
    # a label) a row says nothing about which run it is
    cols = [Col("run"), Col("label", flex=True, min_width=8, prefer=20, priority=6),
            Col("started", priority=3), Col(f"median {unit}", numeric=True),
            Col(f"95% CI {unit}", numeric=True, priority=4), Col("n", numeric=True, priority=2),
            Col("vs previous", numeric=True), Col("runtime", priority=5),
            Col("status", flex=True, min_width=6, prefer=10)]
    styles, prev = [], None
    for r in rs:
        rt = " ".join(x for x in (r.get("runtime"), r.get("runtime_version")) if x)
        st = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error') or ''}"
        for c, v in zip(cols, (r["run_id"], r.get("label") or "", (r.get("started_at") or "")[:19],
                               in_unit(r["median_ms"], size), _ci(r, size), str(r["n_samples"]),
                               _change(prev, r), rt, st)):
            c.cells.append(v)
        styles.append("" if r["status"] == "ok" else "red")
        if r["status"] == "ok":
            prev = r
    return cols, styles


def print_history(rows: List[Dict[str, Any]], runs: List[Dict[str, Any]], *, filtered: bool = False,
                  summary: bool = False, file: Any = None) -> None:
    """The runs, the trend per key and each key's runs, as tables that fit the terminal."""
    file = file or sys.stdout
    console = _console(file)
    width = console.width
    if not rows and not runs:
        console.print("no runs stored yet: `edge-bench run` stores every run")
        return
    if not filtered and runs:
        console.print(rich_table(runs_columns(runs), width, title="runs (newest first)"))
    if not rows:
        console.print("no stored results match")
        return
    groups = group_by_key(rows)
    console.print(rich_table(trend_columns(groups), width,
                             title="trend per key (median latency, oldest -> newest)"))
    if summary:
        return
    for k, rs in groups.items():
        cols, styles = key_columns(rs)
        console.print(rich_table(cols, width, title=f"{k[0]}  {k[1]}  {k[2]}  threads={k[3]}"
                                 + (f"  accelerator={k[4]}" if k[4] != "cpu" else ""),
                                 styles=styles))
