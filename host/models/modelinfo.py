"""What a .tflite file needs as input, read with the host's LiteRT interpreter."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from ..errors import ModelError


def model_inputs(path: Path) -> List[Dict[str, Any]]:
    """[{name, shape, dtype, scale, zero_point}] of the model's inputs."""
    from ai_edge_litert.interpreter import Interpreter
    from ..quiet import quiet
    try:
        with quiet("LiteRT"):
            it = Interpreter(model_path=str(path))
    except Exception as e:  # noqa: BLE001 - the runtime raises plain RuntimeError/ValueError
        raise ModelError(f"{path}: LiteRT cannot load this model: {e}")
    out = []
    for d in it.get_input_details():
        scale, zp = d.get("quantization", (0.0, 0))
        out.append({"name": d["name"], "shape": [int(x) for x in d["shape"]],
                    "dtype": d["dtype"].__name__, "scale": float(scale), "zero_point": int(zp)})
    return out
