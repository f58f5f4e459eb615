"""`edge-bench explain` (host/models/explain.py) and the int8-mixed variant (host/models/mixed.py)
on real models: builtin:digits, and a real face landmark model whose int8 output collapses."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Dict

import pytest

import corpus
from photos import photo_folder
from test_run_local import edge_bench

FACE = "mediapipe/face_landmark.tflite"


@pytest.fixture(scope="module")
def models() -> Dict[str, Path]:
    return corpus.fetch_or_skip()


def test_explain_lists_the_ops_that_lose_the_most(tmp_path: Path) -> None:
    p = edge_bench(["explain", "builtin:digits", "--variant", "int8", "--json", "-"], tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == "edge-bench/explain/1" and doc["variant"] == "int8"
    ops = doc["ops"]
    assert doc["ops_compared"] == doc["ops_total"] == len(ops) >= 3
    assert {"index", "op", "output", "snr_db", "loss_db", "grid_db"} <= set(ops[0])
    assert [o["loss_db"] for o in ops] == sorted((o["loss_db"] for o in ops), reverse=True)
    assert "FULLY_CONNECTED" in {o["op"] for o in ops}
    assert all(o["snr_db"] is not None and o["snr_db"] < 120 for o in ops)  # int8 is not exact
    table = edge_bench(["explain", "builtin:digits", "--variant", "int8", "--top", "2"], tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    rows = [line for line in lines if line[:4].strip().isdigit()]
    assert len(rows) == 2 and str(ops[0]["index"]) == rows[0].split()[0]


def _worst_outputs(model: Path, ref_model: Path, data) -> float:
    from edge_bench.models.accuracy import per_output, run_model
    return min(o["snr_db"] for o in per_output(run_model(model, data), run_model(ref_model, data)))


def test_int8_mixed_recovers_a_collapsed_output_with_few_float_ops(models: Dict[str, Path],
                                                                    tmp_path: Path) -> None:
    """The face landmark model's face-flag output collapses in int8 (its calibrated range is
    wrong); int8-mixed keeps the op that makes it in float and reaches the target on photos
    it was not calibrated on, at most 0.5x the fp32 size."""
    from edge_bench.models.accuracy import COLLAPSE_SNR_DB
    from edge_bench.models.baseline import float_baseline
    from edge_bench.models.imagedata import ImageOptions, load_images
    from edge_bench.models.mixed import DEFAULT_TARGET_DB
    from edge_bench.models.modelinfo import model_inputs
    from edge_bench.models.quantize import quantize_model
    given = models[FACE]
    fp32 = float_baseline(given).path
    detail = model_inputs(fp32)[0].detail
    cal_dir = photo_folder(tmp_path / "cal", faces=10, every=2, start=0)
    ev_dir = photo_folder(tmp_path / "eval", faces=10, every=2, start=1)
    cal, _, _ = load_images(cal_dir, detail, given.read_bytes(), ImageOptions(), "cal")
    ev, _, _ = load_images(ev_dir, detail, given.read_bytes(), ImageOptions(), "eval")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = quantize_model(fp32, "int8", tmp_path / "int8.tflite", {detail["name"]: cal})
        mixed = quantize_model(fp32, "int8-mixed", tmp_path / "mixed.tflite",
                               {detail["name"]: cal})
    assert _worst_outputs(int8.path, fp32, {"x": ev}) < COLLAPSE_SNR_DB      # the premise
    assert _worst_outputs(mixed.path, fp32, {"x": ev}) >= DEFAULT_TARGET_DB
    rec = mixed.recipe
    assert rec["reached"] and 1 <= len(rec["float_ops"]) <= 3
    assert mixed.bytes <= 0.5 * fp32.stat().st_size
    assert f"#{rec['float_ops'][0]['index']} {rec['float_ops'][0]['op']}" in \
        mixed.recipe_description and "kept float" in mixed.recipe_description


def test_int8_mixed_is_timed_on_the_device_and_explained(models: Dict[str, Path],
                                                         tmp_path: Path) -> None:
    cal_dir = photo_folder(tmp_path / "cal", faces=10, every=2, start=0)
    ev_dir = photo_folder(tmp_path / "eval", faces=10, every=2, start=1)
    out = tmp_path / "out.json"
    p = edge_bench(["run", "--model", str(models[FACE]), "--variants", "fp32,int8,int8-mixed",
                    "--calibration", str(cal_dir), "--eval", str(ev_dir),
                    "--runs", "3", "--warmup", "0",
                    "--min-seconds", "0", "--processes", "1", "--no-store", "--json", str(out)],
                   tmp_path)
    rows = {r["variant"]: r for r in json.loads(out.read_text())["results"]}
    mixed, int8 = rows["int8-mixed"], rows["int8"]
    assert mixed["status"] == "ok" and mixed["latency_ms"]["median"] > 0, p.stderr
    assert mixed["accuracy"]["flag"] is None and "kept float" in mixed["recipe"]
    # images without labels are scored like derived inputs: a collapsed output is flagged
    assert mixed["accuracy"]["eval_source"] == f"images in {ev_dir}"
    assert "floor" in (int8["accuracy"]["flag"] or "")
    assert mixed["model_bytes"] <= 0.5 * rows["fp32"]["model_bytes"]

    def worst(r):
        return min(o["snr_db"] for o in r["accuracy"]["outputs"])
    assert worst(mixed) > worst(int8)
    # explain names the op int8-mixed kept float among the ops int8 loses most on
    e = edge_bench(["explain", str(models[FACE]), "--variant", "int8-mixed", "--calibration",
                    str(cal_dir), "--json", "-"], tmp_path)
    assert e.returncode == 0, e.stderr
    doc = json.loads(e.stdout)
    kept = {f["index"] for f in doc["mixed"]["float_ops"]}
    assert kept and all(o["grid_db"] is None or o["grid_db"] >= 100
                        for o in doc["ops"] if o["index"] in kept)   # float: no int8 grid
