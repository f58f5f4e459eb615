"""SVG plots drawn in Python for the HTML report: the latency distribution of a run (violin +
box per variant/threads) and a key's history trend (median with its 95% interval per run).

No scripts, no fonts, no network: each function returns an <svg> element as text, with all
user text escaped.
"""
from __future__ import annotations

import html
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..analysis.verdict import Key
from .table import fmt_time, time_unit

#: the percentiles a distribution plot's axis spans (its violins and whiskers stay inside)
CLIP_PCT = (1.0, 99.0)
#: a violin's stretch of density apart from its median's is drawn from this share of samples
MIN_BLOB_SHARE = 0.10
#: a trend's y label band (rotated text centred at x=12) and the width of one tick character
#: at 11 px (digits of the common sans fonts are 0.55-0.64 em: room for the widest)
Y_LABEL_BAND = 18
TICK_CHAR_PX = 7.2

PALETTE = ["#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d"]


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


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


def tick_labels(ticks: Sequence[float]) -> List[str]:
    """Labels with just enough decimals that neighbouring ticks read differently
    (0.175 0.18 0.185, not 0.18 0.18 0.18)."""
    if not ticks:
        return []
    if len(ticks) == 1:
        return [f"{ticks[0]:.3g}"]
    step = min(abs(b - a) for a, b in zip(ticks, ticks[1:]) if b != a) if len(set(ticks)) > 1 else 1
    decimals = 0
    while decimals < 12:
        labels = [f"{t:.{decimals}f}" for t in ticks]
        if len(set(labels)) == len(labels) and abs(round(step, decimals) - step) < step * 1e-6:
            return labels
        decimals += 1
    return [f"{t:g}" for t in ticks]


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
    # the axis is fitted to the data: from the lowest row's 1st to the highest row's 99th
    # percentile (whiskers and violins end there); slower samples are counted, not drawn
    lo = min(float(np.percentile(s, CLIP_PCT[0])) for _, s in rows)
    hi = max(float(np.percentile(s, CLIP_PCT[1])) for _, s in rows)
    beyond = sum(int(np.count_nonzero(s > hi)) for _, s in rows)
    ax = Axis(lo, hi, left, width - right)
    unit, usize = time_unit([lo, hi])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
           f'<text x="{left}" y="18" class="ttl">{esc(title)}</text>']
    yb = top + row_h * len(rows)
    ticks = ax.ticks()
    labels = dict(zip(ticks, tick_labels([t / usize for t in ticks])))
    for t in ticks:
        x = ax(t)
        if ax.x0 - 0.5 <= x <= ax.x1 + 0.5:
            out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{yb}" class="grid"/>')
            out.append(f'<text x="{x:.1f}" y="{yb + 16}" class="tick" text-anchor="middle">{labels[t]}</text>')
    out.append(f'<text x="{(ax.x0 + ax.x1) / 2:.0f}" y="{yb + 34}" class="axl" text-anchor="middle">'
               f'latency per inference, {unit}{" (log scale)" if ax.log else ""}'
               + (f"; axis clipped at the {CLIP_PCT[1]:g}th percentile: {beyond} slower"
                  f" sample{'s' if beyond != 1 else ''} (up to {fmt_time(max(float(np.max(s)) for _, s in rows))})"
                  " not drawn" if beyond else "") + '</text>')
    for i, (lab, s) in enumerate(rows):
        color = PALETTE[i % len(PALETTE)]
        cy = top + row_h * i + row_h / 2
        out.append(f'<text x="{left - 8}" y="{cy + 4:.1f}" class="lab" text-anchor="end">{esc(lab)}</text>')
        vlo, vhi = (float(v) for v in np.percentile(s, list(CLIP_PCT)))
        vis = s[(s >= max(ax.lo, vlo)) & (s <= min(ax.hi, vhi))]
        if vis.size >= 5:
            out.append(_violin(vis, ax, cy, row_h * 0.42, color))
        q1, med, q3 = (float(v) for v in np.percentile(s, [25, 50, 75]))
        p5, p95 = (float(v) for v in np.percentile(s, [5, 95]))
        clip = lambda v: min(max(v, ax.lo), ax.hi)  # noqa: E731
        x5, x95, xq1, xq3, xm = (ax(clip(v)) for v in (p5, p95, q1, q3, med))
        out.append(f'<line x1="{x5:.1f}" y1="{cy:.1f}" x2="{x95:.1f}" y2="{cy:.1f}" class="whisk"/>')
        out.append(f'<rect x="{xq1:.1f}" y="{cy - 7:.1f}" width="{max(xq3 - xq1, 1):.1f}" height="14" '
                   f'class="box"><title>{esc(lab)}: median {fmt_time(med)}, IQR {fmt_time(q1)}–'
                   f'{fmt_time(q3)}, p5–p95 {fmt_time(p5)}–{fmt_time(p95)}, n={s.size}</title></rect>')
        out.append(f'<line x1="{xm:.1f}" y1="{cy - 9:.1f}" x2="{xm:.1f}" y2="{cy + 9:.1f}" class="med"/>')
        out.append(f'<text x="{min(xq3 + 6, ax.x1 - 2):.1f}" y="{cy - 10:.1f}" class="val">'
                   f'{fmt_time(med)}</text>')
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
    # one polygon per stretch of real density: no hair-thin bridges that read like whiskers;
    # a stretch apart from the one holding the median is drawn only if it holds a real share
    # of the samples (MIN_BLOB_SHARE): a tiny detached blob reads as a second marker
    on = dens >= 0.01
    med = float(np.median(t))
    polys = []
    i = 0
    while i < on.size:
        if not on[i]:
            i += 1
            continue
        j = i
        while j + 1 < on.size and on[j + 1]:
            j += 1
        share = float(np.count_nonzero((t >= grid[i]) & (t <= grid[j]))) / t.size
        if not (grid[i] <= med <= grid[j]) and share < MIN_BLOB_SHARE:
            i = j + 1
            continue
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
    right, top, bottom = 14, 26, 34
    vals = [r["median_ms"] for r in pts] + [r["ci_lo"] for r in pts if r["ci_lo"] is not None] + \
           [r["ci_hi"] for r in pts if r["ci_hi"] is not None]
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9 * max(hi, 1e-9):
        lo, hi = lo * 0.95, hi * 1.05
    pad = (hi - lo) * 0.12
    lo, hi = max(0.0, lo - pad), hi + pad
    y = lambda v: top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom)  # noqa: E731
    ticks = nice_ticks(lo, hi, 4)
    unit, usize = time_unit([lo, hi])
    labels = dict(zip(ticks, tick_labels([t / usize for t in ticks])))
    # the rotated y label (x 6..18 at 11 px) and, right of it, the widest tick label
    left = Y_LABEL_BAND + 6 + math.ceil(TICK_CHAR_PX * max(len(v) for v in labels.values())) + 6
    n = len(pts)
    x = lambda i: left + (i + 0.5) * (width - left - right) / n  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot trend" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
           f'<text x="{left}" y="16" class="ttl">{esc(title)}</text>']
    for t in ticks:
        yy = y(t)
        if top - 1 <= yy <= height - bottom + 1:
            out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{width - right}" y2="{yy:.1f}" class="grid"/>')
            out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="tick" text-anchor="end">{labels[t]}</text>')
    out.append(f'<text x="12" y="{(top + height - bottom) / 2:.0f}" class="axl" text-anchor="middle" '
               f'transform="rotate(-90 12 {(top + height - bottom) / 2:.0f})">median {unit}</text>')
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
               f'{fmt_time(r["median_ms"])}' +
               (f', 95% CI {fmt_time(r["ci_lo"])}–{fmt_time(r["ci_hi"])}' if r["ci_lo"] is not None
                else ""))
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
