"""No silent no-ops: a variant whose file did not change as its recipe implies is an error.

ai-edge-quantizer returns a model unchanged when it does not recognise its ops (measured on
fp16-stored and old-converter files: "1.0x smaller", the same file under another name). Every
variant the quantizer writes, and every pt2e-* variant of a PyTorch model, is checked against
the float file it was made from:

- the same bytes: nothing was quantized;
- no size change (not smaller): every recipe here stores weights in fewer bits;
- the weight type the recipe makes is absent: fp16 must leave FLOAT16 constants, the int8
  recipes INT8 constants, weight-int4 INT4 (or INT8-packed) constants;
- the static recipes (int8, int16x8) must leave integer activations (QUANTIZE ops / quantized
  non-constant tensors).
"""
from __future__ import annotations

from typing import Dict, Optional, Set

from ..errors import ModelError
from . import repair as rep

#: constant tensor types a variant's recipe must leave in the file (any one of them)
_WEIGHT_TYPES: Dict[str, Set[str]] = {
    "fp16": {"FLOAT16"},
    "dynamic-int8": {"INT8"},
    "int8": {"INT8"},
    "int16x8": {"INT8"},
    "weight-int8": {"INT8"},
    "weight-int4": {"INT4", "INT8"},
}
_STATIC = {"int8": "INT8", "int16x8": "INT16"}


def _types(data: bytes):
    from ai_edge_litert import schema_py_generated as schema
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = rep.load(data)
    consts: Set[str] = set()
    acts: Set[str] = set()
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            buf = model.buffers[t.buffer] if 0 < t.buffer < len(model.buffers) else None
            if buf is not None and buf.data is not None and len(buf.data):
                consts.add(names.get(t.type, str(t.type)))
            elif t.quantization is not None and t.quantization.scale is not None \
                    and len(t.quantization.scale):
                acts.add(names.get(t.type, str(t.type)))
    return consts, acts


def check_changed(variant: str, model_name: str, before: bytes, after: bytes,
                  shown: Optional[str] = None, smaller: bool = True) -> None:
    """ModelError naming why, when `after` is not what `variant`'s recipe makes of `before`.
    `shown`: the variant's name in the message when it differs from its recipe (pt2e-int8).
    `smaller=False` drops the size rule: PT2E's files carry quantize/dequantize parameters per
    tensor, and a model of a few KB grows (3,664 -> 5,000 bytes with int8 weights); the weight
    and activation types still decide."""
    if variant not in _WEIGHT_TYPES:
        return
    what = f"variant {shown or variant} of {model_name}"
    hint = "the quantizer recognised none of the model's ops; see docs/real-models.md"
    if after == before:
        raise ModelError(f"{what}: the quantizer returned the model unchanged (same bytes)",
                         hint=hint)
    if smaller and len(after) >= len(before):
        raise ModelError(f"{what}: no size change ({len(before):,} -> {len(after):,} bytes), "
                         f"so no weight was quantized", hint=hint)
    consts, acts = _types(after)
    want = _WEIGHT_TYPES[variant]
    if not consts & want:
        raise ModelError(f"{what}: no {'/'.join(sorted(want))} weights in the output "
                         f"(constant types: {', '.join(sorted(consts)) or 'none'})", hint=hint)
    if variant in _STATIC and _STATIC[variant] not in acts:
        raise ModelError(f"{what}: no {_STATIC[variant]} activations in the output "
                         f"(quantized activation types: {', '.join(sorted(acts)) or 'none'})",
                         hint=hint)
