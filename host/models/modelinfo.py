"""What a .tflite file needs as input, read with the host's LiteRT interpreter.

`model_inputs()` is the host's ONE description of a model's inputs; it is built from
edge_bench_agent.tensors.model_inputs, the same function the agent uses on the device, so host
and agent name inputs (tensor name, signature name) alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from edge_bench_agent import tensors

from ..errors import ModelError

TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class InputSpec:
    """One model input. `name` is the SignatureDef name (what ai-edge-quantizer calibrates by),
    `tensor_name` the tensor's own name (often the same); `detail` the runtime's input detail
    (with "signature_name"), what edge_bench_agent.tensors works on."""
    name: str
    tensor_name: str
    shape: Tuple[int, ...]
    dtype: np.dtype
    index: int
    detail: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def scale(self) -> float:
        return float((self.detail.get("quantization") or (0.0, 0))[0])

    @property
    def zero_point(self) -> int:
        return int((self.detail.get("quantization") or (0.0, 0))[1])


def check_tflite(path: Union[str, Path]) -> Path:
    """Raise ModelError unless `path` is an existing TFLite flatbuffer ("TFL3" at bytes 4..8)."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file {p} does not exist")
    if not p.is_file():
        raise ModelError(f"model path {p} is not a file")
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelError(f"model file {p} cannot be read: {e.strerror or e}",
                         hint="check its permissions" if isinstance(e, PermissionError) else None
                         ) from e
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        what = "empty" if not head else f"starts with {head[:8]!r}"
        raise ModelError(f"{p} is not a TFLite model (no 'TFL3' flatbuffer identifier; file {what})",
                         hint="pass a .tflite file; Keras/SavedModel need the [tf] extra")
    return p


def interpreter(model_path: Union[str, Path], num_threads: Optional[int] = None,
                allocate: bool = True) -> Any:
    """A LiteRT interpreter of the model (tensors allocated unless `allocate` is false: reading
    the inputs needs no allocation, and allocating creates the XNNPACK delegate, which logs);
    ModelError otherwise."""
    from ai_edge_litert.interpreter import Interpreter

    from ..quiet import quiet
    try:
        with quiet("LiteRT"):  # "INFO: Created TensorFlow Lite XNNPACK delegate" goes to fd 2
            it = Interpreter(model_path=str(model_path), num_threads=num_threads)
            if allocate:
                it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"LiteRT cannot load {model_path}: {str(e).strip()}") from e
    return it


def inputs_of(it: Any, signature: Optional[str] = None) -> List[InputSpec]:
    """The inputs of a live interpreter (tensors.model_inputs, as the agent sees them), named
    by SignatureDef `signature` (None: serving_default, else the first)."""
    return [InputSpec(tensors.input_name(d), str(d["name"]),
                      tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]), int(d["index"]),
                      d)
            for d in tensors.model_inputs(it, signature)]


def model_inputs(model_path: Union[str, Path], signature: Optional[str] = None
                 ) -> List[InputSpec]:
    """The model's inputs, named by its SignatureDef `signature` (None: serving_default, else
    the first) when it has one."""
    check_tflite(model_path)
    return inputs_of(interpreter(model_path, allocate=False), signature)
