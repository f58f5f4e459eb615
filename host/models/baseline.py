"""What a .tflite file as given is, and the float32 baseline its variants are made from.

`inspect_model(path)` reads the flatbuffer (no interpreter, so models with custom ops the host
cannot run are fine) and says which kind it is:

=================  ===============================================================================
float32            float weights and activations: the baseline is the file (repaired if needed)
fp16-stored        float16 constants feeding DEQUANTIZE ops (how most published models ship):
                   the baseline folds them into float32 constants (exact, see repair.py)
int8 / int16x8     already fully quantized (QAT or post-training; integer activations)
int8-weights       float activations with int8/int4 weights (dynamic-range or weight-only)
=================  ===============================================================================

`float_baseline(path)` returns the file every variant is made from: the file itself when nothing
needed repair, else a derived copy (cached by the given file's sha256) whose `recipe()` says it
was derived and from what. An already-quantized file has no float baseline: it is timed as
given (variant `given`) and scored against `--reference FLOAT.tflite` when one is given.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple, Union

from edge_bench_agent.accel_spec import DISPATCH_OP

from ..errors import ModelError
from ..hashing import sha256_file
from . import repair as rep

#: bump when repair.py changes what it writes (derived files are cached by this)
REPAIR_VERSION = 2
QUANTIZED_KINDS = ("int8", "int16x8", "int8-weights", "aot")


_KIND_TEXT = {
    "float32": "float32",
    "fp16-stored": "fp16-stored (float16 weights + DEQUANTIZE, float compute)",
    "int8": "already quantized: int8 weights and activations",
    "int16x8": "already quantized: int8 weights, int16 activations",
    "int8-weights": "already quantized: integer weights, float activations (dynamic/weight-only)",
    "aot": "compiled ahead of time for an NPU (DISPATCH_OP; runs only with --accelerator npu)",
}


@dataclass(frozen=True)
class ModelFacts:
    """What the file as given is (read from its flatbuffer)."""
    kind: str                      # a key of _KIND_TEXT
    custom_ops: Tuple[str, ...]    # custom op names (the host's LiteRT may not run them)
    signatures: Tuple[str, ...]    # SignatureDef keys, in file order

    @property
    def quantized(self) -> bool:
        return self.kind in QUANTIZED_KINDS

    def describe(self) -> str:
        return _KIND_TEXT[self.kind]


def _facts(model) -> ModelFacts:
    from ai_edge_litert import schema_py_generated as schema
    tt, bo = schema.TensorType, schema.BuiltinOperator
    int_types = {tt.INT8, tt.UINT8, tt.INT16, getattr(tt, "INT4", -1)}
    custom: List[str] = []
    dequantize = set()
    for i, oc in enumerate(model.operatorCodes or []):
        code = rep.op_code(oc)
        if code == bo.CUSTOM:
            name = oc.customCode.decode() if isinstance(oc.customCode, bytes) else oc.customCode
            if name and name not in custom:
                custom.append(str(name))
        elif code == bo.DEQUANTIZE:
            dequantize.add(i)
    int_acts = int16_acts = int_consts = fp16_consts = False
    for sg in model.subgraphs or []:
        fed_by_dequantize = set()
        for op in sg.operators or []:
            if op.opcodeIndex in dequantize and op.inputs is not None:
                fed_by_dequantize |= {int(i) for i in op.inputs}
        for k, t in enumerate(sg.tensors or []):
            buf = model.buffers[t.buffer] if 0 < t.buffer < len(model.buffers) else None
            const = buf is not None and buf.data is not None and len(buf.data) > 0
            if t.type in int_types and t.quantization is not None and \
                    t.quantization.scale is not None and len(t.quantization.scale):
                if const:
                    int_consts = True
                else:
                    int_acts = True
                    int16_acts = int16_acts or t.type == tt.INT16
            elif t.type == tt.FLOAT16 and const and k in fed_by_dequantize:
                fp16_consts = True
    if DISPATCH_OP in custom:  # the graph is the vendor's bytecode: timed as given, never repaired
        kind = "aot"
    elif int_acts:
        kind = "int16x8" if int16_acts else "int8"
    elif int_consts:
        kind = "int8-weights"
    elif fp16_consts:
        kind = "fp16-stored"
    else:
        kind = "float32"
    sigs = tuple(s.signatureKey.decode() if isinstance(s.signatureKey, bytes) else str(s.signatureKey)
                 for s in model.signatureDefs or [])
    return ModelFacts(kind, tuple(custom), sigs)


def inspect_model(path: Union[str, Path]) -> ModelFacts:
    p = Path(path)
    return _facts(rep.load(p.read_bytes(), str(p)))


@dataclass(frozen=True)
class Baseline:
    """The float32 file variants are made from, and where it came from."""
    path: Path                     # the float32 baseline (the given file when `changes` is empty)
    given: Path                    # the file as given
    facts: ModelFacts              # of the given file
    changes: Tuple[str, ...] = ()  # what repair changed to derive `path` from `given`

    @property
    def derived(self) -> bool:
        return bool(self.changes)

    def recipe(self) -> str:
        if not self.derived:
            return "none (float model as given)"
        return (f"float32 baseline derived from {self.given.name} ({self.facts.describe()}): "
                + "; ".join(self.changes))

    def given_recipe(self) -> str:
        return f"the file as given: {self.given.name} ({self.facts.describe()})"


def default_dir() -> Path:
    """$EDGE_BENCH_CACHE/baseline (default ~/.cache/edge-bench/baseline)."""
    from .quantcache import default_cache_dir
    return default_cache_dir().parent / "baseline"


def float_baseline(path: Union[str, Path], cache_dir: Union[None, str, Path] = None) -> Baseline:
    """The float32 baseline of a float or fp16-stored model (derived and cached when the file
    needs repair). ModelError for an already-quantized file (it has no float baseline)."""
    from .quantcache import write_atomic
    from .modelinfo import check_tflite
    given = check_tflite(path)
    data = given.read_bytes()
    model = rep.load(data, str(given))
    facts = _facts(model)
    if facts.quantized:
        raise ModelError(f"{given.name} is {facts.describe()}; it has no float baseline",
                         hint="it is timed as given (variant `given`); pass --reference "
                              "FLOAT.tflite to score it and make variants from a float model")
    sha = sha256_file(given)
    base = Path(cache_dir).expanduser() if cache_dir else default_dir()
    out = base / f"{sha[:24]}-r{REPAIR_VERSION}.tflite"
    meta = out.with_suffix(".json")
    if out.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            if info.get("sha256") == sha256_file(out) and info.get("given_sha256") == sha:
                return Baseline(out, given, facts, tuple(info["changes"]))
        except (ValueError, KeyError, OSError):
            pass  # rebuilt below
    fixed = rep.repair(data, str(given))
    if not fixed.changes:
        return Baseline(given, given, facts)
    write_atomic(out, fixed.data)
    write_atomic(meta, json.dumps({"given_sha256": sha, "sha256": sha256_file(out),
                                   "changes": fixed.changes}, indent=1).encode())
    return Baseline(out, given, facts, tuple(fixed.changes))


def quantized_baseline(path: Union[str, Path]) -> Baseline:
    """An already-quantized file: its own `given` row, no float baseline."""
    from .modelinfo import check_tflite
    given = check_tflite(path)
    return Baseline(given, given, inspect_model(given))


def model_baseline(path: Union[str, Path], cache_dir: Union[None, str, Path] = None
                   ) -> Baseline:
    """float_baseline for float files, quantized_baseline for already-quantized ones."""
    facts = inspect_model(path)
    if facts.quantized:
        return quantized_baseline(path)
    return float_baseline(path, cache_dir)
