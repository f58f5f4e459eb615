"""`edge-bench report RUN --html out.html`: one self-contained HTML page for a run.

The page needs nothing but itself: inline CSS, SVG plots drawn here in Python, no scripts, no
fonts, no network. It has the results table, a latency distribution plot (violin + box) per
device and model with one row per variant/threads, and the history trend (median with its 95%
interval over the stored runs) of every key in the run.
"""
from __future__ import annotations

import argparse
import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

HELP = "write a self-contained HTML report (table, latency plots, history trends) of a run"

EPILOG = """\
RUN is a run id, a label, last, last~N, or a results file from `edge-bench run --json FILE`.

examples:
  edge-bench report last --html report.html
  edge-bench report nightly-2024-05-01 --html nightly.html --csv nightly.csv
  edge-bench report --site public/ --db postgresql://ci@db/bench
"""

Key = Tuple[str, str, str, Optional[int]]

PALETTE = ["#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ref", metavar="RUN", nargs="?", default=None,
                   help="run id, label, last, last~N, or a .json results file")
    p.add_argument("--site", metavar="DIR", default=None,
                   help="write the static history site of the whole store into DIR"
                        " (index of every device x model x variant, a page per key and per run)")
    p.add_argument("--verdicts", metavar="N", type=int, default=1,
                   help="with --site: judge the newest N pairs of consecutive runs of each key"
                        " with compare (kept in DIR/verdicts.json; default 1)")
    p.add_argument("--threshold", type=float, default=0.05,
                   help="with --site: smallest slowdown that counts as a regression (default 0.05)")
    p.add_argument("--html", metavar="FILE", default=None, help="write the HTML report here")
    p.add_argument("--csv", metavar="FILE|-", default=None, help="write the run's results as CSV")
    p.add_argument("--db", metavar="PATH", default=None,
                   help="results store (default: $EDGE_BENCH_DB or ~/.local/share/edge-bench/results.sqlite)")
    p.add_argument("--history", metavar="N", type=int, default=20,
                   help="runs shown in the trend plots (default 20; 0 = none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import sys
    from ..analysis.compare import load_doc
    from ..errors import StoreError, UsageError
    from ..results.store import Store
    if args.site:
        return _site(args)
    if args.ref is None:
        raise UsageError("which run? give RUN (a run id, label, last, or a .json file),"
                         " or --site DIR for the history of the whole store")
    if not args.html and not args.csv:
        raise UsageError("nothing to write: give --html FILE and/or --csv FILE")
    is_file = os.path.isfile(args.ref) or args.ref.endswith(".json")
    store = None
    if not is_file:
        store = Store(args.db, create=False)
    else:
        try:
            store = Store(args.db, create=False)  # for trends only; optional with a file
        except (UsageError, StoreError):
            store = None
    try:
        doc = load_doc(args.ref, store=store)
        history: Dict[Key, List[Dict[str, Any]]] = {}
        if store is not None and args.history > 0:
            history = collect_history(store, doc, args.history)
    finally:
        if store is not None:
            store.close()
    if args.csv:
        from ..results.document import write_csv
        write_csv(doc, args.csv)
    if args.html:
        text = render_html(doc, history)
        path = Path(args.html).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise StoreError(f"cannot write {path}: {e.strerror or e}") from e
        print(f"wrote {path} ({len(text) // 1024} KB)", file=sys.stderr)
    return 0


def _site(args: argparse.Namespace) -> int:
    import sys
    from ..errors import StoreError, UsageError
    from ..render.site import build_site
    from ..results.store import open_store
    if args.ref is not None or args.html or args.csv:
        raise UsageError("--site DIR writes the history of the whole store: give it without RUN,"
                         " --html or --csv")
    if args.verdicts < 0:
        raise UsageError(f"--verdicts {args.verdicts}: expected a number >= 0")
    out = Path(args.site).expanduser()
    store = open_store(args.db, create=False)
    try:
        rep = build_site(store, out, verdict_pairs=args.verdicts, threshold=args.threshold)
    except OSError as e:
        raise StoreError(f"cannot write the site into {out}: {e.strerror or e}") from e
    finally:
        store.close()
    print(f"wrote {out / 'index.html'} ({rep.pages} pages, {rep.bytes / 1e6:.1f} MB,"
          f" {rep.seconds:.1f} s; {rep.judged} comparisons run, {rep.cached} from the cache)",
          file=sys.stderr)
    return 0


def collect_history(store: Any, doc: Dict[str, Any], last: int) -> Dict[Key, List[Dict[str, Any]]]:
    """For each key of the run: its stored results over the last `last` runs (oldest first)."""
    from ..analysis.compare import result_key
    out: Dict[Key, List[Dict[str, Any]]] = {}
    for r in doc.get("results") or []:
        k = result_key(r)
        if k in out:
            continue
        out[k] = store.history(device=k[0], model=k[1], variant=k[2], threads=k[3], last=last)
    return out


# --- formatting helpers -------------------------------------------------------------------

def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def fmt_ms(x: Optional[float]) -> str:
    if x is None:
        return "–"
    if x < 0.01:
        return f"{x * 1000:.2f} µs"
    return f"{x:.4f}" if x < 1 else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def fmt_num(x: float) -> str:
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 1:
        return f"{x:.3g}"
    return f"{x:.2g}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    if not (hi > lo):
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 12))
        v += step
    return ticks


def log_ticks(lo: float, hi: float) -> List[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


class Axis:
    """Maps a latency (ms) to an x pixel, linear or log."""

    def __init__(self, lo: float, hi: float, x0: float, x1: float) -> None:
        lo = max(lo, 1e-9)
        hi = max(hi, lo * 1.0001)
        self.log = hi / lo > 8
        if self.log:
            self.lo, self.hi = lo / 1.15, hi * 1.15
        else:
            pad = (hi - lo) * 0.06
            self.lo, self.hi = max(0.0, lo - pad), hi + pad
        self.x0, self.x1 = x0, x1

    def __call__(self, v: float) -> float:
        if self.log:
            f = (math.log(max(v, 1e-12)) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.x0 + f * (self.x1 - self.x0)

    def ticks(self) -> List[float]:
        t = log_ticks(self.lo, self.hi) if self.log else nice_ticks(self.lo, self.hi, 6)
        if self.log and len(t) < 3:
            t = nice_ticks(self.lo, self.hi, 5)
            t = [v for v in t if v > 0]
        return t


# --- plots --------------------------------------------------------------------------------

def distribution_svg(rows: Sequence[Tuple[str, np.ndarray]], title: str, width: int = 1100) -> str:
    """Horizontal violin + box plot, one row per (label, samples_ms)."""
    rows = [(lab, s) for lab, s in rows if s.size]
    if not rows:
        return ""
    left, right, top, row_h = 150, 24, 30, 46
    height = top + row_h * len(rows) + 42
    allv = np.concatenate([s for _, s in rows])
    lo, hi = float(np.percentile(allv, 0.2)), float(np.percentile(allv, 99.8))
    lo = min(lo, min(float(np.min(s)) for _, s in rows))
    ax = Axis(lo, hi, left, width - right)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
           f'<text x="{left}" y="18" class="ttl">{esc(title)}</text>']
    yb = top + row_h * len(rows)
    for t in ax.ticks():
        x = ax(t)
        if ax.x0 - 0.5 <= x <= ax.x1 + 0.5:
            out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{yb}" class="grid"/>')
            out.append(f'<text x="{x:.1f}" y="{yb + 16}" class="tick" text-anchor="middle">{fmt_num(t)}</text>')
    out.append(f'<text x="{(ax.x0 + ax.x1) / 2:.0f}" y="{yb + 34}" class="axl" text-anchor="middle">'
               f'latency per inference, ms{" (log scale)" if ax.log else ""}</text>')
    for i, (lab, s) in enumerate(rows):
        color = PALETTE[i % len(PALETTE)]
        cy = top + row_h * i + row_h / 2
        out.append(f'<text x="{left - 8}" y="{cy + 4:.1f}" class="lab" text-anchor="end">{esc(lab)}</text>')
        vlo, vhi = (float(v) for v in np.percentile(s, [1, 99]))
        vis = s[(s >= max(ax.lo, vlo)) & (s <= min(ax.hi, vhi))]
        if vis.size >= 5:
            out.append(_violin(vis, ax, cy, row_h * 0.42, color))
        q1, med, q3 = (float(v) for v in np.percentile(s, [25, 50, 75]))
        p5, p95 = (float(v) for v in np.percentile(s, [5, 95]))
        clip = lambda v: min(max(v, ax.lo), ax.hi)  # noqa: E731
        x5, x95, xq1, xq3, xm = (ax(clip(v)) for v in (p5, p95, q1, q3, med))
        out.append(f'<line x1="{x5:.1f}" y1="{cy:.1f}" x2="{x95:.1f}" y2="{cy:.1f}" class="whisk"/>')
        out.append(f'<rect x="{xq1:.1f}" y="{cy - 7:.1f}" width="{max(xq3 - xq1, 1):.1f}" height="14" '
                   f'class="box"><title>{esc(lab)}: median {fmt_ms(med)} ms, IQR {fmt_ms(q1)}–{fmt_ms(q3)}'
                   f', p5–p95 {fmt_ms(p5)}–{fmt_ms(p95)}, n={s.size}</title></rect>')
        out.append(f'<line x1="{xm:.1f}" y1="{cy - 9:.1f}" x2="{xm:.1f}" y2="{cy + 9:.1f}" class="med"/>')
        out.append(f'<text x="{min(xq3 + 6, ax.x1 - 2):.1f}" y="{cy - 10:.1f}" class="val">'
                   f'{fmt_ms(med)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _violin(s: np.ndarray, ax: Axis, cy: float, half: float, color: str) -> str:
    if s.size > 4000:
        s = np.sort(s)[np.linspace(0, s.size - 1, 4000).astype(int)]
    t = np.log(s) if ax.log else s
    sd = float(np.std(t))
    iqr = float(np.subtract(*np.percentile(t, [75, 25])))
    bw = 0.9 * min(sd, iqr / 1.34 if iqr > 0 else sd) * t.size ** -0.2
    if not bw > 0:
        return ""
    grid = np.linspace(float(t.min()), float(t.max()), 96)
    dens = np.exp(-0.5 * ((grid[:, None] - t[None, :]) / bw) ** 2).sum(axis=1)
    dens = dens / dens.max()
    xs = np.exp(grid) if ax.log else grid
    # one polygon per stretch of real density: no hair-thin bridges that read like whiskers
    on = dens >= 0.01
    polys = []
    i = 0
    while i < on.size:
        if not on[i]:
            i += 1
            continue
        j = i
        while j + 1 < on.size and on[j + 1]:
            j += 1
        seg_x, seg_d = xs[i:j + 1], dens[i:j + 1] * half
        up = [f"{ax(float(x)):.1f},{cy - d:.1f}" for x, d in zip(seg_x, seg_d)]
        down = [f"{ax(float(x)):.1f},{cy + d:.1f}" for x, d in zip(seg_x[::-1], seg_d[::-1])]
        polys.append(f'<polygon points="{" ".join(up + down)}" fill="{color}" fill-opacity="0.28" '
                     f'stroke="{color}" stroke-width="1"/>')
        i = j + 1
    return "".join(polys)

def trend_svg(key: Key, rows: List[Dict[str, Any]], current_run: Optional[str],
              width: int = 540, height: int = 200) -> str:
    """Median latency with its 95% interval over the stored runs of one key."""
    pts = [r for r in rows if r["status"] == "ok" and r["median_ms"] is not None]
    title = f"{key[0]} · {key[1]} · {key[2]} · t{key[3]}"
    if not pts:
        return ""
    left, right, top, bottom = 56, 14, 26, 34
    vals = [r["median_ms"] for r in pts] + [r["ci_lo"] for r in pts if r["ci_lo"] is not None] + \
           [r["ci_hi"] for r in pts if r["ci_hi"] is not None]
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9 * max(hi, 1e-9):
        lo, hi = lo * 0.95, hi * 1.05
    pad = (hi - lo) * 0.12
    lo, hi = max(0.0, lo - pad), hi + pad
    y = lambda v: top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom)  # noqa: E731
    n = len(pts)
    x = lambda i: left + (i + 0.5) * (width - left - right) / n  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot trend" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
           f'<text x="{left}" y="16" class="ttl">{esc(title)}</text>']
    for t in nice_ticks(lo, hi, 4):
        yy = y(t)
        if top - 1 <= yy <= height - bottom + 1:
            out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{width - right}" y2="{yy:.1f}" class="grid"/>')
            out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="tick" text-anchor="end">{fmt_num(t)}</text>')
    out.append(f'<text x="12" y="{(top + height - bottom) / 2:.0f}" class="axl" text-anchor="middle" '
               f'transform="rotate(-90 12 {(top + height - bottom) / 2:.0f})">median ms</text>')
    if n > 1:
        band_up = [f"{x(i):.1f},{y(r['ci_hi'] if r['ci_hi'] is not None else r['median_ms']):.1f}"
                   for i, r in enumerate(pts)]
        band_dn = [f"{x(i):.1f},{y(r['ci_lo'] if r['ci_lo'] is not None else r['median_ms']):.1f}"
                   for i, r in reversed(list(enumerate(pts)))]
        out.append(f'<polygon points="{" ".join(band_up + band_dn)}" class="band"/>')
        out.append('<polyline points="' + " ".join(f"{x(i):.1f},{y(r['median_ms']):.1f}"
                                                   for i, r in enumerate(pts)) + '" class="line"/>')
    for i, r in enumerate(pts):
        cur = r["run_id"] == current_run
        if r["ci_lo"] is not None:
            out.append(f'<line x1="{x(i):.1f}" y1="{y(r["ci_lo"]):.1f}" x2="{x(i):.1f}" '
                       f'y2="{y(r["ci_hi"]):.1f}" class="err"/>')
        tip = (f'{r.get("label") or r["run_id"]} ({r.get("started_at") or ""}): median '
               f'{fmt_ms(r["median_ms"])} ms' +
               (f', 95% CI {fmt_ms(r["ci_lo"])}–{fmt_ms(r["ci_hi"])}' if r["ci_lo"] is not None else ""))
        out.append(f'<circle cx="{x(i):.1f}" cy="{y(r["median_ms"]):.1f}" r="{5 if cur else 3.2}" '
                   f'class="{"pt cur" if cur else "pt"}"><title>{esc(tip)}</title></circle>')
    # first and last run names under the axis
    first, last = pts[0], pts[-1]
    out.append(f'<text x="{left}" y="{height - 12}" class="tick">{esc(_short_run(first))}</text>')
    if n > 1:
        out.append(f'<text x="{width - right}" y="{height - 12}" class="tick" text-anchor="end">'
                   f'{esc(_short_run(last))}</text>')
    out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 12}" class="tick" '
               f'text-anchor="middle">{n} run{"s" if n != 1 else ""}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _short_run(r: Dict[str, Any]) -> str:
    s = r.get("label") or r.get("run_id") or ""
    return s if len(s) <= 24 else s[:23] + "…"


# --- page ---------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0; color: #1a202c; background: #f7fafc; }
main { max-width: 1400px; margin: 0 auto; padding: 24px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 30px 0 10px; border-bottom: 1px solid #e2e8f0; padding-bottom: 4px; }
.meta { color: #4a5568; margin: 0 0 12px; }
.meta code { background: #edf2f7; padding: 1px 5px; border-radius: 3px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 14px 0; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 16px; min-width: 110px; }
.card b { display: block; font-size: 22px; }
.card.bad b { color: #c53030; } .card.ok b { color: #2f855a; }
table.res { border-collapse: collapse; width: 100%; background: #fff; font-size: 12.5px; }
table.res th, table.res td { border-bottom: 1px solid #e2e8f0; padding: 5px 7px; text-align: left;
                             vertical-align: top; white-space: nowrap; padding: 5px 6px; }
table.res td.st { white-space: normal; min-width: 150px; }
table.res td.rt { white-space: normal; min-width: 90px; font-size: 12px; color: #4a5568; }
table.res th { background: #edf2f7; position: sticky; top: 0; }
table.res td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { background: #fff5f5; } tr.bad td.st { color: #c53030; font-weight: 600; }
tr.skip td { color: #718096; } tr.warn td.st { color: #b7791f; }
.plots { display: flex; flex-direction: column; gap: 14px; }
.trends { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 12px; }
.tablewrap { overflow-x: auto; }
svg.plot { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; max-width: 100%; height: auto; }
svg .ttl { font-size: 13px; font-weight: 600; fill: #2d3748; }
svg .tick { font-size: 11px; fill: #718096; }
svg .axl { font-size: 11px; fill: #4a5568; }
svg .lab { font-size: 12px; fill: #2d3748; }
svg .val { font-size: 11px; fill: #2d3748; }
svg .grid { stroke: #edf2f7; stroke-width: 1; }
svg .whisk { stroke: #4a5568; stroke-width: 1.2; }
svg .box { fill: #fff; fill-opacity: 0.85; stroke: #2d3748; stroke-width: 1.2; }
svg .med { stroke: #c53030; stroke-width: 2.5; }
svg .band { fill: #2b6cb0; fill-opacity: 0.14; stroke: none; }
svg .line { fill: none; stroke: #2b6cb0; stroke-width: 1.6; }
svg .err { stroke: #2b6cb0; stroke-width: 1.2; }
svg .pt { fill: #2b6cb0; } svg .pt.cur { fill: #c05621; stroke: #fff; stroke-width: 1.5; }
.note { color: #718096; font-size: 12px; }
footer { margin-top: 36px; color: #a0aec0; font-size: 12px; }
"""


def _speedups(results: List[Dict[str, Any]]) -> Dict[int, Optional[float]]:
    base = {}
    for r in results:
        if r.get("variant") == "fp32" and r.get("status") == "ok":
            base[(r["device"], r["model"], r.get("threads"))] = (r.get("latency_ms") or {}).get("median")
    out = {}
    for i, r in enumerate(results):
        b = base.get((r["device"], r["model"], r.get("threads")))
        m = (r.get("latency_ms") or {}).get("median")
        out[i] = (b / m) if (b and m and r.get("status") == "ok") else None
    return out


def results_table(doc: Dict[str, Any]) -> str:
    results = doc.get("results") or []
    sp = _speedups(results)
    cols = ["device", "model", "variant", "thr", "size", "median ms", "95% CI", "p95 ms", "CoV",
            "n", "vs fp32", "top-1", "agree", "runtime", "status"]
    out = ['<div class="tablewrap"><table class="res"><thead><tr>' + "".join(f"<th>{esc(c)}</th>" for c in cols)
           + "</tr></thead><tbody>"]
    for i, r in enumerate(results):
        lat = r.get("latency_ms") or {}
        acc = r.get("accuracy") or {}
        rt = r.get("runtime") or {}
        di = r.get("device_info") or {}
        ci = r.get("median_ci_ms") or [None, None]
        cls, status = "", esc(r.get("status"))
        if r.get("status") == "error":
            cls, status = "bad", f"error: {esc(r.get('error'))}"
        elif r.get("status") == "skipped":
            cls, status = "skip", f"skipped: {esc(r.get('error'))}"
        elif acc.get("flag"):
            cls, status = "bad", f"WRONG OUTPUT: {esc(acc.get('flag'))}"
        elif di.get("throttled") or di.get("throttled_during"):
            cls, status = "warn", "ok (throttled)"
        size = r.get("model_bytes")
        size_s = "–" if size is None else (f"{size / 1024:.1f} KB" if size < 1 << 20 else f"{size / (1 << 20):.2f} MB")
        top1 = "–"
        if acc.get("top1") is not None:
            top1 = f"{acc['top1'] * 100:.1f}%"
            if acc.get("top1_ref") is not None:
                top1 += f" ({(acc['top1'] - acc['top1_ref']) * 100:+.1f})"
        agree = f"{acc['agreement_vs_ref'] * 100:.1f}%" if acc.get("agreement_vs_ref") is not None else "–"
        cov = f"{lat['cov'] * 100:.1f}%" if lat.get("cov") is not None else "–"
        cis = f"{fmt_ms(ci[0])}–{fmt_ms(ci[1])}" if ci and ci[0] is not None else "–"
        rts = " ".join(str(x) for x in (rt.get("name"), rt.get("version")) if x)
        if rt.get("xnnpack") is not None:
            rts += " xnnpack" if rt.get("xnnpack") else " no-xnnpack"
        n = r.get("runs") if r.get("runs") is not None else len(r.get("samples_ms") or [])
        cells = [(esc(r.get("device")), ""), (esc(r.get("model")), ""), (esc(r.get("variant")), ""),
                 (esc(r.get("threads")), "n"), (size_s, "n"), (fmt_ms(lat.get("median")), "n"),
                 (cis, "n"), (fmt_ms(lat.get("p95")), "n"), (cov, "n"), (esc(n), "n"),
                 (f"{sp[i]:.2f}×" if sp[i] else "–", "n"), (top1, "n"), (agree, "n"), (esc(rts), "rt"),
                 (status, "st")]
        out.append(f'<tr class="{cls}">' + "".join(
            f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for v, c in cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def render_html(doc: Dict[str, Any], history: Optional[Dict[Key, List[Dict[str, Any]]]] = None) -> str:
    """The whole report page as one HTML string (no external resources)."""
    from .. import __version__
    from ..analysis.compare import result_key
    results = doc.get("results") or []
    n_ok = sum(1 for r in results if r.get("status") == "ok")
    n_err = sum(1 for r in results if r.get("status") == "error")
    n_flag = sum(1 for r in results if (r.get("accuracy") or {}).get("flag"))
    host = doc.get("host") or {}
    title = f"edge-bench report · {doc.get('label') or doc.get('run_id')}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title>", f"<style>{CSS}</style></head><body><main>",
             f"<h1>{esc(title)}</h1>",
             f'<p class="meta">run <code>{esc(doc.get("run_id"))}</code>'
             + (f' · label <code>{esc(doc.get("label"))}</code>' if doc.get("label") else "")
             + f' · started {esc(doc.get("started_at"))}'
             + (f' · finished {esc(doc.get("finished_at"))}' if doc.get("finished_at") else "")
             + (f' · status {esc(doc.get("status"))}' if doc.get("status") else "")
             + (f' · edge-bench {esc(host.get("edge_bench"))}' if host.get("edge_bench") else "")
             + (f' · python {esc(host.get("python"))}' if host.get("python") else "")
             + "</p>"]
    if doc.get("argv"):
        parts.append(f'<p class="meta">command: <code>edge-bench {esc(" ".join(doc["argv"]))}</code></p>')
    devices = sorted({str(r.get("device")) for r in results})
    models = sorted({str(r.get("model")) for r in results})
    parts.append('<div class="cards">'
                 f'<div class="card"><b>{len(results)}</b>results</div>'
                 f'<div class="card ok"><b>{n_ok}</b>ok</div>'
                 f'<div class="card{" bad" if n_err else ""}"><b>{n_err}</b>failed</div>'
                 f'<div class="card{" bad" if n_flag else ""}"><b>{n_flag}</b>wrong outputs</div>'
                 f'<div class="card"><b>{len(devices)}</b>device{"s" if len(devices) != 1 else ""}</div>'
                 f'<div class="card"><b>{len(models)}</b>model{"s" if len(models) != 1 else ""}</div>'
                 "</div>")
    parts.append("<h2>Results</h2>")
    parts.append(results_table(doc))

    # distributions: one plot per (device, model), one row per variant x threads
    groups: Dict[Tuple[str, str], List[Tuple[str, np.ndarray]]] = {}
    for r in results:
        s = np.asarray(r.get("samples_ms") or [], dtype=np.float64)
        s = s[np.isfinite(s)]
        if r.get("status") != "ok" or not s.size:
            continue
        groups.setdefault((str(r["device"]), str(r["model"])), []).append(
            (f"{r['variant']} · t{r.get('threads')}", s))
    parts.append("<h2>Latency distributions</h2>")
    if groups:
        parts.append('<p class="note">violin = density of the per-inference latencies; box = '
                     'quartiles; whiskers = 5th–95th percentile; red bar = median.</p>')
        parts.append('<div class="plots">')
        for (dev, model), rows in groups.items():
            parts.append(distribution_svg(rows, f"{dev} · {model}"))
        parts.append("</div>")
    else:
        parts.append('<p class="note">no raw samples in this run.</p>')

    parts.append("<h2>History</h2>")
    svgs = []
    if history:
        seen = set()
        for r in results:
            k = result_key(r)
            if k in seen or k not in history:
                continue
            seen.add(k)
            svg = trend_svg(k, history[k], doc.get("run_id"))
            if svg:
                svgs.append(svg)
    if svgs:
        parts.append('<p class="note">median latency per stored run, with its 95% bootstrap interval'
                     ' (band and bars); the highlighted point is this run.</p>')
        parts.append('<div class="trends">' + "\n".join(svgs) + "</div>")
    else:
        parts.append('<p class="note">no stored history for these keys.</p>')
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts.append(f"<footer>generated by edge-bench {esc(__version__)} at {esc(now)} · "
                 "self-contained: no scripts, fonts or network</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
