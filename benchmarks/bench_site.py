"""History site build time and size for a year of nightly runs: 365 runs x 50 keys.

Fills a fresh SQLite store through the store's own API (Store.begin_run / add_result /
finish_run) with synthetic but realistic results: 5 devices x 5 models x 2 variants, 300 raw
samples per result from 3 worker processes (log-normal, 3% spread, a slow tail), a run-to-run
drift of about 1%, a runtime upgrade on night 120 (3% faster), a quantizer upgrade on night 180
(int8 only), a 12% slowdown of three keys from night 200 to 260, an agent upgrade on night 300,
and a failed result now and then. Then builds the site twice with `edge-bench report --site`'s
code: the first build (no verdict cache: compare judges the newest pair of every key) and a
rebuild after one more night (one new pair per key). Reports wall time, pages and bytes.

    python benchmarks/bench_site.py [--runs 365] [--keys 50] [--write-docs]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from edge_bench.analysis.stats import summarize
from edge_bench.app.site import build_site
from edge_bench.results.store import Store

DEVICES = ["local", "pi4", "pi5", "jetson-orin", "pixel7"]
MODELS = ["builtin:digits", "/models/mobilenet_v2.tflite", "/models/face_detection_short.tflite",
          "/models/yamnet.tflite", "/models/efficientdet_lite0.tflite"]
VARIANTS = ["fp32", "int8"]


def keys(n: int) -> List[Tuple[str, str, str, int]]:
    out = [(d, m, v, 1) for d in DEVICES for m in MODELS for v in VARIANTS]
    return out[:n]


def result(rng: np.random.Generator, key: Tuple[str, str, str, int], night: int,
           base_ms: float) -> Dict[str, Any]:
    device, model, variant, threads = key
    level = base_ms * math.exp(rng.normal(0, 0.01))
    if night >= 120:
        level *= 0.97
    if 200 <= night < 260 and (device, variant) in (("pi4", "int8"), ("pixel7", "fp32")) \
            and model == MODELS[1]:
        level *= 1.12
    r: Dict[str, Any] = {
        "device": device, "model": model, "variant": variant, "threads": threads,
        "runtime": {"name": "ai-edge-litert", "version": "2.3.0" if night < 120 else "2.4.0",
                    "xnnpack": True, "threads": threads},
        "agent_version": "0.1.0" if night < 300 else "0.2.0",
        "quantizer": None if variant == "fp32" else "ai-edge-quantizer",
        "quantizer_version": None if variant == "fp32" else ("0.10.0" if night < 180 else "0.11.0"),
        "model_sha256": f"{abs(hash((model, variant))) % (1 << 64):016x}" * 4,
        "model_bytes": int(base_ms * 300_000) // (4 if variant == "int8" else 1),
        "device_info": {"arch": "aarch64", "cpu": device, "governor": "performance"},
        "warmup": 5, "processes": 3, "process_runs": [100, 100, 100],
        "accuracy": None, "recipe": None,
    }
    if rng.random() < 0.003:
        r.update(status="error", error="Segmentation fault (core dumped)", samples_ms=[],
                 latency_ms=summarize([]), runs=0)
        return r
    s = np.concatenate([level * math.exp(rng.normal(0, 0.004)) * np.exp(rng.normal(0, 0.03, 100))
                        for _ in range(3)])
    s[rng.random(s.size) < 0.02] *= 1.6
    srt = np.sort(s)
    half = 1.96 * math.sqrt(s.size) / 2
    lo, hi = srt[int(s.size / 2 - half)], srt[min(s.size - 1, int(s.size / 2 + half))]
    r.update(status="ok", error=None, samples_ms=s.tolist(), latency_ms=summarize(s.tolist()),
             runs=int(s.size), median_ci_ms=[float(lo), float(hi)])
    return r


def fill(store: Store, runs: int, n_keys: int, seed: int = 1, start: int = 0) -> None:
    rng = np.random.default_rng(seed + start)
    ks = keys(n_keys)
    base = {k: 0.5 * (1 + i % 7) * (0.4 if k[2] == "int8" else 1.0) for i, k in enumerate(ks)}
    day0 = datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc)
    for night in range(start, start + runs):
        when = day0 + timedelta(days=night)
        rid = store.begin_run({"run_id": f"{when:%Y%m%dT%H%M%SZ}-{night:06x}",
                               "label": f"nightly-{when:%Y-%m-%d}",
                               "started_at": when.isoformat(timespec="seconds"),
                               "host": {"edge_bench": "0.1.0"},
                               "argv": ["edge-bench", "run", "--label", f"nightly-{when:%Y-%m-%d}"]})
        for k in ks:
            store.add_result(rid, result(rng, k, night, base[k]))
        store.finish_run(rid, "ok")


def du(path: Path) -> Tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=365)
    ap.add_argument("--keys", type=int, default=50)
    ap.add_argument("--write-docs", action="store_true", help="append to docs/benchmarks.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, site = Path(tmp) / "r.sqlite", Path(tmp) / "site"
        t = time.perf_counter()
        with Store(db) as st:
            fill(st, args.runs, args.keys)
        fill_s = time.perf_counter() - t
        with Store(db) as st:
            first = build_site(st, site)
        files, size = du(site)
        with Store(db) as st:
            fill(st, 1, args.keys, start=args.runs)
            again = build_site(st, site)
        files2, size2 = du(site)
        db_mb = db.stat().st_size / 1e6
    lines = [
        f"store: {args.runs} runs x {args.keys} keys = {args.runs * args.keys} results "
        f"(300 samples each), {db_mb:.0f} MB, filled in {fill_s:.0f} s",
        f"first build:  {first.seconds:.1f} s, {files} files, {size / 1e6:.1f} MB "
        f"({first.judged} pairs judged by compare, {first.cached} from the cache)",
        f"rebuild after one more night: {again.seconds:.1f} s, {files2} files, "
        f"{size2 / 1e6:.1f} MB ({again.judged} judged, {again.cached} cached)",
    ]
    print("\n".join(lines))
    if args.write_docs:
        doc = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
        with doc.open("a", encoding="utf-8") as f:
            f.write(f"\n## History site (`edge-bench report --site`), {date.today()}\n\n"
                    f"`python benchmarks/bench_site.py` on {platform.machine()}, "
                    f"{os.cpu_count()} cores, Python {platform.python_version()}:\n\n```\n"
                    + "\n".join(lines) + "\n```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
