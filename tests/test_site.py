"""`edge-bench report --site DIR`: the history site from a real store, read as files and as
Chromium renders it."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

from browser import inked, render
from synth import fake_result
from edge_bench.cli import main
from edge_bench.results.store import Store

KEYS = [("local", "builtin:digits", "fp32"), ("local", "builtin:digits", "int8"),
        ("pi4", "/models/vendor/mobilenet_v2.tflite", "fp32"),
        ("pi4", "/models/vendor/mobilenet_v2.tflite", "int8")]
NIGHTS = 12


def result(rng: np.random.Generator, key: Any, night: int) -> Dict[str, Any]:
    device, model, variant = key
    level = (2.0 if variant == "fp32" else 1.2) * (3 if device == "pi4" else 1)
    if key == KEYS[3] and night == NIGHTS - 1:
        level *= 1.25  # the last night: a real slowdown of one key
    s = np.concatenate([level * np.exp(rng.normal(0, 0.02, 120)) for _ in range(3)])
    return fake_result(s, device=device, model=model, variant=variant, processes=3,
                       process_runs=[120, 120, 120],
                       runtime={"name": "ai-edge-litert", "version": "2.3.0" if night < 6 else "2.4.0",
                                "xnnpack": True},
                       quantizer=None if variant == "fp32" else "ai-edge-quantizer",
                       quantizer_version=None if variant == "fp32" else "0.10.0")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    tmp = tmp_path_factory.mktemp("site")
    db = tmp / "r.sqlite"
    rng = np.random.default_rng(7)
    with Store(db) as st:
        for night in range(NIGHTS):
            rid = st.begin_run({"run_id": f"run-{night:02d}", "label": f"nightly-{night + 1:02d}",
                                "started_at": f"2026-03-{night + 1:02d}T02:00:00+00:00",
                                "argv": ["edge-bench", "run", "--label", f"<b>nightly-{night}"]})
            for k in KEYS:
                st.add_result(rid, result(rng, k, night))
            if night == 4:
                st.add_result(rid, {"device": "pi4", "model": "builtin:digits", "variant": "fp32",
                                    "threads": 1, "status": "error", "error": "Segfault <core>",
                                    "samples_ms": []})
            st.finish_run(rid, "ok")
    out = tmp / "public"
    assert main(["report", "--site", str(out), "--db", str(db), "--verdicts", "3"]) == 0
    return {"tmp": tmp, "db": db, "out": out}


def links(page: Path) -> List[str]:
    return re.findall(r'(?:href|src)="([^"]*)"', page.read_text())


def test_site_is_complete_self_contained_and_linked(site: Dict[str, Any]) -> None:
    out: Path = site["out"]
    pages = sorted(out.rglob("*.html"))
    keys, runs = list((out / "keys").glob("*.html")), list((out / "runs").glob("*.html"))
    assert len(keys) == len(KEYS) + 1 and len(runs) == NIGHTS
    for p in pages:
        text = p.read_text()
        assert "<script" not in text.lower() and "@import" not in text
        for href in links(p):  # every link is relative and lands on a file of the site
            assert not re.match(r"^(https?:|//|/)", href), (p, href)
            assert (p.parent / href).resolve().is_file(), (p, href)
        # user text is escaped: the label with markup and the error message
        assert "<b>nightly" not in text and "Segfault <core>" not in text
    index = (out / "index.html").read_text()
    assert index.count("<tr>") == (len(KEYS) + 1) + NIGHTS + 2  # keys, runs, 2 header rows
    assert "mobilenet_v2" in index and "/models/vendor/" not in index.split("<table>")[1].split(
        "</table>")[0].replace('title="/models/vendor/mobilenet_v2.tflite"', "")
    assert index.count('class="spark"') == len(KEYS)  # the key that only failed has no trend


def test_verdicts_and_environment_changes(site: Dict[str, Any]) -> None:
    out: Path = site["out"]
    slow = next(p for p in (out / "keys").glob("*.html")
                if "mobilenet_v2.tflite-int8" in p.name).read_text()
    # compare's verdict of the last night vs the one before, on the plot and in the table
    assert '<span class="v bad"' in slow and ">slower<" in slow
    assert re.search(r'<circle [^>]*class="bad"', slow)
    assert "runtime ai-edge-litert 2.3.0 → ai-edge-litert 2.4.0" in slow
    calm = next(p for p in (out / "keys").glob("*.html") if "digits-fp32" in p.name
                and "local" in p.name).read_text()
    assert ">slower<" not in calm and ">same<" in calm
    cache = json.loads((out / "verdicts.json").read_text())
    assert len(cache["pairs"]) == 3 * len(KEYS)  # --verdicts 3, the failed key has one run
    # a rebuild judges nothing again; one more night judges only the new pairs
    assert main(["report", "--site", str(out), "--db", str(site["db"])]) == 0
    assert json.loads((out / "verdicts.json").read_text())["pairs"] == cache["pairs"]


def test_site_renders_in_chromium_with_plots(site: Dict[str, Any], tmp_path: Path) -> None:
    out: Path = site["out"]
    idx = render(out / "index.html", tmp_path, 1280, 900)
    assert not idx.script_errors(), idx.script_errors()
    sparks = [d for d in idx.svg_paths() if d.startswith("M")]
    assert len(sparks) == len(KEYS) and all(d.count("L") >= NIGHTS - 2 for d in sparks)
    assert inked(idx.png) > 0.03
    key = next(p for p in (out / "keys").glob("*.html") if "mobilenet_v2.tflite-int8" in p.name)
    page = render(key, tmp_path, 1280, 900)
    assert not page.script_errors()
    # median line and interval band with one vertex per run
    assert sum(1 for d in page.svg_paths() if d.count("L") >= NIGHTS - 1) >= 2
    assert inked(page.png) > 0.03
    dest = os.environ.get("EDGE_BENCH_SCREENSHOTS")
    if dest:
        shutil.copy(idx.png, Path(dest) / "site-index.png")
        shutil.copy(page.png, Path(dest) / "site-key.png")


def test_site_usage_errors(site: Dict[str, Any], tmp_path: Path) -> None:
    assert main(["report", "--site", str(tmp_path / "x"), "last", "--db", str(site["db"])]) == 2
    assert main(["report", "--site", str(tmp_path / "x"), "--db", str(tmp_path / "none.sqlite")]) == 2
    assert main(["report", "--db", str(site["db"])]) == 2
