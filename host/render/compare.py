"""How a comparison is shown: a rich table, Markdown (for a CI comment) and JSON.

The comparison itself comes from app/compare.py (verdicts: analysis/verdict.py).
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional, TextIO, Tuple

from ..text import plural
from .visible import visible


def _short(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:10]
    return str(v)



def _fmt_ms(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if x < 1 else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def _fmt_ratio(r: Dict[str, Any], prefix: str = "") -> str:
    ratio, lo, hi = r.get(prefix + "ratio"), r.get(prefix + "ci_lo"), r.get(prefix + "ci_hi")
    if ratio is None:
        return "-"
    s = f"{(ratio - 1) * 100:+.1f}%"
    if lo is not None and hi is not None:
        s += f" [{(lo - 1) * 100:+.1f}, {(hi - 1) * 100:+.1f}]"
    return s


def _fmt_p(p: Optional[float]) -> str:
    return "-" if p is None else (f"{p:.1e}" if p < 0.001 else f"{p:.3f}")


def _fmt_acc(r: Dict[str, Any]) -> str:
    a = r.get("accuracy") or {}
    if a.get("base_top1") is not None and a.get("cand_top1") is not None:
        return f"{a['base_top1'] * 100:.1f}->{a['cand_top1'] * 100:.1f}%"
    if a.get("cand_top1") is not None:
        return f"{a['cand_top1'] * 100:.1f}%"
    return "-"


def _fmt_env(r: Dict[str, Any]) -> str:
    return "; ".join(f"{m['field']}: {_short(m['base'])} -> {_short(m['cand'])}" for m in r["mismatches"])


def _title(cmp: Dict[str, Any]) -> str:
    def name(d: Dict[str, Any]) -> str:
        return f"{d.get('run_id')}" + (f" ({d['label']})" if d.get("label") else "")
    return f"{name(cmp['base'])} -> {name(cmp['cand'])}"


def summary_line(cmp: Dict[str, Any]) -> str:
    s = cmp["summary"]
    parts = [f"{n} {v}" for v, n in s.items() if n]
    head = "REGRESSION" if cmp["regressed"] else "no regression"
    line = f"{head}: " + (", ".join(parts) if parts else "nothing to compare")
    if cmp["mismatched_rows"]:
        line += f"; {plural(cmp['mismatched_rows'], 'row')} with a different environment"
    st = cmp["settings"]
    line += (f" (threshold {st['threshold'] * 100:g}%, alpha {st['alpha']:g},"
             f" accuracy {st['accuracy_threshold'] * 100:g} pt)")
    return line


COLUMNS = ["device", "model", "variant", "thr", "base ms", "cand ms", "median change [95% CI]",
           "p25 change [95% CI]", "p", "top-1", "verdict", "environment / notes"]
VERDICT_COLUMN = COLUMNS.index("verdict")


def table_rows(cmp: Dict[str, Any]) -> List[List[str]]:
    out = []
    for r in cmp["rows"]:
        notes = "; ".join(x for x in [_fmt_env(r)] + r["notes"] if x)
        accel = r.get("accelerator") or "cpu"  # a key per accelerator: `fp16 @gpu`
        out.append([r["device"], r["model"],
                    r["variant"] + ("" if accel == "cpu" else f" @{accel}"),
                    "-" if r["threads"] is None else str(r["threads"]),
                    _fmt_ms(r["base_median_ms"]), _fmt_ms(r["cand_median_ms"]), _fmt_ratio(r),
                    _fmt_ratio(r, "p25_"), _fmt_p(r["p_value"]), _fmt_acc(r), r["verdict"], notes])
    return out


VERDICT_STYLE = {"slower": "bold red", "accuracy-drop": "bold red", "error": "red",
                 "faster": "green", "same": "", "missing": "yellow", "new": "cyan"}


def rich_columns(cmp: Dict[str, Any]) -> Tuple[List[Any], List[str]]:
    """The comparison's columns for a terminal (the full text is in table_rows, --markdown and
    --json): short model labels, one unit per latency column, constant columns dropped."""
    from .table import Col, in_unit, short_labels, time_unit
    rows = cmp["rows"]
    unit, size = time_unit([r["base_median_ms"] for r in rows] + [r["cand_median_ms"] for r in rows])
    labels = short_labels(r["model"] for r in rows)
    cols = {n: c for n, c in (
        ("device", Col("device")), ("model", Col("model", flex=True, min_width=8, prefer=22)),
        ("variant", Col("variant")), ("thr", Col("thr", numeric=True)),
        ("base", Col(f"base {unit}", numeric=True, priority=3)),
        ("cand", Col(f"cand {unit}", numeric=True, priority=4)),
        ("median", Col("median Δ [95% CI]", numeric=True, priority=2)),
        ("p25", Col("p25 Δ [95% CI]", numeric=True, priority=6)),
        ("p", Col("p", numeric=True, priority=1)), ("top1", Col("top-1", priority=5)),
        ("verdict", Col("verdict")),
        ("notes", Col("environment / notes", flex=True, min_width=6, prefer=16)))}
    styles = []
    for r, cells in zip(rows, table_rows(cmp)):
        for n, v in zip(("device", "model", "variant", "thr"), cells[:4]):
            cols[n].cells.append(labels[v] if n == "model" else v)
        cols["base"].cells.append(in_unit(r["base_median_ms"], size))
        cols["cand"].cells.append(in_unit(r["cand_median_ms"], size))
        for n, v in zip(("median", "p25", "p", "top1", "verdict", "notes"), cells[6:]):
            cols[n].cells.append(v)
        style = VERDICT_STYLE.get(r["verdict"], "")
        styles.append(style or ("yellow" if r["mismatches"] else ""))
    drop = {"device"} if len({r["device"] for r in rows}) <= 1 else set()
    if len({r["threads"] for r in rows}) <= 1:
        drop.add("thr")
    return [c for n, c in cols.items() if n not in drop], styles


def row_notes(cmp: Dict[str, Any]) -> List[str]:
    """`digits int8: slower in this run (p25 +5.4%), not confirmed ...`: every row's
    environment differences and notes, whole, named the way the table names the row."""
    from .table import short_labels
    rows = cmp["rows"]
    labels = short_labels(r["model"] for r in rows)
    devices = len({r["device"] for r in rows}) > 1
    threads = len({r["threads"] for r in rows}) > 1
    out = []
    for r, cells in zip(rows, table_rows(cmp)):
        if not cells[-1]:
            continue
        name = f"{labels[r['model']]} {r['variant']}"
        if threads and r["threads"] is not None:
            name += f" t{r['threads']}"
        if devices:
            name += f" on {r['device']}"
        out.append(f"{name}: {cells[-1]}")
    return out


def print_rich(cmp: Dict[str, Any], file: Optional[TextIO] = None) -> None:
    """The comparison as a table that fits the terminal (plain text when not a terminal)."""
    from rich.console import Console
    from rich.text import Text
    from .table import rich_table
    out = file or sys.stdout
    console = Console(file=out, width=None if out.isatty() else 160)
    cols, styles = rich_columns(cmp)
    console.print(rich_table(cols, console.width, title=f"compare {_title(cmp)}", styles=styles))
    notes = row_notes(cmp)
    if notes:  # in full: a cell of the table can only start them
        console.print(Text("notes:", style="bold"))
        for line in notes:
            console.print(Text(line))
    console.print(Text(summary_line(cmp), style="bold red" if cmp["regressed"] else "bold green"))


def to_markdown(cmp: Dict[str, Any]) -> str:
    """A Markdown report (for a CI comment)."""
    icon = {"slower": "🔴", "accuracy-drop": "🔴", "error": "🔴", "faster": "🟢", "same": "⚪",
            "missing": "🟡", "new": "🔵"}

    def cell(s: str) -> str:
        return visible(s).replace("|", "\\|")  # one table row; no escape reaches a terminal

    lines = [f"### edge-bench compare: {cell(_title(cmp))}", "", f"**{summary_line(cmp)}**", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r, cells in zip(cmp["rows"], table_rows(cmp)):
        cells = list(cells)
        cells[VERDICT_COLUMN] = f"{icon.get(r['verdict'], '')} {cells[VERDICT_COLUMN]}"
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    st = cmp["settings"]
    lines += ["", f"<sub>change = candidate/baseline - 1 of the median and of the fast quartile "
                  f"(p25, all worker processes' samples), with {st['confidence'] * 100:g}% block-bootstrap intervals; p = Mann-Whitney U "
                  f"on the blocks' p25. `slower` needs the p25 change >= {st['threshold'] * 100:g}%, its "
                  f"interval above 0 and p < {st['alpha']:g} (other load only adds time, so it moves the "
                  f"median far more than p25; a real slowdown moves both).</sub>", ""]
    return "\n".join(lines)


def to_json_text(cmp: Dict[str, Any]) -> str:
    from ..results.document import _clean
    return json.dumps(_clean(cmp), indent=1) + "\n"


def write_text(text: str, path: str) -> None:
    from ..results.document import write_text as write
    write(text, path)


def emit(cmp: Dict[str, Any], *, json_out: Optional[str] = None, markdown_out: Optional[str] = None,
         file: Optional[TextIO] = None, quiet: bool = False) -> None:
    """Write --json / --markdown outputs and print the table (unless one of them went to
    stdout, or quiet)."""
    if json_out:
        write_text(to_json_text(cmp), json_out)
    if markdown_out:
        write_text(to_markdown(cmp), markdown_out)
    to_stdout = "-" in (json_out, markdown_out)
    if not quiet:
        print_rich(cmp, file=sys.stderr if to_stdout else file)
