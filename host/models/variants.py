"""The variant names every quantizer makes, and what a made variant is.

Shared by both quantizers (ai-edge-quantizer: quantize.py; TensorFlow's converter:
tf_convert.py), the dispatch between them (dispatch.py) and the commands.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..errors import UsageError, VariantSkipped

VARIANTS: Tuple[str, ...] = (
    "fp32", "fp16", "dynamic-int8", "int8", "int16x8", "weight-int8", "weight-int4")

#: `edge-bench run` only: the .tflite exactly as given (an fp16-stored or already-quantized file)
GIVEN = "given"
#: PyTorch's PT2E route (--quantizer pt2e; models/pytorch/convert.py), named apart
PT2E_VARIANTS: Tuple[str, ...] = ("pt2e-dynamic-int8", "pt2e-int8")
PT2E_STATIC = frozenset({"pt2e-int8"})  # calibrated through the PyTorch model

#: int8 with the fewest sensitive ops kept float (models/mixed.py); not part of `all`
MIXED_VARIANTS: Tuple[str, ...] = ("int8-mixed",)

#: variants whose recipe needs calibration data (static activation ranges)
STATIC_VARIANTS = frozenset({"int8", "int16x8", "int8-mixed"})


class QuantizeResult(NamedTuple):
    variant: str
    path: Path
    bytes: int
    sha256: str
    recipe_description: str
    cached: bool = False
    recipe: Optional[Dict[str, Any]] = None   # int8-mixed: its full recipe (mixed.MixedRecipe)


# ---- variants ----------------------------------------------------------------------------------
def parse_variants(spec: Union[str, Sequence[str]], allowed: Sequence[str] = VARIANTS
                   ) -> List[str]:
    """"fp32,int8" -> ["fp32", "int8"] (order kept, duplicates dropped). Unknown -> UsageError."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: List[str] = []
    for raw in items:
        v = raw.strip().lower()
        if not v:
            continue
        if v not in allowed and v not in PT2E_VARIANTS and v not in MIXED_VARIANTS:
            raise UsageError(f"unknown variant {raw.strip()!r}",
                             hint="valid: " + ", ".join(tuple(allowed) + MIXED_VARIANTS
                                                        + PT2E_VARIANTS))
        if v not in out:
            out.append(v)
    if not out:
        raise UsageError("no variant given", hint="valid: " + ", ".join(VARIANTS))
    return out


def needs_calibration(variant: str) -> VariantSkipped:
    """A deliberate skip (shown with its reason; a run does not fail on it)."""
    return VariantSkipped(variant, "it needs calibration data",
                          hint="pass --calibration FILE (.npz/.npy/folder of .npy) or "
                               "--calibration random (accuracy will be meaningless)")
