"""The pictures the tool is for: what each variant trades (size, latency, accuracy), and how the
devices compare on one variant. Pure functions from results to SVG text.

`tradeoff_svg`: per device and model, each variant a point at (file size, median latency), its
accuracy change against fp32 written next to it and coloured, fp32 as the reference (dashed
lines through it), the Pareto front (no other variant is both smaller and faster) joined and
ringed. Variants whose outputs are flagged wrong are drawn as crosses and never on the front.

`devices_svg`: per model, one group of bars per variant with one bar per device (median
latency, whisker = 95% interval of the median), for a fleet of more than one device.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .svg import esc, nice_ticks, tick_labels
from .table import time_unit, variant_label

DEVICE_COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d",
                 "#9b2c2c"]



def accuracy_change(r: Dict[str, Any]) -> Tuple[Optional[float], str]:
    """(badness 0..1 for the colour, text) of a variant's accuracy change against fp32: top-1
    change in points when there are labels, else output similarity (the worst output's SNR vs
    fp32, in dB), else agreement with fp32's top class."""
    from ..analysis.verdict import worst_snr
    acc = r.get("accuracy") or {}
    if acc.get("flag"):
        return 1.0, "WRONG OUTPUT"
    if acc.get("top1") is not None and acc.get("top1_ref") is not None:
        d = (acc["top1"] - acc["top1_ref"]) * 100
        return min(1.0, max(0.0, -d / 5.0)), f"top-1 {d:+.1f} pts"
    snr = worst_snr(acc)
    if snr is not None:
        if math.isinf(snr):
            return 0.0, "SNR inf dB (identical)"
        return min(1.0, max(0.0, (40 - snr) / 30.0)), f"SNR {snr:.0f} dB"
    if acc.get("agreement_vs_ref") is not None:
        a = acc["agreement_vs_ref"] * 100
        return min(1.0, max(0.0, (100 - a) / 10.0)), f"agree {a:.1f}%"
    return None, ""


def _color(bad: Optional[float]) -> str:
    if bad is None:
        return "#4a5568"
    g = (47, 133, 90)      # green: no change
    r = (197, 48, 48)      # red: a large drop
    mix = [round(a + (b - a) * bad) for a, b in zip(g, r)]
    return "#%02x%02x%02x" % tuple(mix)


def pareto(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indexes of the points no other point beats on both axes (smaller is better on both)."""
    out = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y)
                   for j, (x2, y2) in enumerate(points) if j != i):
            out.append(i)
    return out


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float, log: Optional[bool] = None) -> None:
        lo, hi = max(lo, 1e-12), max(hi, lo * 1.0001)
        self.log = (hi / lo > 6) if log is None else log
        if self.log:
            self.lo, self.hi = lo / 1.35, hi * 1.35
        else:
            pad = (hi - lo) * 0.12 or hi * 0.1
            self.lo, self.hi = max(0.0, lo - pad), hi + pad
        self.a, self.b = a, b

    def __call__(self, v: float) -> float:
        if self.log:
            f = (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.a + f * (self.b - self.a)

    def ticks(self) -> List[float]:
        if self.log:
            t = [m * 10 ** e for e in range(math.floor(math.log10(self.lo)),
                                             math.ceil(math.log10(self.hi)) + 1)
                 for m in (1, 2, 5) if self.lo <= m * 10 ** e <= self.hi]
            if len(t) >= 2:
                return t
        return [v for v in nice_ticks(self.lo, self.hi, 5) if v > 0 or not self.log]


def _size_unit(sizes: Sequence[float]) -> Tuple[str, float]:
    top = max(sizes)
    return ("MB", 1 << 20) if top >= 1 << 20 else (("KB", 1 << 10) if top >= 1 << 10 else ("B", 1))


def tradeoff_svg(results: Sequence[Dict[str, Any]], title: str, width: int = 620,
                 height: int = 380) -> str:
    """One device and model: each variant (ok results with a size and a median) as a point."""
    pts = [r for r in results if r.get("status") == "ok" and r.get("model_bytes")
           and (r.get("latency_ms") or {}).get("median")]
    if not pts:
        return ""
    left, right, top, bottom = 70, 150, 34, 48
    unit, usize = _size_unit([r["model_bytes"] for r in pts])
    xs = [r["model_bytes"] / usize for r in pts]
    tname, tsize = time_unit([r["latency_ms"]["median"] for r in pts])  # µs for a µs model
    ys = [r["latency_ms"]["median"] / tsize for r in pts]
    sx = _Scale(min(xs), max(xs), left, width - right)
    sy = _Scale(min(ys), max(ys), height - bottom, top)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot tradeoff" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
           f'<text x="{left}" y="20" class="ttl">{esc(title)}</text>']
    tx = sx.ticks()
    for t, lab in zip(tx, tick_labels(tx)):
        out.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" y2="{height - bottom}" class="grid"/>'
                   f'<text x="{sx(t):.1f}" y="{height - bottom + 16}" class="tick" '
                   f'text-anchor="middle">{lab}</text>')
    ty = sy.ticks()
    for t, lab in zip(ty, tick_labels(ty)):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" class="tick" text-anchor="end">{lab}</text>')
    out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 10}" class="axl" '
               f'text-anchor="middle">model file size, {unit}{" (log scale)" if sx.log else ""}</text>'
               f'<text x="16" y="{(top + height - bottom) / 2:.0f}" class="axl" text-anchor="middle" '
               f'transform="rotate(-90 16 {(top + height - bottom) / 2:.0f})">median latency, {tname}'
               f'{" (log)" if sy.log else ""}</text>')
    ref = next((i for i, r in enumerate(pts) if r.get("variant") == "fp32"), None)
    if ref is not None:
        out.append(f'<line x1="{sx(xs[ref]):.1f}" x2="{sx(xs[ref]):.1f}" y1="{top}" '
                   f'y2="{height - bottom}" class="ref"/><line x1="{left}" x2="{width - right}" '
                   f'y1="{sy(ys[ref]):.1f}" y2="{sy(ys[ref]):.1f}" class="ref"/>')
    good = [i for i, r in enumerate(pts) if not (r.get("accuracy") or {}).get("flag")]
    front = sorted((good[j] for j in pareto([(xs[i], ys[i]) for i in good])), key=lambda i: xs[i])
    if len(front) > 1:  # the front as a staircase: smaller files are never faster past it
        d = [f"M{sx(xs[front[0]]):.1f},{sy(ys[front[0]]):.1f}"]
        for a, b in zip(front, front[1:]):
            d.append(f"L{sx(xs[b]):.1f},{sy(ys[a]):.1f} L{sx(xs[b]):.1f},{sy(ys[b]):.1f}")
        out.append(f'<path d="{" ".join(d)}" class="front"/>')
    for i, r in enumerate(pts):
        x, y = sx(xs[i]), sy(ys[i])
        bad, text = accuracy_change(r)
        name = variant_label(r) + (" (reference)" if i == ref else "")
        tip = (f"{variant_label(r)}: {xs[i]:.4g} {unit}, median {ys[i]:.4g} {tname}"
               + (f", {text}" if text else "") + (", on the Pareto front" if i in front else ""))
        if (r.get("accuracy") or {}).get("flag"):
            out.append(f'<path d="M{x - 6:.1f},{y - 6:.1f} L{x + 6:.1f},{y + 6:.1f} M{x - 6:.1f},'
                       f'{y + 6:.1f} L{x + 6:.1f},{y - 6:.1f}" class="wrong"><title>{esc(tip)}'
                       f'</title></path>')
        else:
            if i in front:
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="10" class="ring"/>')
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{_color(bad)}" '
                       f'class="var"><title>{esc(tip)}</title></circle>')
        out.append(f'<text x="{x + 12:.1f}" y="{y - 2:.1f}" class="lab">{esc(name)}</text>')
        if text:
            out.append(f'<text x="{x + 12:.1f}" y="{y + 11:.1f}" class="val" '
                       f'fill="{_color(bad)}">{esc(text)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def devices_svg(results: Sequence[Dict[str, Any]], title: str, width: int = 1100) -> str:
    """One model on every device: per variant a group of bars, one per device."""
    ok = [r for r in results if r.get("status") == "ok" and (r.get("latency_ms") or {}).get("median")]
    devices = sorted({str(r["device"]) for r in ok})
    if len(devices) < 2:
        return ""
    variants = list(dict.fromkeys(variant_label(r) for r in ok))
    by = {(variant_label(r), str(r["device"])): r for r in ok}
    left, right, top, bar, gap = 130, 90, 34, 14, 12
    height = top + len(variants) * (len(devices) * bar + gap) + 44
    hi = max((r.get("median_ci_ms") or [None, None])[1] or r["latency_ms"]["median"] for r in ok)
    tname, tsize = time_unit([r["latency_ms"]["median"] for r in ok])
    ticks = nice_ticks(0.0, hi * 1.08, 5)
    x = lambda v: left + v / (ticks[-1] if ticks[-1] > 0 else 1) * (width - left - right)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot devices" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
           f'<text x="{left}" y="20" class="ttl">{esc(title)}</text>']
    yb = height - 44
    for t, lab in zip(ticks, tick_labels([t / tsize for t in ticks])):
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{yb}" class="grid"/>'
                   f'<text x="{x(t):.1f}" y="{yb + 16}" class="tick" text-anchor="middle">{lab}</text>')
    out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{yb + 34}" class="axl" '
               f'text-anchor="middle">median latency, {tname} (whisker: 95% interval)</text>')
    y = top
    for v in variants:
        out.append(f'<text x="{left - 8}" y="{y + len(devices) * bar / 2 + 4:.1f}" class="lab" '
                   f'text-anchor="end">{esc(v)}</text>')
        for k, dev in enumerate(devices):
            r = by.get((v, dev))
            if r is not None:
                med = r["latency_ms"]["median"]
                color = DEVICE_COLORS[k % len(DEVICE_COLORS)]
                out.append(f'<rect x="{left}" y="{y + 1:.1f}" width="{max(1.0, x(med) - left):.1f}" '
                           f'height="{bar - 2}" fill="{color}"><title>{esc(dev)} · {esc(v)}: '
                           f'{med / tsize:.4g} {tname}</title></rect>')
                ci = r.get("median_ci_ms") or [None, None]
                if ci[0] is not None and ci[1] is not None:
                    out.append(f'<line x1="{x(ci[0]):.1f}" x2="{x(ci[1]):.1f}" y1="{y + bar / 2:.1f}" '
                               f'y2="{y + bar / 2:.1f}" class="whisk"/>')
                out.append(f'<text x="{x(med) + 4:.1f}" y="{y + bar - 3:.1f}" class="val">'
                           f'{esc(dev)} {med / tsize:.3g}</text>')
            y += bar
        y += gap
    out.append("</svg>")
    return "\n".join(out)


TRADEOFF_CSS = """
svg .ref { stroke: #a0aec0; stroke-dasharray: 5 4; stroke-width: 1; }
svg .front { fill: none; stroke: #2f855a; stroke-width: 1.6; stroke-dasharray: 2 0; opacity: .7; }
svg .ring { fill: none; stroke: #2f855a; stroke-width: 2; }
svg .var { stroke: #fff; stroke-width: 1.2; }
svg .wrong { stroke: #c53030; stroke-width: 2.5; }
.tradeoffs { display: grid; grid-template-columns: repeat(auto-fill, minmax(620px, 1fr)); gap: 12px; }
"""
