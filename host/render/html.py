"""The self-contained HTML page of `edge-bench report`: inline CSS, the results table, the
SVG plots of render/svg.py; no scripts, no fonts, no network.
"""
from __future__ import annotations

import shlex
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from edge_bench_agent.accel_spec import result_accelerator

from ..analysis.interference import describe, is_busy
from ..analysis.stats import iqr_over_median
from ..analysis.verdict import Key
from ..results.dburl import redact_argv
from .display import WORDS, snr_text
from .svg import distribution_svg, esc, trend_svg
from .table import in_unit, time_unit
from .table import variant_label
from .tradeoff import TRADEOFF_CSS, devices_svg, tradeoff_svg


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
            base[(r["device"], r["model"], r.get("threads"), result_accelerator(r))] = \
                (r.get("latency_ms") or {}).get("median")
    out = {}
    for i, r in enumerate(results):
        b = base.get((r["device"], r["model"], r.get("threads"), result_accelerator(r)))
        m = (r.get("latency_ms") or {}).get("median")
        out[i] = (b / m) if (b and m and r.get("status") == "ok") else None
    return out


#: what each accuracy word measures, under the results table (the terminal's docs say the same)
WORDS_NOTE = ("speedup = fp32's median / this variant's (0.5 = twice as slow); top-1 % = eval"
              " samples classified right (needs labels; in brackets its change vs fp32 in points);"
              " agree % = samples whose top class matches fp32's; SNR dB = output similarity vs"
              " fp32, the worst output (inf = identical); IQR/med = the spread of the latencies,"
              " interquartile range over the median (one outlier cannot blow it up, as it does"
              " the coefficient of variation; that is in the JSON as latency_ms.cov).")


def _dash(text: str) -> str:
    return "–" if text == "-" else text


def results_table(doc: Dict[str, Any]) -> str:
    results = doc.get("results") or []
    sp = _speedups(results)
    # one unit per column, chosen from the data (µs for a microsecond model), in the header
    lats = [r.get("latency_ms") or {} for r in results]
    unit, usize = time_unit([x.get("median") for x in lats] + [x.get("p95") for x in lats])
    cols = ["device", "model", "variant", "thr", "size", f"median {unit}", f"95% CI {unit}",
            f"p95 {unit}", "IQR/med", "n", WORDS["speedup"], WORDS["top1"], WORDS["agree"], WORDS["snr"],
            "runtime", "status"]
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
        elif r.get("status") == "partial":   # an interrupted run's: samples of some processes
            cls, status = "warn", f"partial: {esc(r.get('error'))}"
        elif r.get("status") == "skipped":
            cls, status = "skip", f"skipped: {esc(r.get('error'))}"
        elif acc.get("flag"):
            cls, status = "bad", f"WRONG OUTPUT: {esc(acc.get('flag'))}"
        elif di.get("throttled") or di.get("throttled_during"):
            cls, status = "warn", "ok (throttled)"
        elif is_busy(r):
            cls, status = "warn", f"ok ({esc(describe(r, 'timing'))})"
        size = r.get("model_bytes")
        size_s = "–" if size is None else (f"{size / 1024:.1f} KB" if size < 1 << 20 else f"{size / (1 << 20):.2f} MB")
        top1 = "–"
        if acc.get("top1") is not None:
            top1 = f"{acc['top1'] * 100:.1f}"
            if acc.get("top1_ref") is not None:
                top1 += f" ({(acc['top1'] - acc['top1_ref']) * 100:+.1f})"
        agree = f"{acc['agreement_vs_ref'] * 100:.1f}" if acc.get("agreement_vs_ref") is not None else "–"
        spread = iqr_over_median(r.get("samples_ms") or [])
        iqr = "–" if spread is None else f"{spread * 100:.1f}%"
        cis = (f"{in_unit(ci[0], usize)}–{in_unit(ci[1], usize)}" if ci and ci[0] is not None
               and ci[1] is not None else "–")
        rts = " ".join(str(x) for x in (rt.get("name"), rt.get("version")) if x)
        if rt.get("xnnpack") is not None:
            rts += " xnnpack" if rt.get("xnnpack") else " no-xnnpack"
        n = r.get("runs") if r.get("runs") is not None else len(r.get("samples_ms") or [])
        cells = [(esc(r.get("device")), ""), (esc(r.get("model")), ""), (esc(variant_label(r)), ""),
                 (esc(r.get("threads")), "n"), (size_s, "n"), (_dash(in_unit(lat.get("median"), usize)), "n"),
                 (cis, "n"), (_dash(in_unit(lat.get("p95"), usize)), "n"), (iqr, "n"), (esc(n), "n"),
                 (f"{sp[i]:.2f}×" if sp[i] else "–", "n"), (top1, "n"), (agree, "n"),
                 (_dash(snr_text(acc, unit=False)), "n"), (esc(rts), "rt"),
                 (status, "st")]
        out.append(f'<tr class="{cls}">' + "".join(
            f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for v, c in cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def tradeoff_section(results: List[Dict[str, Any]]) -> List[str]:
    """The trade-off chart per device and model (at its lowest thread count), and the devices
    side by side per model when there are several."""
    by: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in results:
        by.setdefault((str(r.get("device")), str(r.get("model"))), []).append(r)
    charts = []
    for (dev, model), rs in by.items():
        low = min((r.get("threads") or 1) for r in rs)
        svg = tradeoff_svg([r for r in rs if (r.get("threads") or 1) == low],
                           f"{dev} · {model} · t{low}")
        if svg:
            charts.append(svg)
    out = ["<h2>Trade-off: size, latency, accuracy</h2>"]
    if not charts:
        return out + ['<p class="note">no successful results with a size and a latency.</p>']
    out += ['<p class="note">each variant at its file size and median latency; next to it its '
            "accuracy change against fp32 (top-1 points with labels, else output similarity: "
            "the worst output's SNR vs fp32 in dB), green = unchanged to red = large drop; dashed lines through fp32, the "
            "reference; ringed and joined: the Pareto front (no other variant is both smaller and "
            "faster); a cross: outputs flagged wrong.</p>",
            '<div class="tradeoffs">' + "\n".join(charts) + "</div>"]
    models = list(dict.fromkeys(str(r.get("model")) for r in results))
    versus = []
    for model in models:
        rs = [r for r in results if str(r.get("model")) == model]
        low = min((r.get("threads") or 1) for r in rs)
        svg = devices_svg([r for r in rs if (r.get("threads") or 1) == low],
                          f"{model} · t{low} on every device")
        if svg:
            versus.append(svg)
    if versus:
        out += ["<h2>Devices side by side</h2>", '<div class="plots">' + "\n".join(versus) + "</div>"]
    return out


def render_html(doc: Dict[str, Any], history: Optional[Dict[Key, List[Dict[str, Any]]]] = None) -> str:
    """The whole report page as one HTML string (no external resources)."""
    from .. import __version__
    from ..analysis.verdict import result_key
    results = doc.get("results") or []
    n_ok = sum(1 for r in results if r.get("status") == "ok")
    n_err = sum(1 for r in results if r.get("status") == "error")
    n_flag = sum(1 for r in results if (r.get("accuracy") or {}).get("flag"))
    host = doc.get("host") or {}
    title = f"edge-bench report · {doc.get('label') or doc.get('run_id')}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title>", f"<style>{CSS}{TRADEOFF_CSS}</style></head><body><main>",
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
        argv = redact_argv(doc["argv"])  # stored as run by the CLI: "edge-bench", "run", ...
        if argv[:1] != ["edge-bench"]:
            argv = ["edge-bench", *argv]
        parts.append(f'<p class="meta">command: <code>{esc(shlex.join(argv))}</code></p>')
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
    parts.append(f'<p class="note">{esc(WORDS_NOTE)}</p>')
    parts.extend(tradeoff_section(results))

    # distributions: one plot per (device, model), one row per variant x threads
    groups: Dict[Tuple[str, str], List[Tuple[str, np.ndarray]]] = {}
    for r in results:
        s = np.asarray(r.get("samples_ms") or [], dtype=np.float64)
        s = s[np.isfinite(s)]
        if r.get("status") != "ok" or not s.size:
            continue
        groups.setdefault((str(r["device"]), str(r["model"])), []).append(
            (f"{variant_label(r)} · t{r.get('threads')}", s))
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
