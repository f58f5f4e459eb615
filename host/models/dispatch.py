"""Which quantizer makes a variant: ai-edge-quantizer (quantize.py, any float .tflite) or
TensorFlow's TFLiteConverter (tf_convert.py, Keras/SavedModel sources).

The one place that knows both; neither quantizer imports the other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ..errors import UsageError
from . import tf_convert
from .quantize import cached_variant, check_tflite, quantize_model
from .variants import QuantizeResult

QUANTIZERS: Tuple[str, ...] = ("ai-edge-quantizer", tf_convert.QUANTIZER)
DEFAULT_QUANTIZER = QUANTIZERS[0]


def parse_quantizer(name: Optional[str]) -> str:
    q = (name or DEFAULT_QUANTIZER).strip().lower()
    if q not in QUANTIZERS:
        raise UsageError(f"unknown quantizer {name!r}", hint="valid: " + ", ".join(QUANTIZERS))
    return q


def float_model(path: Union[str, Path]) -> Tuple[Path, Optional[Path]]:
    """(float .tflite, Keras/SavedModel source or None). A Keras file (.keras/.h5) or SavedModel
    folder is converted to fp32 by TFLiteConverter (cached; needs the [tf] extra)."""
    p = Path(path).expanduser()
    if tf_convert.is_tf_model(p):
        return Path(tf_convert.cached_convert(p, "fp32").path), p
    return check_tflite(p), None


def check_quantizer(quantizer: str, source: Optional[Path], model_name: str) -> str:
    """UsageError when `quantizer` cannot work on this model (the converter needs Keras/SavedModel)."""
    quantizer = parse_quantizer(quantizer)
    if quantizer == tf_convert.QUANTIZER and source is None:
        raise UsageError(f"--quantizer tflite-converter converts Keras/SavedModel models; "
                         f"{model_name} is a .tflite",
                         hint="give a .keras/.h5 file or a SavedModel folder, or use "
                              "--quantizer ai-edge-quantizer")
    return quantizer


def make_variant(model_path: Union[str, Path], variant: str,
                 out_path: Union[None, str, Path] = None,
                 calibration: Union[None, str, Path, Dict[str, np.ndarray]] = None, *,
                 quantizer: str = DEFAULT_QUANTIZER, source: Union[None, str, Path] = None,
                 cache_dir: Union[None, str, Path] = None,
                 signature: Optional[str] = None) -> QuantizeResult:
    """One variant made by `quantizer`: cached when `out_path` is None, else written there.
    `signature`: the SignatureDef ai-edge-quantizer calibrates through (None: the default).

    `model_path` is the float .tflite; `source` the Keras/SavedModel it came from (required by
    tflite-converter, whose fp32 is `model_path` itself)."""
    quantizer = parse_quantizer(quantizer)
    if quantizer == DEFAULT_QUANTIZER or variant == "fp32":
        res = (cached_variant(model_path, variant, calibration, cache_dir, signature)
               if out_path is None
               else quantize_model(model_path, variant, out_path, calibration, signature))
        if source is not None and res.variant == "fp32":  # made by TFLiteConverter from source
            res = res._replace(
                recipe_description=f"{tf_convert.RECIPES['fp32']}, from {Path(source).name}")
        return res
    check_quantizer(quantizer, None if source is None else Path(source), Path(model_path).name)
    if out_path is None:
        return tf_convert.cached_convert(source, variant, calibration, cache_dir,
                                         float_model=model_path)
    return tf_convert.convert(source, variant, out_path, calibration, float_model=model_path)
