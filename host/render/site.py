"""`edge-bench report --site DIR`: a static history site of the whole store.

    DIR/index.html          every device x model x variant x threads: latest median, change,
                            trend sparkline, the latest verdict; the recent runs
    DIR/keys/<key>.html     one key over all its runs: median with its 95% interval, compare's
                            verdicts marked, environment changes annotated, a table of the runs
    DIR/runs/<run>.html     one run: its results with their verdicts vs the previous run
    DIR/runs.html           every run
    DIR/style.css           the one stylesheet; no scripts, fonts, CDNs or absolute links, so
                            the site works from file:// and from any static host
"""
from __future__ import annotations

import hashlib
import re
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..results.dburl import redact_argv
from .svg import esc, nice_ticks, tick_labels
from ..text import plural
from .table import fmt_time, short_labels, time_unit

Key = Tuple[str, str, str, Optional[int], str]
VERDICT_CLASS = {"slower": "bad", "accuracy-drop": "bad", "error": "bad", "faster": "good"}
SPARK_RUNS = 60

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0; color: #1a202c; background: #f7fafc; }
main { max-width: 1300px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 21px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 26px 0 8px; }
a { color: #2b6cb0; text-decoration: none; } a:hover { text-decoration: underline; }
.meta, .note { color: #4a5568; font-size: 12.5px; }
table { border-collapse: collapse; background: #fff; font-size: 12.5px; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 4px 8px; text-align: left; white-space: nowrap; }
th { background: #edf2f7; position: sticky; top: 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.err { white-space: normal; color: #c53030; max-width: 480px; }
.v { padding: 1px 6px; border-radius: 3px; font-size: 11.5px; }
.v.bad { background: #fed7d7; color: #9b2c2c; font-weight: 600; }
.v.good { background: #c6f6d5; color: #22543d; }
.v.same { color: #718096; }
.env { color: #6b46c1; font-size: 11.5px; }
svg { background: #fff; border: 1px solid #e2e8f0; border-radius: 6px; }
svg.spark { border: none; background: none; vertical-align: middle; }
svg .grid { stroke: #edf2f7; } svg .tick { font-size: 11px; fill: #718096; }
svg .band { fill: #2b6cb0; fill-opacity: .15; } svg .line { fill: none; stroke: #2b6cb0; stroke-width: 1.5; }
svg .sl { fill: none; stroke: #2b6cb0; stroke-width: 1.2; }
svg .bad { fill: #c53030; } svg .good { fill: #2f855a; } svg .dot { fill: #2b6cb0; }
svg .envl { stroke: #6b46c1; stroke-dasharray: 4 3; } svg .envt { font-size: 10.5px; fill: #6b46c1; }
nav { margin-bottom: 10px; font-size: 13px; }
"""


def key_text(k: Key) -> str:
    return f"{k[0]} · {k[1]} · {k[2]} · t{k[3]}" + (f" · {k[4]}" if k[4] != "cpu" else "")



def slug(text: str) -> str:
    """A file name for any text: readable part + a hash (no collisions, no path tricks)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "x"
    return f"{base}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def key_file(k: Key) -> str:
    # a cpu key keeps the file name it had before accelerators were part of the key
    return f"keys/{slug('|'.join(str(x) for x in (k[:4] if k[4] == 'cpu' else k)))}.html"


def run_file(run_id: str) -> str:
    return f"runs/{slug(run_id)}.html"


def page(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><link rel=\"stylesheet\" href=\"{up}style.css\"></head>"
            f"<body><main><nav><a href=\"{up}index.html\">all keys</a> · "
            f"<a href=\"{up}runs.html\">all runs</a></nav>{body}</main></body></html>\n")


def verdict_badge(v: Optional[Dict[str, Any]]) -> str:
    if not v:
        return ""
    name = v.get("verdict") or ""
    cls = VERDICT_CLASS.get(name, "same")
    tip = "; ".join(v.get("notes") or [])
    return f'<span class="v {cls}" title="{esc(tip)}">{esc(name)}</span>'


def change(a: Optional[float], b: Optional[float]) -> str:
    return "" if not a or not b else f"{(b / a - 1) * 100:+.1f}%"


# --- plots -------------------------------------------------------------------------------------

def sparkline(s: Any) -> str:
    rows = s.rows[-SPARK_RUNS:]
    vals = [r["median_ms"] if r["status"] == "ok" else None for r in rows]
    pts = [(i, v) for i, v in enumerate(vals) if v]
    if not pts:
        return ""
    w, h, pad = 140, 26, 3
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    span = (hi - lo) or max(hi, 1e-12) * 0.05
    n = max(len(rows) - 1, 1)
    xy = [(pad + i / n * (w - 2 * pad), h - pad - (v - lo) / span * (h - 2 * pad)) for i, v in pts]
    last_v = s.verdicts.get(len(s.rows) - 1) or {}
    cls = VERDICT_CLASS.get(last_v.get("verdict") or "", "dot")
    path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    return (f'<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="trend">'
            f'<path d="{path}" class="sl"/><circle cx="{xy[-1][0]:.1f}" cy="{xy[-1][1]:.1f}" '
            f'r="2.6" class="{cls}"/></svg>')


def trend_plot(s: Any, width: int = 1200, height: int = 320) -> str:
    """Median (line) and 95% interval (band) over every run of the key; verdicts as coloured
    markers, environment changes as dashed lines with what changed."""
    rows = s.rows
    idx = [i for i, r in enumerate(rows) if r["status"] == "ok" and r["median_ms"]]
    if not idx:
        return '<p class="note">no successful result of this key yet.</p>'
    left, right, top, bottom = 64, 16, 40, 40
    vals = [rows[i]["median_ms"] for i in idx] + \
        [rows[i][c] for i in idx for c in ("ci_lo", "ci_hi") if rows[i][c] is not None]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.1 or hi * 0.05
    lo, hi = max(0.0, lo - pad), hi + pad
    n = max(len(rows) - 1, 1)
    x = lambda i: left + i / n * (width - left - right)  # noqa: E731
    y = lambda v: top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom)  # noqa: E731
    ticks = nice_ticks(lo, hi, 5)
    unit, usize = time_unit([lo, hi])   # tick labels in µs for a µs model: short, never over the label
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(key_text(s.key))}">']
    for t, lab in zip(ticks, tick_labels([t / usize for t in ticks])):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y(t) + 4:.1f}" class="tick" text-anchor="end">{lab}</text>')
    out.append(f'<text x="14" y="{height / 2:.0f}" class="tick" transform="rotate(-90 14 '
               f'{height / 2:.0f})" text-anchor="middle">median {unit}</text>')
    band = [i for i in idx if rows[i]["ci_lo"] is not None]
    if len(band) > 1:
        up = " L".join(f"{x(i):.1f},{y(rows[i]['ci_hi']):.1f}" for i in band)
        down = " L".join(f"{x(i):.1f},{y(rows[i]['ci_lo']):.1f}" for i in reversed(band))
        out.append(f'<path d="M{up} L{down} Z" class="band"/>')
    out.append('<path d="M' + " L".join(f"{x(i):.1f},{y(rows[i]['median_ms']):.1f}" for i in idx)
               + '" class="line"/>')
    for i, notes in s.changes.items():
        out.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{top - 14}" y2="{height - bottom}" '
                   f'class="envl"><title>{esc("; ".join(notes))}</title></line>'
                   f'<text x="{x(i) + 3:.1f}" y="{top - 18}" class="envt">{esc("; ".join(notes)[:70])}</text>')
    for i, v in s.verdicts.items():
        cls = VERDICT_CLASS.get(v.get("verdict") or "")
        if cls and rows[i]["median_ms"]:
            r = rows[i]
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(r["median_ms"]):.1f}" r="5" class="{cls}">'
                       f'<title>{esc(r.get("label") or r["run_id"])}: {esc(v.get("verdict"))} '
                       f'{esc(change(rows[i - 1]["median_ms"], r["median_ms"]))}</title></circle>')
    first, last = rows[0], rows[-1]
    out.append(f'<text x="{left}" y="{height - 14}" class="tick">{esc((first.get("started_at") or "")[:10])}</text>'
               f'<text x="{width - right}" y="{height - 14}" class="tick" text-anchor="end">'
               f'{esc((last.get("started_at") or "")[:10])}</text>'
               f'<text x="{(left + width - right) / 2:.0f}" y="{height - 14}" class="tick" '
               f'text-anchor="middle">{len(rows)} runs</text></svg>')
    return "".join(out)


# --- pages -------------------------------------------------------------------------------------

def index_page(data: Any) -> str:
    labels = short_labels(k[1] for k in data.series)
    rows = []
    for k in sorted(data.series, key=lambda k: (k[0], k[1], k[2], k[3] or 0)):
        s = data.series[k]
        last = s.latest
        prev = next((r for r in reversed(s.rows[:-1]) if r["status"] == "ok"), None)
        rows.append(
            f'<tr><td>{esc(k[0])}</td><td title="{esc(k[1])}">{esc(labels[k[1]])}</td>'
            f'<td>{esc(k[2])}</td><td class="n">{esc(k[3])}</td>'
            f'<td class="n"><a href="{key_file(k)}">{esc(fmt_time(last["median_ms"]))}</a></td>'
            f'<td class="n">{esc(change(prev and prev["median_ms"], last["median_ms"]))}</td>'
            f'<td>{sparkline(s)}</td><td>{verdict_badge(s.verdicts.get(len(s.rows) - 1))}</td>'
            f'<td class="n">{len(s.rows)}</td>'
            + (f'<td class="err">{esc(last["status"])}: {esc(last.get("error"))}</td>'
               if last["status"] != "ok" else "<td></td>") + "</tr>")
    devices = sorted({k[0] for k in data.series})
    models = sorted({k[1] for k in data.series})
    body = [f"<h1>edge-bench history</h1><p class=\"meta\">{plural(len(data.runs), 'run')} · "
            f"{plural(len(data.series), 'key')} · {plural(len(devices), 'device')} · "
            f"{plural(len(models), 'model')} · "
            f"built {esc(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))}</p>",
            "<h2>Every device × model × variant</h2>",
            '<p class="note">latest median latency; change vs the previous successful run; '
            f"trend over the last {SPARK_RUNS} runs; compare's verdict of the latest run vs the "
            "previous one.</p>",
            "<table><thead><tr><th>device</th><th>model</th><th>variant</th><th>thr</th>"
            "<th>latest</th><th>change</th><th>trend</th><th>verdict</th><th>runs</th>"
            "<th>status</th></tr></thead><tbody>", *rows, "</tbody></table>",
            "<h2>Recent runs</h2>", runs_table(data.runs[-20:][::-1], data, depth=0)]
    return page("edge-bench history", "\n".join(body), 0)


def runs_table(runs: Sequence[Dict[str, Any]], data: Any, depth: int) -> str:
    up = "../" * depth
    rows = [f'<tr><td><a href="{up}{run_file(r["run_id"])}">{esc(r["run_id"])}</a></td>'
            f'<td>{esc(r.get("label"))}</td><td>{esc(r.get("started_at"))}</td>'
            f'<td>{esc(r.get("status"))}</td><td class="n">{r.get("n_ok", 0)}/{r.get("n_results", 0)}</td>'
            f'<td>{esc((r.get("host") or {}).get("edge_bench"))}</td></tr>' for r in runs]
    return ("<table><thead><tr><th>run</th><th>label</th><th>started</th><th>status</th>"
            "<th>ok</th><th>edge-bench</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def key_page(s: Any) -> str:
    k = s.key
    rows = []
    for i in range(len(s.rows) - 1, -1, -1):
        r = s.rows[i]
        ci = f"{fmt_time(r['ci_lo'])} – {fmt_time(r['ci_hi'])}" if r["ci_lo"] is not None else ""
        prev = s.rows[i - 1]["median_ms"] if i else None
        env = "; ".join(s.changes.get(i, []))
        rows.append(f'<tr><td><a href="../{run_file(r["run_id"])}">{esc(r.get("label") or r["run_id"])}</a></td>'
                    f'<td>{esc((r.get("started_at") or "")[:19])}</td>'
                    f'<td class="n">{esc(fmt_time(r["median_ms"]))}</td><td class="n">{esc(ci)}</td>'
                    f'<td class="n">{esc(change(prev, r["median_ms"]))}</td>'
                    f'<td>{verdict_badge(s.verdicts.get(i))}</td><td class="env">{esc(env)}</td>'
                    + (f'<td class="err">{esc(r["status"])}: {esc(r.get("error"))}</td>'
                       if r["status"] != "ok" else "<td></td>") + "</tr>")
    body = (f"<h1>{esc(key_text(k))}</h1><p class=\"meta\">model <code>{esc(k[1])}</code> · "
            f"{len(s.rows)} runs</p>" + trend_plot(s) +
            '<p class="note">line: median; band: its 95% bootstrap interval; red/green markers: '
            "compare's verdict (slower / faster) vs the previous run; dashed: the runtime, agent "
            "or quantizer changed.</p><h2>Runs, newest first</h2>"
            "<table><thead><tr><th>run</th><th>started</th><th>median</th><th>95% CI</th>"
            "<th>change</th><th>verdict</th><th>environment</th><th>status</th></tr></thead>"
            "<tbody>" + "".join(rows) + "</tbody></table>")
    return page(key_text(k), body, 1)


def run_page(run: Dict[str, Any], entries: List[Tuple[Any, int]]) -> str:
    rows = []
    labels = short_labels(s.key[1] for s, _ in entries)
    for s, i in sorted(entries, key=lambda e: tuple(str(x) for x in e[0].key)):
        r, k = s.rows[i], s.key
        prev = s.rows[i - 1]["median_ms"] if i else None
        rows.append(f'<tr><td>{esc(k[0])}</td><td title="{esc(k[1])}">{esc(labels[k[1]])}</td>'
                    f'<td>{esc(k[2])}</td><td class="n">{esc(k[3])}</td>'
                    f'<td class="n"><a href="../{key_file(k)}">{esc(fmt_time(r["median_ms"]))}</a></td>'
                    f'<td class="n">{esc(change(prev, r["median_ms"]))}</td>'
                    f'<td>{verdict_badge(s.verdicts.get(i))}</td>'
                    f'<td class="env">{esc("; ".join(s.changes.get(i, [])))}</td>'
                    + (f'<td class="err">{esc(r["status"])}: {esc(r.get("error"))}</td>'
                       if r["status"] != "ok" else "<td>ok</td>") + "</tr>")
    argv = redact_argv(run.get("argv") or [])  # an old store may hold a password
    cmd = " ".join(argv if argv[:1] == ["edge-bench"] else ["edge-bench", *argv])
    body = (f"<h1>run {esc(run.get('label') or run['run_id'])}</h1>"
            f"<p class=\"meta\">{esc(run['run_id'])} · started {esc(run.get('started_at'))} · "
            f"status {esc(run.get('status'))} · <code>{esc(cmd)}</code></p>"
            "<table><thead><tr><th>device</th><th>model</th><th>variant</th><th>thr</th>"
            "<th>median</th><th>vs previous</th><th>verdict</th><th>environment</th>"
            "<th>status</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    return page(f"run {run.get('label') or run['run_id']}", body, 1)


def render_site(data: Any) -> Dict[str, str]:
    """Every file of the site (relative path -> text) from the service's Any."""
    files: Dict[str, str] = {"style.css": CSS, "index.html": index_page(data),
                             "runs.html": page("all runs", "<h1>All runs</h1>" + runs_table(
                                 data.runs[::-1], data, depth=0), 0)}
    by_run: Dict[str, List[Tuple[Any, int]]] = {}
    for s in data.series.values():
        files[key_file(s.key)] = key_page(s)
        for i, r in enumerate(s.rows):
            by_run.setdefault(r["run_id"], []).append((s, i))
    for run in data.runs:
        files[run_file(run["run_id"])] = run_page(run, by_run.get(run["run_id"], []))
    return files
