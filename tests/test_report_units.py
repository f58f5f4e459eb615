"""The HTML report of a microsecond model, as Chromium renders it at 1400 px (issue 24): one
unit per column in its header (no `1.53 µs` beside `0.4214`), axes in µs (not `0.0010 ms`), and
the words of the terminal (speedup, agree %, SNR dB)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from synth import fake_result


def _doc() -> dict:
    results = []
    for i, (variant, med, size) in enumerate((("fp32", 0.0015, 70_000), ("int8", 0.0012, 24_000))):
        rng = np.random.default_rng(i)
        s = med * np.exp(0.05 * rng.normal(size=2000))
        s[7] *= 100.0   # one stall
        results.append(fake_result(
            s, device="local", model="builtin:digits", variant=variant, threads=1,
            model_sha256="12" * 32, model_bytes=size,
            accuracy={"top1": 0.986, "top1_ref": 0.986, "agreement_vs_ref": 1.0,
                      "max_abs_err": 0.0 if variant == "fp32" else 0.01,
                      "outputs": [{"name": "y", "snr_db": None if variant == "fp32" else 44.0,
                                   "max_abs_err": 0.0 if variant == "fp32" else 0.01}]}))
    return {"schema": "edge-bench/run/1", "run_id": "r-us", "label": "us",
            "started_at": "2026-12-01T02:00:00+00:00", "argv": ["edge-bench", "run"],
            "results": results}


def test_report_of_a_microsecond_model_reads_in_one_unit(tmp_path: Path) -> None:
    from browser import render
    from edge_bench.render.html import render_html
    from edge_bench.render.svg import trend_svg
    out = tmp_path / "report.html"
    out.write_text(render_html(_doc(), {}), encoding="utf-8")
    page = render(out, tmp_path, 1400, 2400)
    assert not page.script_errors(), page.script_errors()
    dom = page.dom
    head = re.findall(r"<th>([^<]*)</th>", dom)
    assert "median µs" in head and "p95 µs" in head and "95% CI µs" in head, head
    for h in ("speedup", "agree %", "SNR dB", "IQR/med"):
        assert h in head, head
    body = dom[dom.index("<tbody>"):dom.index("</tbody>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    assert len(rows) == 2
    med_col = head.index("median µs")
    for row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        assert re.fullmatch(r"\d+(\.\d+)?", cells[med_col]), cells   # a bare number: no unit
        assert cells[head.index("SNR dB")] in ("inf", "44")
    axis = re.findall(r'class="axl"[^>]*>([^<]*)<', dom)
    assert any(a.startswith("latency per inference, µs") for a in axis), axis
    assert any(a.startswith("median latency, µs") for a in axis), axis
    ticks = re.findall(r'class="tick"[^>]*>([^<]*)<', dom)
    assert ticks and not any(t.startswith("0.00") for t in ticks), ticks
    rows_h = [{"run_id": f"r{i}", "label": None, "started_at": "", "status": "ok",
               "median_ms": 0.0012 + 0.0001 * i, "ci_lo": 0.00115 + 0.0001 * i,
               "ci_hi": 0.00125 + 0.0001 * i} for i in range(4)]
    svg = trend_svg(("local", "m", "fp32", 1), rows_h, "r3")
    assert ">median µs<" in svg
    assert not any(t.startswith("0.00") for t in re.findall(r'class="tick" text-anchor="end">([^<]+)<', svg))
