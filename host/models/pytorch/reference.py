"""Reference outputs from the original PyTorch fp32 model, on the host.

With `--eval`, a PyTorch model's variants are scored against these (not against the converted
fp32 .tflite), so the fp32 row shows the conversion's own error (PyTorch fp32 vs LiteRT fp32)
and each quantized row the whole error a user gets from PyTorch to the device.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ...errors import ModelError
from .source import TorchModel, import_torch, positional_arrays, sample_args

REFERENCE = "pytorch fp32"


def torch_outputs(model: TorchModel, inputs: Dict[str, np.ndarray]) -> List[np.ndarray]:
    """Run every eval sample (one at a time, shaped like the example inputs) through the
    PyTorch model. Returns one float32 array [N, *output shape without the batch of 1] per
    output, in the order of the model's flattened outputs (litert-torch's output order)."""
    torch = import_torch()
    from torch.utils._pytree import tree_flatten

    arrays = positional_arrays(model, inputs, "eval data")
    module = model.module()
    n = len(arrays[0])
    outs: List[List[np.ndarray]] = []
    try:
        with torch.no_grad():
            for i in range(n):
                flat, _ = tree_flatten(module(*sample_args(model, arrays, i)))
                if not outs:
                    outs = [[] for _ in flat]
                for k, y in enumerate(flat):
                    y = y.detach().to(torch.float32).numpy()
                    outs[k].append(y[0] if y.shape[:1] == (1,) else y)
    except (RuntimeError, ValueError, TypeError) as e:
        raise ModelError(f"PyTorch model {model.name} failed on the eval data: "
                         f"{' '.join(str(e).split())[:300]}") from e
    return [np.stack(o) for o in outs]
