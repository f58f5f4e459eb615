"""Which quantizer makes a variant: ai-edge-quantizer (quantize.py, any float .tflite),
TensorFlow's TFLiteConverter (tf_convert.py, Keras/SavedModel sources) or PyTorch's PT2E flow
through litert-torch (pytorch/convert.py, .pt2 / module:function sources; its variants are
named pt2e-int8, pt2e-dynamic-int8 so that both routes fit in one table).

The one place that knows both; neither quantizer imports the other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UsageError
from . import tf_convert
from .quantize import cached_variant, check_tflite, quantize_model
from .variants import QuantizeResult

PT2E = "pt2e"
PT2E_PREFIX = PT2E + "-"
QUANTIZERS: Tuple[str, ...] = ("ai-edge-quantizer", tf_convert.QUANTIZER, PT2E)
DEFAULT_QUANTIZER = QUANTIZERS[0]


def parse_quantizer(name: Optional[str]) -> str:
    q = (name or DEFAULT_QUANTIZER).strip().lower()
    if q not in QUANTIZERS:
        raise UsageError(f"unknown quantizer {name!r}", hint="valid: " + ", ".join(QUANTIZERS))
    return q


def parse_quantizers(text: Optional[str]) -> List[str]:
    """"ai-edge-quantizer,pt2e" -> both routes (one table). tflite-converter and
    ai-edge-quantizer name their variants alike, so they cannot share a run."""
    out: List[str] = []
    for part in (text or DEFAULT_QUANTIZER).split(","):
        if part.strip() and parse_quantizer(part) not in out:
            out.append(parse_quantizer(part))
    out = out or [DEFAULT_QUANTIZER]
    if len([q for q in out if q != PT2E]) > 1:
        raise UsageError(f"--quantizer {text}: ai-edge-quantizer and tflite-converter cannot "
                         f"run together (their variants have the same names)",
                         hint="run them one at a time; pt2e can join either")
    return out


def main_quantizer(quantizers: Sequence[str]) -> str:
    """The route that makes the plain-named variants (pt2e when it is the only one)."""
    return next((q for q in quantizers if q != PT2E), PT2E)


def route_variants(variants: Sequence[str], quantizers: Sequence[str]) -> List[str]:
    """The variant names a run makes: for pt2e, `pt2e-` + each variant (fp32 is shared by the
    routes: the same litert-torch conversion). Asked alone, pt2e keeps the ones it does not offer,
    so that they fail loudly; next to another route those are that route's."""
    from .pytorch.convert import SUPPORTED
    out: List[str] = []
    for q in quantizers:
        for v in variants:
            if q == PT2E and v != "fp32" and not v.startswith(PT2E_PREFIX):
                if v not in SUPPORTED and len(quantizers) > 1:
                    continue
                v = PT2E_PREFIX + v
            if v not in out:
                out.append(v)
    return out


def variant_quantizer(variant: str, default: Optional[str]) -> Optional[str]:
    """Who made `variant` (None for fp32): pt2e for `pt2e-*`, else the model's quantizer."""
    if variant == "fp32":
        return None
    return PT2E if variant.startswith(PT2E_PREFIX) else default


def float_model(path: Union[str, Path]) -> Tuple[Path, Any]:
    """(float .tflite, source or None). A Keras file (.keras/.h5) or SavedModel folder is
    converted to fp32 by TFLiteConverter (cached; needs the [tf] extra); a PyTorch model (.pt2,
    module:function, builtin:digits-torch) by litert-torch (cached; needs the [torch] extra),
    its source then the loaded pytorch.TorchModel."""
    from .pytorch import is_torch_model
    if is_torch_model(str(path)):
        from .pytorch.convert import torch_float_model
        return torch_float_model(str(path))
    p = Path(path).expanduser()
    if tf_convert.is_tf_model(p):
        return Path(tf_convert.cached_convert(p, "fp32").path), p
    return check_tflite(p), None


def check_quantizer(quantizer: str, source: Any, model_name: str) -> str:
    """UsageError when `quantizer` cannot work on this model (the converter needs Keras/SavedModel,
    pt2e a PyTorch model)."""
    quantizer = parse_quantizer(quantizer)
    from .pytorch import TorchModel
    if quantizer == PT2E and not isinstance(source, TorchModel):
        raise UsageError(f"--quantizer pt2e quantizes PyTorch models; {model_name} is not one",
                         hint="give a .pt2 file, a module:function factory or "
                              "builtin:digits-torch, or use --quantizer ai-edge-quantizer")
    if isinstance(source, TorchModel):
        source = None  # tflite-converter needs Keras/SavedModel
    if quantizer == tf_convert.QUANTIZER and source is None:
        raise UsageError(f"--quantizer tflite-converter converts Keras/SavedModel models; "
                         f"{model_name} is a .tflite",
                         hint="give a .keras/.h5 file or a SavedModel folder, or use "
                              "--quantizer ai-edge-quantizer")
    return quantizer


def make_variant(model_path: Union[str, Path], variant: str,
                 out_path: Union[None, str, Path] = None,
                 calibration: Union[None, str, Path, Dict[str, np.ndarray]] = None, *,
                 quantizer: str = DEFAULT_QUANTIZER, source: Any = None,
                 cache_dir: Union[None, str, Path] = None,
                 signature: Optional[str] = None,
                 accuracy_target: Optional[float] = None) -> QuantizeResult:
    """One variant made by `quantizer`: cached when `out_path` is None, else written there.

    `model_path` is the float .tflite; `source` the Keras/SavedModel it came from (required by
    tflite-converter, whose fp32 is `model_path` itself; the pytorch.TorchModel for pt2e, whose
    variants are `pt2e-*`). `signature`: the SignatureDef ai-edge-quantizer calibrates through
    (None: the default). `accuracy_target`: int8-mixed's output SNR target in dB (mixed.py)."""
    quantizer = parse_quantizer(quantizer)
    if variant.startswith(PT2E_PREFIX) or (quantizer == PT2E and variant != "fp32"):
        check_quantizer(PT2E, source, Path(model_path).name)
        from .pytorch import convert as pt2e
        if out_path is None:
            return pt2e.cached_convert(source, variant, calibration, cache_dir,
                                       float_model=model_path)
        return pt2e.convert(source, variant, out_path, calibration, float_model=model_path)
    if quantizer == DEFAULT_QUANTIZER or quantizer == PT2E or variant == "fp32":
        res = (cached_variant(model_path, variant, calibration, cache_dir, signature,
                              accuracy_target)
               if out_path is None
               else quantize_model(model_path, variant, out_path, calibration, signature,
                                   accuracy_target))
        if source is not None and res.variant == "fp32":  # converted from source
            from .pytorch import TorchModel
            if isinstance(source, TorchModel):
                from .pytorch.convert import RECIPES as PT_RECIPES
                desc = f"{PT_RECIPES['fp32']}, from {source.name}" + (
                    " (the QAT model without fake-quantize)" if source.qat is not None else "")
            else:
                desc = f"{tf_convert.RECIPES['fp32']}, from {Path(source).name}"
            res = res._replace(recipe_description=desc)
        return res
    check_quantizer(quantizer, None if source is None else Path(source), Path(model_path).name)
    if out_path is None:
        return tf_convert.cached_convert(source, variant, calibration, cache_dir,
                                         float_model=model_path)
    return tf_convert.convert(source, variant, out_path, calibration, float_model=model_path)
