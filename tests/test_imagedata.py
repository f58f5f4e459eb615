"""--calibration DIR / --eval DIR with ordinary images (host/models/imagedata.py), on real photos
(tests/photos.py: scikit-image's bundled samples) and real models (tests/corpus.py)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

import corpus
from photos import photo_folder
from test_run_local import edge_bench

MP = "mediapipe/"


@pytest.fixture(scope="module")
def models() -> Dict[str, Path]:
    return corpus.fetch_or_skip()


def _input_detail(model: Path) -> Dict:
    from edge_bench.models.modelinfo import model_inputs
    return model_inputs(model)[0].detail


def test_normalization_is_read_from_the_models_metadata(models: Dict[str, Path]) -> None:
    from edge_bench.models.imagedata import metadata_normalization
    short = metadata_normalization(models[MP + "face_detection_short_range.tflite"].read_bytes())
    assert short is not None and short.mean == (127.5,) and short.std == (127.5,)
    hand = metadata_normalization(models[MP + "hand_landmark_lite.tflite"].read_bytes())
    assert hand is not None and hand.std == (255.0, 255.0, 255.0) and hand.mean == (0, 0, 0)
    assert metadata_normalization(models[MP + "hand_recrop.tflite"].read_bytes()) is None


def test_images_become_the_inputs_range_and_layout(models: Dict[str, Path],
                                                   tmp_path: Path) -> None:
    from edge_bench.models.imagedata import ImageOptions, load_images
    folder = photo_folder(tmp_path / "p")
    model = models[MP + "face_detection_short_range.tflite"]    # [1,128,128,3], [-1, 1]
    x, y, how = load_images(folder, _input_detail(model), model.read_bytes(), ImageOptions(),
                            "--calibration")
    assert x.shape == (len(list(folder.iterdir())), 128, 128, 3) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() < -0.9 and x.max() > 0.9
    assert y is None and "model metadata" in how
    # flags win over the metadata: [0, 1]
    x01, _, how = load_images(folder, _input_detail(model), model.read_bytes(),
                              ImageOptions(input_range="0,1"), "--calibration")
    assert x01.min() >= 0 and x01.max() <= 1 and "--input-range 0,1" in how
    assert np.allclose(x01 * 2 - 1, x, atol=1e-5)


def test_labels_from_class_folders_and_csv(tmp_path: Path) -> None:
    from edge_bench.models.builtin import resolve
    from edge_bench.models.imagedata import ImageOptions, load_images
    from edge_bench.errors import UsageError
    model = Path(resolve("builtin:mobilenet").path)
    photos = photo_folder(tmp_path / "all")
    files = sorted(photos.iterdir())
    by_class = tmp_path / "classes"
    for i, f in enumerate(files[:6]):
        d = by_class / ("dog" if i % 2 else "cat")
        d.mkdir(parents=True, exist_ok=True)
        (d / f.name).write_bytes(f.read_bytes())
    opts = ImageOptions(input_range="0,1")
    x, y, _ = load_images(by_class, _input_detail(model), model.read_bytes(), opts, "--eval")
    assert list(y) == [0, 0, 0, 1, 1, 1] and len(x) == 6      # cat = 0, dog = 1 (sorted names)
    with_csv = tmp_path / "csv"
    with_csv.mkdir()
    lines = ["file,label"]
    for i, f in enumerate(files[:4]):
        (with_csv / f.name).write_bytes(f.read_bytes())
        lines.append(f"{f.name},{i + 3}")
    (with_csv / "labels.csv").write_text("\n".join(lines) + "\n")
    _, y, _ = load_images(with_csv, _input_detail(model), model.read_bytes(), opts, "--eval")
    assert list(y) == [3, 4, 5, 6]
    (with_csv / "labels.csv").write_text("file,label\n" + f"{files[0].name},1\n")
    with pytest.raises(UsageError, match="no label for 3 image"):
        load_images(with_csv, _input_detail(model), model.read_bytes(), opts, "--eval")


def test_quantize_calibrates_from_a_folder_of_images(models: Dict[str, Path],
                                                     tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    model = models[MP + "face_detection_short_range.tflite"]
    p = edge_bench(["quantize", str(model), "--variants", "int8", "--calibration", str(folder),
                    "-o", str(tmp_path / "out")], tmp_path)
    assert p.returncode == 0, p.stderr + p.stdout
    assert f"samples from {folder}" in p.stderr and "normalized by model metadata" in p.stderr
    assert (tmp_path / "out" / "face_detection_short_range-int8.tflite").is_file()


def test_a_model_without_metadata_asks_for_the_range(models: Dict[str, Path],
                                                     tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    model = models[MP + "hand_recrop.tflite"]
    p = edge_bench(["quantize", str(model), "--variants", "int8", "--calibration", str(folder),
                    "-o", str(tmp_path / "out")], tmp_path)
    assert p.returncode == 2, p.stderr + p.stdout
    assert "Traceback" not in p.stderr and "--input-range" in p.stderr
    assert len(p.stderr.strip().splitlines()) <= 2
    bad = edge_bench(["quantize", str(model), "--variants", "int8", "--calibration", str(folder),
                      "--input-range", "1,0", "-o", str(tmp_path / "out")], tmp_path)
    assert bad.returncode == 2 and "--input-range 1,0" in bad.stderr


@pytest.mark.parametrize("name", [MP + "palm_detection_full.tflite", MP + "pose_detection.tflite"])
def test_real_images_calibrate_better_than_random(models: Dict[str, Path], name: str,
                                                   tmp_path: Path) -> None:
    """int8 calibrated from photos is closer to fp32 on other photos than int8 calibrated from
    random data (the output SNR the results table shows, all outputs together)."""
    from edge_bench.models.accuracy import run_model, score
    from edge_bench.models.baseline import float_baseline
    from edge_bench.models.imagedata import ImageOptions, load_images
    from edge_bench.models.quantize import CalibrationWarning, quantize_model
    cal_dir = photo_folder(tmp_path / "cal", faces=10, every=2, start=0)
    eval_dir = photo_folder(tmp_path / "eval", faces=10, every=2, start=1)
    given = models[name]
    fp32 = float_baseline(given).path
    detail = _input_detail(fp32)
    cal, _, _ = load_images(cal_dir, detail, given.read_bytes(), ImageOptions(), "cal")
    ev, _, _ = load_images(eval_dir, detail, given.read_bytes(), ImageOptions(), "eval")
    ref = run_model(fp32, {"x": ev})
    snr = {}
    for how, data in (("random", "random"), ("photos", {detail["name"]: cal})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            q = quantize_model(fp32, "int8", tmp_path / f"{how}.tflite", data)
        snr[how] = score(run_model(q.path, {"x": ev}), ref, unlabeled=True)["snr_db"]
    assert snr["photos"] > snr["random"], snr


def test_eval_folder_per_class_gives_top1_on_the_device(tmp_path: Path) -> None:
    """`run --eval DIR` with a folder per class: the device runs the images, top-1 is scored."""
    photos = sorted(photo_folder(tmp_path / "all").iterdir())
    ev = tmp_path / "eval"
    for i, f in enumerate(photos[:6]):
        d = ev / str(i % 2)                            # classes 0 and 1 by index
        d.mkdir(parents=True, exist_ok=True)
        (d / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "out.json"
    p = edge_bench(["run", "--model", "builtin:mobilenet", "--variants", "fp32", "--eval",
                    str(ev), "--input-range", "0,1", "--runs", "3", "--warmup", "0",
                    "--min-seconds", "0", "--processes", "1", "--no-store", "--json", str(out)],
                   tmp_path)
    assert p.returncode == 0, p.stderr + p.stdout
    (r,) = json.loads(out.read_text())["results"]
    assert r["status"] == "ok" and r["accuracy"]["samples"] == 6
    assert r["accuracy"]["top1"] is not None and r["accuracy"]["top1_ref"] is not None


def test_bad_images_and_non_image_models_are_one_line(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    p = edge_bench(["quantize", "builtin:digits", "--variants", "int8", "--calibration",
                    str(folder), "-o", str(tmp_path / "out")], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "image input" in p.stderr and "shape [1, 64]" in p.stderr
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    p = edge_bench(["quantize", "builtin:mobilenet", "--variants", "int8", "--calibration",
                    str(folder), "--input-range", "0,1", "-o", str(tmp_path / "out")], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"image {folder / 'broken.jpg'}: cannot be read" in p.stderr
