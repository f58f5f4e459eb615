"""Which ops of a quantized variant lose the accuracy: fp32 and the variant compared op by op.

Both models run on the same samples in the host's LiteRT with
`experimental_preserve_all_tensors=True`, so every intermediate tensor can be read after
`invoke()`. A variant made by ai-edge-quantizer keeps the names of the float model's tensors,
so each op's output in fp32 is matched by tensor name with the same tensor in the variant
(dequantized with its scale and zero point when it is integer), and compared:

- ``snr_db``: the SNR of the op's output vs fp32 over all samples (the error accumulated up to
  and including this op);
- ``loss_db``: how much SNR the op itself loses: the worst SNR of its (matched, non-constant)
  inputs minus its output SNR. A model input counts as exact (`EXACT_DB`).

The variant's own output SNR is taken over all model outputs together, as accuracy.score's
``snr_db`` (the number the results table shows). Ops are ranked by ``loss_db``: the first ones are those worth keeping in float (mixed.py).
Ops whose output has no counterpart in the variant (fused or renamed) are left out.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_bench_agent import tensors

from ..errors import ModelError, UsageError
from .accuracy import snr_db

#: the SNR given to an exact tensor (a model input, identical values), so that losses are finite
EXACT_DB = 120.0
#: at most this many samples are run through both models
MAX_SAMPLES = 16
#: fewer samples when one model's kept tensors (float32, every sample) would pass this
MEMORY_BUDGET = 512 << 20


@dataclass(frozen=True)
class OpInfo:
    index: int                   # the op's position in subgraph 0 (execution order)
    op: str                      # builtin op name (CONV_2D) or the custom op's name
    inputs: Tuple[str, ...]      # tensor names
    outputs: Tuple[str, ...]
    scope: str                   # ai-edge-quantizer's scope: output names joined by ";" + ";"


@dataclass(frozen=True)
class OpLoss:
    index: int
    op: str
    output: str
    snr_db: float
    loss_db: float
    grid_db: float = EXACT_DB    # fp32's output rounded to the variant's integer grid vs itself

    def to_json(self) -> Dict[str, Any]:
        d = asdict(self)
        for k in ("snr_db", "loss_db", "grid_db"):
            d[k] = None if not math.isfinite(d[k]) else round(d[k], 2)
        return d


@dataclass(frozen=True)
class Explanation:
    ops: List[OpLoss]            # ranked: the op that loses the most first
    output_snr_db: float         # the variant's SNR vs fp32 over all model outputs together
    samples: int
    compared: int                # ops matched in both models
    total_ops: int
    outputs: Tuple[Tuple[str, float], ...] = ()   # (model output tensor name, SNR dB)
    worst: str = ""              # the model output with the lowest SNR

    @property
    def worst_snr_db(self) -> float:
        """The lowest SNR of any one model output (a collapsed small output shows here)."""
        return min((v for _, v in self.outputs), default=self.output_snr_db)

    def to_json(self) -> Dict[str, Any]:
        return {"output_snr_db": _num(self.output_snr_db),
                "worst_output_snr_db": _num(self.worst_snr_db), "samples": self.samples,
                "outputs": [{"name": n, "snr_db": _num(v)} for n, v in self.outputs],
                "ops_compared": self.compared, "ops_total": self.total_ops,
                "ops": [o.to_json() for o in self.ops]}


def _num(v: float) -> Optional[float]:
    return round(v, 2) if math.isfinite(v) else (None if math.isnan(v) else
                                                  (1e9 if v > 0 else -1e9))


def model_ops(model_bytes: bytes) -> List[OpInfo]:
    """The ops of subgraph 0 in execution order, with their tensors' names."""
    from ai_edge_litert import schema_py_generated as schema
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(model_bytes, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        custom = oc.CustomCode()
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        codes.append(custom.decode("utf-8", "replace") if custom and code == 32
                     else names.get(code, str(code)))
    sg = model.Subgraphs(0)

    def tname(i: int) -> str:
        return sg.Tensors(i).Name().decode("utf-8", "replace") if i >= 0 else ""
    out = []
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        ins = tuple(tname(int(i)) for i in op.InputsAsNumpy()) if op.InputsLength() else ()
        outs = tuple(tname(int(i)) for i in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        valid = [n for n in outs if n]
        scope = ";".join(valid) + (";" if valid else "")
        out.append(OpInfo(k, codes[op.OpcodeIndex()], ins, outs, scope))
    return out


def _tensor_bytes(model_bytes_path: Path) -> int:
    """Bytes of one sample's tensors of subgraph 0, as float32 (what _all_tensors keeps)."""
    from ai_edge_litert import schema_py_generated as schema
    model = schema.Model.GetRootAs(model_bytes_path.read_bytes(), 0)
    sg = model.Subgraphs(0)
    total = 0
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        shape = t.ShapeAsNumpy() if t.ShapeLength() else np.zeros(0, np.int32)
        total += 4 * int(np.prod([max(1, int(d)) for d in shape])) if len(shape) else 4
    return total


def _all_tensors(model_path: Path, inputs: Dict[str, np.ndarray], n: int,
                 signature: Optional[str], grids: Optional[Dict[str, Any]] = None
                 ) -> Tuple[Dict[str, np.ndarray], List[np.ndarray], List[str]]:
    """({tensor name: [n, ...] float values}, model outputs, their tensor names) of every
    sample; `grids` (when given) gets {tensor name: (dtype, scale, zero point)} of each
    integer tensor with one scale."""
    from ai_edge_litert.interpreter import Interpreter

    from ..quiet import quiet
    from .modelinfo import inputs_of
    try:
        with quiet("LiteRT"):
            it = Interpreter(model_path=str(model_path), num_threads=1,
                             experimental_preserve_all_tensors=True)
            it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"LiteRT cannot load {Path(model_path).name}: {str(e).strip()}") from e
    specs = inputs_of(it, signature)
    try:
        arrays = tensors.match_arrays(inputs, [s.detail for s in specs], "data")
    except tensors.AgentError as e:
        raise UsageError(e.message) from None
    details = [d for d in it.get_tensor_details() if d.get("name")]
    if grids is not None:
        for d in details:
            qp = d.get("quantization_parameters") or {}
            scales = qp.get("scales")
            if np.dtype(d["dtype"]).kind in "iu" and scales is not None and len(scales) == 1:
                grids[d["name"]] = (np.dtype(d["dtype"]), float(scales[0]),
                                    int(qp["zero_points"][0]))
    out_details = tensors.output_details(it, signature)
    out_idx = [d["index"] for d in out_details]
    values: Dict[str, List[np.ndarray]] = {}
    outs: List[List[np.ndarray]] = [[] for _ in out_idx]
    for i in range(n):
        for spec, arr in zip(specs, arrays):
            it.set_tensor(spec.index, tensors.convert_for(arr[i].reshape(spec.shape),
                                                          spec.detail, "data"))
        try:
            it.invoke()
        except RuntimeError as e:
            raise ModelError(f"LiteRT failed running {Path(model_path).name}: {e}") from e
        for d in details:
            with contextlib.suppress(ValueError):   # a tensor with no data (e.g. optional)
                t = it.get_tensor(d["index"])
                if t.dtype.kind in "fiu" and t.size:
                    values.setdefault(d["name"], []).append(_dequantize(t, d))
        for k, idx in enumerate(out_idx):
            d = next(x for x in it.get_output_details() if x["index"] == idx)
            outs[k].append(tensors.dequantize(it.get_tensor(idx), d).astype(np.float64))
    return ({k: np.stack(v) for k, v in values.items() if len(v) == n},
            [np.stack(o) for o in outs], [str(d.get("name", "")) for d in out_details])


def _dequantize(t: np.ndarray, d: Dict[str, Any]) -> np.ndarray:
    if t.dtype.kind == "f":
        return t.astype(np.float32)
    qp = d.get("quantization_parameters") or {}
    scales, zps = qp.get("scales"), qp.get("zero_points")
    if scales is None or not len(scales):
        return t.astype(np.float32)
    if len(scales) == 1:
        return ((t.astype(np.float32) - float(zps[0])) * float(scales[0])).astype(np.float32)
    axis = int(qp.get("quantized_dimension", 0))
    shape = [1] * t.ndim
    shape[axis] = -1
    return ((t.astype(np.float32) - np.asarray(zps, np.float32).reshape(shape))
            * np.asarray(scales, np.float32).reshape(shape))


class Comparer:
    """fp32's tensors on the samples, computed once; `compare(variant)` for each variant."""

    def __init__(self, fp32_path: Union[str, Path], inputs: Dict[str, np.ndarray],
                 signature: Optional[str] = None, max_samples: int = MAX_SAMPLES) -> None:
        per_sample = max(1, _tensor_bytes(Path(fp32_path)))
        self.n = min(max_samples, len(next(iter(inputs.values()))),
                     max(1, MEMORY_BUDGET // per_sample))
        if self.n < 1:
            raise UsageError("explain needs at least one sample")
        self.inputs, self.signature = inputs, signature
        data = Path(fp32_path).read_bytes()
        self.ops = model_ops(data)
        self.consts = _constant_names(data)
        self.ref, self.ref_out, self.out_names = _all_tensors(Path(fp32_path), inputs, self.n,
                                                              signature)

    def compare(self, variant_path: Union[str, Path]) -> Explanation:
        ref = self.ref
        grids: Dict[str, Any] = {}
        var, var_out, _ = _all_tensors(Path(variant_path), self.inputs, self.n, self.signature,
                                       grids)
        outs_snr = [snr_db(v, r) for v, r in zip(var_out, self.ref_out)]
        # as accuracy.score's snr_db: all outputs together, so the loudest errors count most
        out_snr = snr_db(np.concatenate([v.ravel() for v in var_out]),
                         np.concatenate([r.ravel() for r in self.ref_out]))
        snr: Dict[str, float] = {}
        losses: List[OpLoss] = []
        for op in self.ops:
            outs = [o for o in op.outputs if o in ref and o in var
                    and ref[o].shape == var[o].shape]
            if not outs:
                continue
            for o in outs:
                snr[o] = _clip(snr_db(var[o], ref[o]))
            s = min(snr[o] for o in outs)
            ins = [snr[i] if i in snr else _tensor_snr(i, ref, var)
                   for i in op.inputs if i and i not in self.consts]
            before = min(ins) if ins else EXACT_DB
            grid = min((_grid_snr(ref[o], grids[o]) for o in outs if o in grids),
                       default=EXACT_DB)
            losses.append(OpLoss(op.index, op.op, outs[0], s, max(0.0, before - s), grid))
        ranked = sorted(losses, key=lambda x: (-x.loss_db, x.snr_db, x.index))
        return Explanation(ranked, out_snr, self.n, len(losses), len(self.ops),
                           tuple(zip(self.out_names, outs_snr)),
                           self.out_names[int(np.argmin(outs_snr))] if outs_snr else "")

    def feeding(self, tensor: str) -> set:
        """Indices of the ops whose results reach `tensor` (its producer and theirs)."""
        made_by = {o: op for op in self.ops for o in op.outputs if o}
        seen: set = set()
        todo = [tensor]
        while todo:
            op = made_by.get(todo.pop())
            if op is None or op.index in seen:
                continue
            seen.add(op.index)
            todo.extend(i for i in op.inputs if i)
        return seen


def explain(fp32_path: Union[str, Path], variant_path: Union[str, Path],
            inputs: Dict[str, np.ndarray], signature: Optional[str] = None,
            max_samples: int = MAX_SAMPLES) -> Explanation:
    """Compare `variant_path` with `fp32_path` op by op on `inputs` ({name: [N, ...]})."""
    return Comparer(fp32_path, inputs, signature, max_samples).compare(variant_path)


def _grid_snr(ref: np.ndarray, grid: Tuple[np.dtype, float, int]) -> float:
    """How well the integer grid (dtype, scale, zero point) the variant gave a tensor holds
    fp32's values of it: rounding and clipping alone, with exact inputs."""
    dtype, scale, zp = grid
    info = np.iinfo(dtype)
    q = np.clip(np.round(ref / scale) + zp, info.min, info.max)
    return _clip(snr_db(((q - zp) * scale).astype(np.float32), ref))


def _tensor_snr(name: str, ref: Dict[str, np.ndarray], var: Dict[str, np.ndarray]) -> float:
    """A tensor no op of subgraph 0 makes (a model input, quantized or not in the variant)."""
    if name in ref and name in var and ref[name].shape == var[name].shape:
        return _clip(snr_db(var[name], ref[name]))
    return EXACT_DB


def _clip(v: float) -> float:
    return EXACT_DB if v > EXACT_DB else (-EXACT_DB if v < -EXACT_DB else v)


def _constant_names(model_bytes: bytes) -> set:
    """Names of subgraph 0's tensors that hold constant data (weights, biases)."""
    from ai_edge_litert import schema_py_generated as schema
    model = schema.Model.GetRootAs(model_bytes, 0)
    sg = model.Subgraphs(0)
    out = set()
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        b = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        if b is not None and (b.DataLength() or b.Size()):
            out.add(t.Name().decode("utf-8", "replace"))
    return out


def worst(expl: Explanation, k: int, exclude: Sequence[int] = ()) -> List[OpLoss]:
    """The `k` ops that lose the most, leaving out op indices in `exclude`."""
    return [o for o in expl.ops if o.index not in set(exclude)][:k]
