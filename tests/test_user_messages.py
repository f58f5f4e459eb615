"""Messages name the model the way the user named it (a path or builtin:NAME), never a file
edge-bench made (a cache blob on the device, a derived baseline, a quantized variant in the
cache); a warning is said once per run as one line (issue 23, item 2)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

import corpus
from test_run_local import edge_bench

BLOB = re.compile(r"[0-9a-f]{24,64}(-r\d+)?\.tflite|blobs/|edge-bench/baseline")


@pytest.fixture(scope="module")
def models() -> Dict[str, Path]:
    return corpus.fetch_or_skip()


def test_random_calibration_warning_is_one_line_once_per_run(tmp_path: Path) -> None:
    """Two models x two static variants calibrated on random data: one warning line, not a
    Python warning with its source line per model and variant."""
    p = edge_bench(["run", "--no-store", "--model", "builtin:digits", "--model",
                    "builtin:mobilenet", "--variants", "int8,int16x8", "--calibration", "random",
                    "--runs", "2", "--warmup", "0", "--min-seconds", "0", "--processes", "1"],
                   tmp_path)
    err = p.stderr
    assert "CalibrationWarning" not in err and "load_calibration(" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if "calibration data is RANDOM" in ln]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("edge-bench: warning: ")


def test_device_errors_name_the_users_file(models: Dict[str, Path], tmp_path: Path) -> None:
    """A model the device's LiteRT cannot load (a custom op): the error names the file the
    user passed, for the file as given and for its derived fp32 baseline."""
    given = models["mediapipe/face_landmark_with_attention.tflite"]
    out = tmp_path / "out.json"
    edge_bench(["run", "--no-store", "--model", str(given), "--variants", "given,fp32",
                "--runs", "2", "--warmup", "0", "--min-seconds", "0", "--processes", "1",
                "--json", str(out)], tmp_path)
    res = {r["variant"]: r for r in json.loads(out.read_text())["results"]}
    for v in ("given", "fp32"):
        err = res[v]["error"]
        assert res[v]["status"] == "error" and "Landmarks2TransformMatrix" in err, err
        assert str(given) in err and not BLOB.search(err), err
    assert "(derived fp32)" in res["fp32"]["error"]


def test_user_text_renames_every_file_edge_bench_made(tmp_path: Path) -> None:
    """Unit test of Artifact.user_text: the derived baseline, the variant in the quantization
    cache and its blob on a device, with or without a directory before them."""
    from edge_bench.fleet.plan import Artifact, ModelSpec
    given = tmp_path / "my model.tflite"
    base = tmp_path / "baseline" / ("ab" * 12 + "-r1.tflite")
    q = tmp_path / "q" / "int8-1234.tflite"
    spec = ModelSpec(name="models/my model.tflite", path=base, given=given)
    art = Artifact(model=spec, variant="int8", path=q, sha256="cd" * 32)
    text = (f"variant int8 of {base.name} failed; {base} and {q} and "
            f"/home/pi/.cache/edge-bench/blobs/{'cd' * 32}.tflite: bad")
    got = art.user_text(text)
    assert got == ("variant int8 of models/my model.tflite (derived fp32) failed; "
                   "models/my model.tflite (derived fp32) and models/my model.tflite (int8) and "
                   "models/my model.tflite (int8): bad"), got
    assert art.user_text("my model.tflite: fine") == "my model.tflite: fine"


def test_other_warnings_stay_where_they_were_shown(tmp_path: Path) -> None:
    """calibration_warnings, in a fresh process (pytest records warnings itself): a library's
    own warning raised inside a quiet() capture stays in that capture (not re-shown on the
    terminal afterwards); the calibration warning is said once through `note`."""
    script = """
import warnings
from edge_bench.app.run import calibration_warnings
from edge_bench.models.quantize import CalibrationWarning
from edge_bench.quiet import quiet
notes, said = [], []
with calibration_warnings(notes.append, said):
    for _ in range(3):
        with quiet("a library"):
            warnings.warn("invalid value encountered in cast", RuntimeWarning)
        warnings.warn("calibration data is RANDOM", CalibrationWarning)
with calibration_warnings(notes.append, said):
    warnings.warn("calibration data is RANDOM", CalibrationWarning)
print(notes)
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "invalid value" not in p.stderr and "RANDOM" not in p.stderr, p.stderr
    assert p.stdout.strip() == "['edge-bench: warning: calibration data is RANDOM']", p.stdout
