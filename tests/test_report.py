"""`edge-bench report`: a self-contained HTML page that renders in headless Chromium, and CSV."""
from __future__ import annotations

import csv
import re
import shutil
import struct
import subprocess
import zlib
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
    assert text.count("<svg") == 2 + 9  # 2 distributions (digits, mobilenet) + 9 trend plots
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
    assert "no stored history" in text and text.count("<svg") == 2
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
    assert html.count("<svg") == 1


def _png_size_and_nonblank(path: Path) -> tuple:
    """(width, height, fraction of pixels that differ from the most common colour)."""
    try:
        from PIL import Image
    except ImportError:  # decode the PNG's filtered scanlines directly: blank pages filter to ~0
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        pos, idat, w = 8, b"", 0
        h = 0
        while pos < len(data):
            (ln,) = struct.unpack(">I", data[pos:pos + 4])
            typ = data[pos + 4:pos + 8]
            body = data[pos + 8:pos + 8 + ln]
            if typ == b"IHDR":
                w, h = struct.unpack(">II", body[:8])
            elif typ == b"IDAT":
                idat += body
            pos += 12 + ln
        raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8)
        return w, h, float(np.count_nonzero(raw)) / raw.size
    img = np.asarray(Image.open(path).convert("RGB"))
    flat = img.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    return img.shape[1], img.shape[0], 1.0 - counts.max() / flat.shape[0]


def test_report_renders_in_headless_chromium(db: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        pytest.skip("chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    out = tmp_path / "report.html"
    assert main(["report", "last", "--html", str(out), "--db", str(db)]) == 0
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--disable-sync", "--mute-audio",
           f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1280,2400",
           "--hide-scrollbars", f"--screenshot={shot}", out.as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert shot.exists(), f"no screenshot; chromium exited {p.returncode}: {p.stderr[-2000:]}"
    w, h, inked = _png_size_and_nonblank(shot)
    assert (w, h) == (1280, 2400)
    assert inked > 0.03, f"screenshot looks blank ({inked:.3%} non-background)"
    # keep a copy next to the test run for a human to look at
    shutil.copy(shot, tmp_path / "report-screenshot.png")
