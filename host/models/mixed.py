"""Variant `int8-mixed`: full int8, except the fewest ops that must stay float to keep accuracy.

The search (greedy, on the calibration samples):

1. calibrate once and quantize the whole model with static_wi8_ai8 (as variant `int8`);
2. compare it with fp32 op by op (explain.py) on up to `explain.MAX_SAMPLES` calibration
   samples; if every model output's SNR vs fp32 reaches the target (`--accuracy-target`,
   dB), stop (every output: a small output, e.g. a detector's score, can collapse while the
   SNR of all outputs together, dominated by the large ones, looks fine);
3. else, among the ops that feed the output with the lowest SNR, keep in float the one
   whose int8 output grid holds fp32's values worst (`grid_db`: fp32's output rounded and
   clipped to the variant's scale and zero point, vs itself: an activation range stretched by
   outliers shows here, whatever noise came before), quantize again (the same calibration)
   and go to 2; at most `MAX_FLOAT_OPS` ops.

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

from .accuracy import TOLERANCES
from .variants import MIXED_VARIANTS
from .explain import EXACT_DB, Comparer, Explanation, OpInfo

MIXED = MIXED_VARIANTS[0]
#: the default target: the SNR below which int8 is flagged (accuracy.TOLERANCES), on every
#: output. 30 dB, tried first, was out of reach with a few float ops on every model of the
#: test corpus: their int8 trunks alone (all ops but the heads) stay near 15-25 dB
DEFAULT_TARGET_DB = TOLERANCES["int8"].snr_db
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
    grid_db: float              # how well its int8 output grid held fp32's values

    def to_json(self) -> Dict[str, Any]:
        return {"index": self.index, "op": self.op, "scope": self.scope,
                "loss_db": round(self.loss_db, 2), "grid_db": round(self.grid_db, 2)}


@dataclass
class MixedRecipe:
    target_db: float
    int8_snr_db: float                       # the whole model in int8: its worst output's SNR
    snr_db: float = math.nan                 # with `float_ops` kept float (worst output)
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
                "int8_worst_output_snr_db": _r(self.int8_snr_db),
                "worst_output_snr_db": _r(self.snr_db),
                "reached": self.reached, "ops_total": self.total_ops,
                "samples": self.samples,
                "float_ops": [f.to_json() for f in self.float_ops],
                "ai_edge_quantizer_recipe": self.recipe()}

    def describe(self) -> str:
        head = (f"static_wi8_ai8 with {len(self.float_ops)} of {self.total_ops} ops kept float"
                f" for every output's SNR >= {self.target_db:g} dB vs fp32 on {self.samples}"
                f" calibration samples: worst output {_db(self.snr_db)} (all int8:"
                f" {_db(self.int8_snr_db)})")
        if not self.reached:
            head += f"; target NOT reached with {len(self.float_ops)} float ops"
        if self.float_ops:
            head += "; float: " + ", ".join(
                f"#{f.index} {f.op} (int8 grid {f.grid_db:.1f} dB, lost {f.loss_db:.1f} dB)"
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


def _quantize(model_path: Path, recipe: List[Dict[str, Any]], calibrated: Any,
              float_tensors: Collection[str] = ()) -> bytes:
    from ai_edge_quantizer import quantizer
    qt = quantizer.Quantizer(str(model_path), recipe)
    data = bytes(qt.quantize(calibrated, enable_progress_report=False).quantized_model)
    return float_outputs(data, float_tensors) if float_tensors else data


def float_outputs(data: bytes, names: Collection[str]) -> bytes:
    """A model output made by an op kept float stays float: ai-edge-quantizer re-quantizes it
    (a QUANTIZE op onto `NAME_quantized`, with the range calibrated for the int8 op, which is
    what lost the accuracy); here the QUANTIZE is dropped and the float tensor is the output
    again (graph outputs and SignatureDef alike). Other outputs keep their integer type."""
    from .repair import _drop_dead, dump, load, op_code
    from ai_edge_litert import schema_py_generated as schema
    model = load(data)
    sg = model.subgraphs[0]
    names_b = {n.encode() for n in names}
    quantize = {i for i, oc in enumerate(model.operatorCodes or [])
                if op_code(oc) == schema.BuiltinOperator.QUANTIZE}
    outputs = [int(i) for i in sg.outputs]
    keep, moved = [], {}
    for op in sg.operators or []:
        out = int(op.outputs[0]) if op.outputs is not None and len(op.outputs) else -1
        src = int(op.inputs[0]) if op.inputs is not None and len(op.inputs) else -1
        if (op.opcodeIndex in quantize and out in outputs and src >= 0
                and sg.tensors[src].name in names_b
                and sg.tensors[src].type == schema.TensorType.FLOAT32
                and not any(src in list(o.inputs) for o in sg.operators if o is not op)):
            moved[out] = src
            continue
        keep.append(op)
    if not moved:
        return data
    sg.operators = keep
    sg.outputs = [moved.get(i, i) for i in outputs]
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex == 0:
            for t in sig.outputs or []:
                t.tensorIndex = moved.get(int(t.tensorIndex), int(t.tensorIndex))
    _drop_dead(model)
    return dump(model)


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
        rec = MixedRecipe(target_db, expl.worst_snr_db, expl.worst_snr_db,
                          total_ops=expl.total_ops, samples=expl.samples)
        while not rec.reached and len(chosen) < MAX_FLOAT_OPS:
            pick = _next_op(expl, chosen, by_index, comparer.feeding(expl.worst))
            if pick is None:
                break
            chosen.append(pick)
            trial = _quantize(model_path, build_recipe([f.scope for f in chosen]), calibrated,
                              [n for f in chosen for n in by_index[f.index].outputs if n])
            path.write_bytes(trial)
            expl = comparer.compare(path)
            data, rec.snr_db, rec.float_ops = trial, expl.worst_snr_db, list(chosen)
    return data, rec


def _next_op(expl: Explanation, chosen: Sequence[FloatOp], ops: Dict[int, OpInfo],
             feeding: Collection[int] = ()) -> Optional[FloatOp]:
    """The op that loses the most and is not float yet (nor without a scope to name it),
    among those that feed the worst model output (`feeding`) when there are any."""
    done = {f.index for f in chosen}
    by_grid = sorted(expl.ops, key=lambda o: (o.grid_db, -o.loss_db, o.index))
    ranked = [o for o in by_grid if o.index in feeding] if feeding else []
    for o in ranked + by_grid:
        info = ops.get(o.index)
        if o.index in done or info is None or not info.scope or o.grid_db >= EXACT_DB:
            continue
        return FloatOp(o.index, o.op, info.scope, o.loss_db, o.grid_db)
    return None


def write_recipe(rec: MixedRecipe, path: Path) -> None:
    path.write_text(json.dumps(rec.to_json(), indent=1) + "\n")
