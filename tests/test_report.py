"""`edge-bench report`: a self-contained HTML page that renders in headless Chromium, and CSV."""
from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from synth import fake_result
from edge_bench.cli import main
from edge_bench.render.html import render_html
from edge_bench.analysis.stats import summarize
from edge_bench.results.store import Store


def make_result(variant: str, threads: int, median: float, seed: int, n: int = 400,
                model: str = "builtin:digits", device: str = "local") -> Dict[str, Any]:
    rng = np.random.default_rng(seed)
    s = median * np.exp(0.08 * rng.normal(size=n))
    s[rng.random(n) < 0.02] *= 2.5
    return fake_result(
        s, device=device, model=model, variant=variant, threads=threads,
        model_sha256="12" * 32, model_bytes=80_000 if variant == "fp32" else 24_000,
        accuracy={"top1": 0.97 if variant != "int8" else 0.96, "top1_ref": 0.97,
                  "agreement_vs_ref": 1.0 if variant == "fp32" else 0.985, "max_abs_err": 0.01})


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.sqlite"
    st = Store(path)
    for night in range(6):
        rid = st.begin_run({"run_id": f"run-{night}", "label": f"nightly-2024-05-0{night + 1}",
                            "started_at": f"2024-05-0{night + 1}T02:00:00+00:00",
                            "host": {"edge_bench": "0.1.0", "python": "3.11.2"},
                            "argv": ["run", "--label", f"nightly-2024-05-0{night + 1}"]})
        slow = 1.12 if night == 5 else 1.0
        for i, (v, m) in enumerate((("fp32", 2.0), ("fp16", 1.9), ("dynamic-int8", 1.1), ("int8", 0.7))):
            for t in (1, 2):
                st.add_result(rid, make_result(v, t, m / t * slow * (1 + 0.01 * night), seed=night * 50 + i * 2 + t))
        st.add_result(rid, make_result("fp32", 1, 8.0, seed=night, model="builtin:mobilenet"))
        st.add_result(rid, {"device": "pi4", "model": "builtin:digits", "variant": "weight-int4",
                            "threads": 1, "status": "error", "error": "Segmentation fault (core dumped)",
                            "samples_ms": [], "latency_ms": summarize([])})
        st.finish_run(rid, "finished")
    st.close()
    return path


def test_report_html_is_self_contained(db: Path, tmp_path: Path) -> None:
    out, out_csv = tmp_path / "report.html", tmp_path / "report.csv"
    assert main(["report", "last", "--html", str(out), "--csv", str(out_csv), "--db", str(db)]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "</html>" in text
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text, re.I)
    assert "@import" not in text and "url(" not in text
    # every URL in the page is the SVG namespace, which is an identifier, not a fetch
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) <= {"http://www.w3.org/2000/svg"}
    # 2 trade-off charts and 2 distributions (local: digits, mobilenet; pi4 only failed) + 9 trends
    assert text.count("<svg") == 2 + 2 + 9 and text.count('class="plot tradeoff"') == 2
    assert "Segmentation fault" in text and "nightly-2024-05-06" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 10 and rows[0]["run_id"] == "run-5"
    assert {r["status"] for r in rows} == {"ok", "error"}


def test_report_from_json_file_without_store(db: Path, tmp_path: Path) -> None:
    from edge_bench.results.document import write_json
    doc = Store(db).get_run("run-2")
    write_json(doc, tmp_path / "run.json")
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "run.json"), "--html", str(out),
                 "--db", str(tmp_path / "none.sqlite")]) == 0
    text = out.read_text()
    assert "no stored history" in text and text.count("<svg") == 2 + 2  # + 2 trade-off charts
    assert main(["report", "last", "--db", str(db)]) == 2  # nothing to write
    assert main(["report", "nope", "--html", str(out), "--db", str(db)]) == 2


def test_render_handles_empty_and_odd_runs() -> None:
    html = render_html({"schema": "edge-bench/run/1", "run_id": "x<y>", "started_at": "now",
                        "results": []})
    assert "x&lt;y&gt;" in html and "no raw samples" in html
    one = make_result("fp32", 1, 1.0, seed=1, n=3)
    const = dict(make_result("int8", 1, 1.0, seed=2), samples_ms=[0.5] * 50)
    html = render_html({"schema": "edge-bench/run/1", "run_id": "r", "started_at": "now",
                        "results": [one, const]}, {})
    assert html.count("<svg") == 1 + 1  # one distribution, one trade-off chart (both variants)


def run_doc(devices=("local", "pi4")) -> Dict[str, Any]:
    """A run of digits on two devices, four variants each, with accuracy; one stalled sample."""
    results = []
    for d, slow in zip(devices, (1.0, 3.1)):
        for i, (v, size, ms, top1, agree) in enumerate((
                ("fp32", 69_000, 2.0, 0.970, 1.0), ("fp16", 36_000, 1.95, 0.970, 1.0),
                ("dynamic-int8", 22_000, 1.3, 0.968, 0.995), ("int8", 24_000, 0.7, 0.955, 0.98))):
            r = make_result(v, 1, ms * slow, seed=i + 10 * len(results), device=d)
            r.update(model_bytes=size, accuracy={"top1": top1, "top1_ref": 0.970,
                                                 "agreement_vs_ref": agree, "max_abs_err": 0.01})
            results.append(r)
    results[0]["samples_ms"][5] = 200.0  # one stall: CoV explodes, IQR/median does not
    return {"schema": "edge-bench/run/1", "run_id": "r-1", "label": "two devices",
            "started_at": "2026-12-01T02:00:00+00:00",
            "argv": ["edge-bench", "run", "--devices", "local,pi4", "--label", "two devices"],
            "results": results}


def test_report_command_line_spread_and_axis_labels(db: Path) -> None:
    from edge_bench.render.html import iqr_over_median
    from edge_bench.render.svg import trend_svg
    doc = run_doc()
    html = render_html(doc, {})
    assert "edge-bench edge-bench" not in html
    assert "command: <code>edge-bench run --devices local,pi4 --label &#x27;two devices&#x27;</code>" in html
    old = render_html(Store(db).get_run("last"), {})  # stored argv without the program name
    assert "command: <code>edge-bench run --label nightly-2024-05-06</code>" in old
    s = doc["results"][0]["samples_ms"]
    cov = float(np.std(s) / np.mean(s))
    assert cov > 0.5 and iqr_over_median(s) < 0.2  # one stall of 100x the median
    assert "IQR/med" in html
    # a trend whose medians differ in the third decimal: every y label different
    rows = [{"run_id": f"r{i}", "label": None, "started_at": "", "status": "ok",
             "median_ms": 0.176 + 0.002 * i, "ci_lo": 0.175 + 0.002 * i, "ci_hi": 0.178 + 0.002 * i}
            for i in range(6)]
    svg = trend_svg(("local", "m", "fp32", 1), rows, "r5")
    labels = re.findall(r'class="tick" text-anchor="end">([^<]+)<', svg)
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels


def test_tradeoff_chart_marks_the_pareto_front() -> None:
    from edge_bench.render.tradeoff import pareto, tradeoff_svg
    assert pareto([(69, 2.0), (36, 1.95), (22, 1.3), (24, 0.7)]) == [2, 3]
    rs = [r for r in run_doc()["results"] if r["device"] == "local"]
    svg = tradeoff_svg(rs, "local · digits")
    assert svg.count('class="ring"') == 2  # dynamic-int8 (smallest) and int8 (fastest)
    assert "fp32 (reference)" in svg and svg.count('class="ref"') == 2
    assert "top-1 -1.5 pts" in svg and "top-1 +0.0 pts" in svg
    assert re.search(r'<path d="M[^"]+" class="front"/>', svg)
    # a variant with wrong outputs: a cross, never on the front, even when smallest and fastest
    bad = dict(rs[3], model_bytes=10_000, accuracy=dict(rs[3]["accuracy"], flag="agreement 10%"))
    bad["latency_ms"] = dict(bad["latency_ms"], median=0.1)
    svg = tradeoff_svg(rs[:3] + [bad], "x")
    assert 'class="wrong"' in svg and "WRONG OUTPUT" in svg and svg.count('class="ring"') == 1


def test_report_renders_in_headless_chromium(db: Path, tmp_path: Path) -> None:
    from browser import inked, render
    from edge_bench.results.document import write_json
    write_json(run_doc(), tmp_path / "run.json")
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "run.json"), "--html", str(out), "--db", str(db)]) == 0
    page = render(out, tmp_path, 1280, 2400)
    assert not page.script_errors(), page.script_errors()
    # the SVGs were parsed as SVG and have content: trade-off fronts, violins, device bars
    assert page.dom.count('class="plot tradeoff"') == 2 and page.dom.count('class="plot devices"') == 1
    fronts = re.findall(r'<path d="(M[^"]+)" class="front">', page.dom)
    assert len(fronts) == 2 and all(d.count("L") >= 2 for d in fronts)
    assert len(re.findall(r'<polygon points="[\d.,\s]{40,}"', page.dom)) >= 8  # violins
    assert page.dom.count('<rect x="') >= 8  # one bar per device and variant
    assert inked(page.png) > 0.03, "screenshot looks blank"
    dest = os.environ.get("EDGE_BENCH_SCREENSHOTS")
    if dest:
        shutil.copy(page.png, Path(dest) / "report.png")
