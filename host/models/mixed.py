"""Variant `int8-mixed`: full int8, except the fewest ops that must stay float to keep accuracy.

The search (greedy, on the calibration samples):

1. calibrate once and quantize the whole model with static_wi8_ai8 (as variant `int8`);
2. compare it with fp32 op by op (explain.py) on up to `explain.MAX_SAMPLES` calibration
   samples; if the output SNR vs fp32 (all outputs together, as the results table's SNR)
   reaches the target (`--accuracy-target`, dB), stop;
3. else, among the ops that feed the output with the largest error, keep the one that loses the most SNR
   (`loss_db`: its output's SNR below its inputs') in float, quantize again (the same
   calibration) and go to 2; at most `MAX_FLOAT_OPS` ops.

An op is kept float through ai-edge-quantizer's per-op recipe: a NO_QUANTIZE rule whose regex
matches exactly that op's scope (its output tensor names joined by `;`), added after the
`.*` int8 rule (a later rule wins). The resulting recipe (which ops, with the SNR each one lost)
is the variant's recipe description, stored with every result; `recipe()` gives the
ai-edge-quantizer recipe itself, and `edge-bench quantize` writes it next to the file
(`MODEL-int8-mixed.recipe.json`, loadable by `ai_edge_quantizer.quantizer.Quantizer(model,
recipe_path)`). When the target is not reached with `MAX_FLOAT_OPS` ops the best model found
is kept and its description says so (its accuracy is scored like any variant's).
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .explain import Comparer, Explanation, OpInfo

MIXED = "int8-mixed"
DEFAULT_TARGET_DB = 30.0
#: stop after keeping this many ops in float (each step quantizes and compares once more)
MAX_FLOAT_OPS = 8
#: bump when the search changes what it makes (part of the cache key)
SEARCH_VERSION = 1


@dataclass
class FloatOp:
    index: int
    op: str
    scope: str
    loss_db: float              # SNR the op lost in int8 when it was chosen

    def to_json(self) -> Dict[str, Any]:
        return {"index": self.index, "op": self.op, "scope": self.scope,
                "loss_db": round(self.loss_db, 2)}


@dataclass
class MixedRecipe:
    target_db: float
    int8_snr_db: float                       # the whole model in int8
    snr_db: float = math.nan                 # with `float_ops` kept float
    float_ops: List[FloatOp] = field(default_factory=list)
    total_ops: int = 0
    samples: int = 0

    @property
    def reached(self) -> bool:
        return self.snr_db >= self.target_db

    def recipe(self) -> List[Dict[str, Any]]:
        """The ai-edge-quantizer recipe (a list of per-scope rules)."""
        return build_recipe([f.scope for f in self.float_ops])

    def to_json(self) -> Dict[str, Any]:
        return {"variant": MIXED, "target_db": self.target_db,
                "int8_output_snr_db": _r(self.int8_snr_db), "output_snr_db": _r(self.snr_db),
                "reached": self.reached, "ops_total": self.total_ops,
                "samples": self.samples,
                "float_ops": [f.to_json() for f in self.float_ops],
                "ai_edge_quantizer_recipe": self.recipe()}

    def describe(self) -> str:
        head = (f"static_wi8_ai8 with {len(self.float_ops)} of {self.total_ops} ops kept float"
                f" for output SNR >= {self.target_db:g} dB vs fp32 on {self.samples}"
                f" calibration samples: {_db(self.snr_db)} (all int8: {_db(self.int8_snr_db)})")
        if not self.reached:
            head += f"; target NOT reached with {len(self.float_ops)} float ops"
        if self.float_ops:
            head += "; float: " + ", ".join(f"#{f.index} {f.op} (lost {f.loss_db:.1f} dB)"
                                            for f in self.float_ops)
        return head


def _r(v: float) -> Optional[float]:
    return round(v, 2) if math.isfinite(v) else None


def _db(v: float) -> str:
    return f"{v:.1f} dB" if math.isfinite(v) else ("exact" if v > 0 else "broken")


def build_recipe(float_scopes: Sequence[str]) -> List[Dict[str, Any]]:
    """static_wi8_ai8 for every op, then NO_QUANTIZE for each scope in `float_scopes`."""
    from ai_edge_quantizer import recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName
    rm = recipe_manager.RecipeManager()
    rm.add_static_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED,
                         activation_num_bits=8, weight_num_bits=8)
    for scope in float_scopes:
        rm.add_quantization_config(regex="^" + re.escape(scope) + "$",
                                   operation_name=TFLOperationName.ALL_SUPPORTED,
                                   algorithm_key=AlgorithmName.NO_QUANTIZE)
    return rm.get_quantization_recipe()


def _quantize(model_path: Path, recipe: List[Dict[str, Any]], calibrated: Any) -> bytes:
    from ai_edge_quantizer import quantizer
    qt = quantizer.Quantizer(str(model_path), recipe)
    return bytes(qt.quantize(calibrated, enable_progress_report=False).quantized_model)


def _calibrate(model_path: Path, calibration: Dict[str, np.ndarray], key: str) -> Any:
    from ai_edge_quantizer import quantizer, recipe
    qt = quantizer.Quantizer(str(model_path), recipe.static_wi8_ai8())
    n = len(next(iter(calibration.values())))
    samples = [{name: arr[i:i + 1] for name, arr in calibration.items()} for i in range(n)]
    return qt.calibrate({key: samples}, num_threads=max(1, os.cpu_count() or 1))


def make_mixed(model_path: Union[str, Path], calibration: Dict[str, np.ndarray], key: str,
               signature: Optional[str] = None, target_db: float = DEFAULT_TARGET_DB
               ) -> Tuple[bytes, MixedRecipe]:
    """(the int8-mixed flatbuffer, its recipe). `key`: the SignatureDef to calibrate through.
    Raises whatever ai-edge-quantizer raises (quantize.py names the variant)."""
    model_path = Path(model_path)
    calibrated = _calibrate(model_path, calibration, key)
    comparer = Comparer(model_path, calibration, signature)
    by_index: Dict[int, OpInfo] = {op.index: op for op in comparer.ops}
    with tempfile.TemporaryDirectory(prefix="edge-bench-mixed-") as tmp:
        path = Path(tmp) / "mixed.tflite"
        chosen: List[FloatOp] = []
        data = _quantize(model_path, build_recipe([]), calibrated)
        path.write_bytes(data)
        expl = comparer.compare(path)
        rec = MixedRecipe(target_db, expl.output_snr_db, expl.output_snr_db,
                          total_ops=expl.total_ops, samples=expl.samples)
        while not rec.reached and len(chosen) < MAX_FLOAT_OPS:
            pick = _next_op(expl, chosen, by_index, comparer.feeding(expl.noisiest))
            if pick is None:
                break
            chosen.append(pick)
            trial = _quantize(model_path, build_recipe([f.scope for f in chosen]), calibrated)
            path.write_bytes(trial)
            expl = comparer.compare(path)
            data, rec.snr_db, rec.float_ops = trial, expl.output_snr_db, list(chosen)
    return data, rec


def _next_op(expl: Explanation, chosen: Sequence[FloatOp], ops: Dict[int, OpInfo],
             feeding: Collection[int] = ()) -> Optional[FloatOp]:
    """The op that loses the most and is not float yet (nor without a scope to name it),
    among those that feed the worst model output (`feeding`) when there are any."""
    done = {f.index for f in chosen}
    ranked = [o for o in expl.ops if o.index in feeding] if feeding else []
    for o in ranked + list(expl.ops):
        info = ops.get(o.index)
        if o.index in done or info is None or not info.scope or o.loss_db <= 0:
            continue
        return FloatOp(o.index, o.op, info.scope, o.loss_db)
    return None


def write_recipe(rec: MixedRecipe, path: Path) -> None:
    path.write_text(json.dumps(rec.to_json(), indent=1) + "\n")
