"""Options for data from ordinary files and for int8-mixed, one text for `run`, `quantize` and
`explain` (the rules: models/imagedata.py, models/mixed.py)."""
from __future__ import annotations

from typing import Any

from ..models.mixed import DEFAULT_TARGET_DB


def add_image_options(p: Any) -> None:
    """--input-range / --mean / --std: how a folder of images is normalized."""
    p.add_argument("--input-range", default=None, metavar="A,B",
                   help="a folder of images (--calibration/--eval DIR): map pixels 0..255"
                        " onto [A, B], e.g. 0,1 or -1,1 (default: the model's TFLite metadata)")
    p.add_argument("--mean", default=None, metavar="M[,M,M]",
                   help="a folder of images: (pixel - mean) / std on 0..255, per channel")
    p.add_argument("--std", default=None, metavar="S[,S,S]",
                   help="a folder of images: see --mean")


def add_accuracy_target(p: Any) -> None:
    p.add_argument("--accuracy-target", type=float, default=None, metavar="DB",
                   help="int8-mixed: keep ops in float until the output SNR vs fp32 reaches"
                        f" DB (default: {DEFAULT_TARGET_DB:g})")
