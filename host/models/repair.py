"""Repair .tflite files from the wild into a float32 baseline the quantizer can work on.

Production models shipped in packages are mostly not what ai-edge-quantizer 0.10 expects
(measured on the corpus in tests/test_real_models.py, see docs/real-models.md):

- **op codes**: files from the old converter keep each op's code only in
  `deprecated_builtin_code` (`builtin_code` is 0 = ADD). The quantizer reads `builtin_code`, so it
  sees every op as ADD and changes nothing. `normalize_op_codes` sets both fields from the
  larger one (as TFLite's own reader does).
- **fp16-stored weights**: constant float16 tensors feeding DEQUANTIZE ops in front of the float
  ops. The quantizer leaves such a file unchanged. `fold_fp16_dequantize` replaces each such
  DEQUANTIZE by an fp32 constant holding the same values (fp16 -> fp32 is exact; sparse fp16
  constants, fed directly or through a DENSIFY op, are densified first), rewires its consumers
  and drops the dead tensors, buffers and op codes.
  The folded model computes the same outputs as the file given.
- **no SignatureDef**: calibration goes through a signature (`serving_default`).
  `add_signature` adds one over subgraph 0's inputs and outputs, named after the tensors.

- **duplicate tensor names** (control flow from older converters: every branch names its
  inputs `arg0`...): the quantizer needs names unique across subgraphs. `unique_tensor_names`
  renames the later ones.

`repair(data)` applies all four and says what it did (`Repair.changes`); the result is the
derived fp32 baseline that every variant is made from. Everything here works on the schema's
object API (`ai_edge_litert.schema_py_generated`), like tflite_builder.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

import numpy as np

from ..errors import ModelError
from .tflite_builder import FILE_IDENTIFIER, SIGNATURE_KEY, _AlignedBufferT

#: op codes above this live only in builtin_code; deprecated_builtin_code then holds this value
PLACEHOLDER_FOR_GREATER_OP_CODES = 127


@dataclass
class Repair:
    """The repaired flatbuffer and what was changed (empty `changes`: nothing needed)."""
    data: bytes
    changes: List[str] = field(default_factory=list)


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    return schema


def load(data: bytes, name: str = "model"):
    """The ModelT of a flatbuffer, buffers stored after it (offset/size) read into `data`;
    ModelError when it is not a readable TFLite model."""
    schema = _schema()
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelError(f"{name} is not a TFLite model (no 'TFL3' flatbuffer identifier)")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as e:  # noqa: BLE001 - a corrupt flatbuffer raises anything
        raise ModelError(f"{name}: the TFLite flatbuffer cannot be read: {type(e).__name__}: {e}")
    for b in model.buffers or []:  # data stored after the flatbuffer (ai-edge-quantizer does)
        if b is not None and (b.offset or 0) > 1 and b.size:
            if b.offset + b.size > len(data):
                raise ModelError(f"{name}: a buffer lies past the end of the file (truncated?)")
            b.data = np.frombuffer(data, np.uint8, count=int(b.size), offset=int(b.offset))
            b.offset = b.size = 0
    return model


def dump(model) -> bytes:
    """Serialize a ModelT (buffers 16-byte aligned, as the converter writes them)."""
    import flatbuffers
    for i, b in enumerate(model.buffers or []):
        if b is not None and b.data is not None and not isinstance(b, _AlignedBufferT):
            nb = _AlignedBufferT()
            nb.data, nb.offset, nb.size = b.data, getattr(b, "offset", 0), getattr(b, "size", 0)
            model.buffers[i] = nb
    fbb = flatbuffers.Builder(1024)
    fbb.Finish(model.Pack(fbb), file_identifier=FILE_IDENTIFIER)
    return bytes(fbb.Output())


def op_code(oc) -> int:
    """An OperatorCode's real builtin code (the larger of the two fields, as TFLite reads it)."""
    return max(int(oc.builtinCode or 0), int(oc.deprecatedBuiltinCode or 0))


def normalize_op_codes(model) -> int:
    """Set builtin_code and deprecated_builtin_code consistently; returns how many changed."""
    changed = 0
    for oc in model.operatorCodes or []:
        code = op_code(oc)
        dep = min(code, PLACEHOLDER_FOR_GREATER_OP_CODES)
        if oc.builtinCode != code or oc.deprecatedBuiltinCode != dep:
            oc.builtinCode, oc.deprecatedBuiltinCode = code, dep
            changed += 1
    return changed


# ---- sparse constants ----------------------------------------------------------------------
def _vector(union) -> np.ndarray:
    return np.asarray(getattr(union, "values", None) if union is not None else [], dtype=np.int64)


def densify(values: np.ndarray, shape: List[int], sparsity) -> np.ndarray:
    """A dense array from TFLite's sparse encoding (traversal order, block map, DENSE/CSR dims),
    the same walk as TFLite's FormatConverter. `values` are the stored (non-zero) elements."""
    order = [int(x) for x in sparsity.traversalOrder]
    block_map = [int(x) for x in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    dims = sparsity.dimMetadata
    rank = len(shape)
    prev = np.zeros(1, dtype=np.int64)            # position in the previous level
    coords: List[np.ndarray] = []                 # per level, the index at that level
    for level, dm in enumerate(dims):
        if int(dm.format) == 0:                   # DENSE
            size = int(dm.denseSize)
            prev_new = (prev[:, None] * size + np.arange(size)[None, :]).ravel()
            coords = [np.repeat(c, size) for c in coords]
            coords.append(np.tile(np.arange(size), len(prev)))
        else:                                     # SPARSE_CSR
            seg, idx = _vector(dm.arraySegments), _vector(dm.arrayIndices)
            starts, ends = seg[prev], seg[prev + 1]
            counts = ends - starts
            prev_new = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]
                                      ) if len(prev) else np.zeros(0, np.int64)
            coords = [np.repeat(c, counts) for c in coords]
            coords.append(idx[prev_new])
        prev = prev_new.astype(np.int64)
    if len(prev) != values.size:
        raise ModelError(f"sparse tensor: {values.size} stored values for {len(prev)} positions")
    orig = [np.zeros(len(prev), dtype=np.int64) for _ in range(rank)]
    for level in range(rank):
        orig[order[level]] = coords[level]
    for level in range(rank, len(order)):
        b = order[level] - rank
        block_size = int(dims[level].denseSize)
        orig[block_map[b]] = orig[block_map[b]] * block_size + coords[level]
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(orig)] = values.ravel()
    return dense


# ---- fp16 DEQUANTIZE folding ---------------------------------------------------------------
def _const_data(model, tensor) -> Optional[np.ndarray]:
    buf = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    return np.asarray(buf.data, dtype=np.uint8)


def _fold_subgraph(model, sg, dequantize_codes: Set[int], densify_codes: Set[int]) -> int:
    schema = _schema()
    tt = schema.TensorType
    used_elsewhere: Dict[int, int] = {}
    for op in sg.operators or []:
        for i in op.inputs if op.inputs is not None else []:
            if i >= 0:
                used_elsewhere[int(i)] = used_elsewhere.get(int(i), 0) + 1
    graph_outputs = {int(i) for i in (sg.outputs if sg.outputs is not None else [])}
    keep, folded = [], 0
    for op in sg.operators or []:
        if op.opcodeIndex in densify_codes and _fold_densify(model, sg, op):
            continue  # its (dense, constant) output usually feeds a DEQUANTIZE folded next
        if (op.opcodeIndex in dequantize_codes and op.inputs is not None and len(op.inputs) == 1
                and op.outputs is not None and len(op.outputs) == 1):
            src, dst = sg.tensors[int(op.inputs[0])], sg.tensors[int(op.outputs[0])]
            raw = _const_data(model, src)
            if (raw is not None and src.type == tt.FLOAT16 and dst.type == tt.FLOAT32
                    and int(op.outputs[0]) not in graph_outputs):
                values = raw.view(np.float16).astype(np.float32)
                shape = [int(x) for x in (dst.shape if dst.shape is not None else [])]
                if src.sparsity is not None:
                    values = densify(values, shape, src.sparsity)
                buf = _AlignedBufferT()
                buf.data = np.ascontiguousarray(values.reshape(shape)).view(np.uint8).ravel()
                model.buffers.append(buf)
                dst.buffer = len(model.buffers) - 1
                folded += 1
                continue
        keep.append(op)
    sg.operators = keep
    return folded


def _fold_densify(model, sg, op) -> bool:
    """A DENSIFY of a constant sparse tensor becomes the dense constant (same type)."""
    if op.inputs is None or len(op.inputs) != 1 or op.outputs is None or len(op.outputs) != 1:
        return False
    src, dst = sg.tensors[int(op.inputs[0])], sg.tensors[int(op.outputs[0])]
    raw = _const_data(model, src)
    dtypes = {_schema().TensorType.FLOAT16: np.float16, _schema().TensorType.FLOAT32: np.float32,
              _schema().TensorType.INT8: np.int8}
    if raw is None or src.sparsity is None or src.type != dst.type or src.type not in dtypes:
        return False
    if int(op.outputs[0]) in {int(i) for i in (sg.outputs if sg.outputs is not None else [])}:
        return False
    shape = [int(x) for x in (dst.shape if dst.shape is not None else [])]
    dense = densify(raw.view(dtypes[src.type]), shape, src.sparsity)
    buf = _AlignedBufferT()
    buf.data = np.ascontiguousarray(dense).view(np.uint8).ravel()
    model.buffers.append(buf)
    dst.buffer = len(model.buffers) - 1
    return True


def _drop_dead(model) -> None:
    """Remove tensors no op, graph input/output or signature uses, then unused buffers."""
    for sg_index, sg in enumerate(model.subgraphs or []):
        live: Set[int] = set(int(i) for i in (sg.inputs if sg.inputs is not None else []))
        live |= set(int(i) for i in (sg.outputs if sg.outputs is not None else []))
        for op in sg.operators or []:
            for vec in (op.inputs, op.outputs, op.intermediates):
                live |= {int(i) for i in (vec if vec is not None else []) if i >= 0}
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == sg_index:
                live |= {int(t.tensorIndex) for t in (sig.inputs or []) + (sig.outputs or [])}
        if len(live) == len(sg.tensors or []):
            continue
        new_index = {old: new for new, old in enumerate(sorted(live))}

        def remap(vec):
            if vec is None:
                return None
            return [new_index[int(i)] if i >= 0 else int(i) for i in vec]
        sg.tensors = [t for i, t in enumerate(sg.tensors) if i in new_index]
        sg.inputs, sg.outputs = remap(sg.inputs), remap(sg.outputs)
        for op in sg.operators or []:
            op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
            op.intermediates = remap(op.intermediates)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == sg_index:
                for t in (sig.inputs or []) + (sig.outputs or []):
                    t.tensorIndex = new_index[int(t.tensorIndex)]
    used = {0}
    for sg in model.subgraphs or []:
        used |= {int(t.buffer) for t in sg.tensors or []}
    used |= {int(m.buffer) for m in model.metadata or []}
    if len(used) == len(model.buffers or []):
        return
    new_buf = {old: new for new, old in enumerate(sorted(used))}
    model.buffers = [b for i, b in enumerate(model.buffers) if i in new_buf]
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            t.buffer = new_buf[int(t.buffer)]
    for m in model.metadata or []:
        m.buffer = new_buf[int(m.buffer)]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [new_buf[int(b)] for b in model.metadataBuffer if int(b) in new_buf]


def fold_fp16_dequantize(model) -> int:
    """Fold every DEQUANTIZE of a constant float16 tensor into an fp32 constant; returns how many.
    DEQUANTIZE ops of activations (or of int8 weights) are left alone."""
    schema = _schema()
    codes = {i for i, oc in enumerate(model.operatorCodes or [])
             if op_code(oc) == schema.BuiltinOperator.DEQUANTIZE}
    dens = {i for i, oc in enumerate(model.operatorCodes or [])
            if op_code(oc) == schema.BuiltinOperator.DENSIFY}
    if not codes:
        return 0
    folded = sum(_fold_subgraph(model, sg, codes, dens) for sg in model.subgraphs or [])
    if folded:
        _drop_dead(model)
        used = {op.opcodeIndex for sg in model.subgraphs or [] for op in sg.operators or []}
        if len(used) < len(model.operatorCodes or []):
            _drop_unused_op_codes(model)
    return folded


def _drop_unused_op_codes(model) -> None:
    used = sorted({int(op.opcodeIndex) for sg in model.subgraphs or [] for op in sg.operators or []})
    new = {old: i for i, old in enumerate(used)}
    model.operatorCodes = [oc for i, oc in enumerate(model.operatorCodes) if i in new]
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            op.opcodeIndex = new[int(op.opcodeIndex)]


# ---- tensor names ----------------------------------------------------------------------------
def unique_tensor_names(model) -> int:
    """Rename tensors whose name another tensor of the model already has (the branches of an
    IF / the body of a WHILE from older converters all name their inputs `arg0`, `arg1`...;
    ai-edge-quantizer refuses such a model: "Tensor name arg0 is not unique in the model").
    Subgraph 0 keeps its names (the model's inputs and outputs); a later duplicate becomes
    `<name>_sg<subgraph>` (plus a count if needed). Returns how many were renamed."""
    seen: Set[str] = set()
    renamed = 0
    for k, sg in enumerate(model.subgraphs or []):
        for i, t in enumerate(sg.tensors or []):
            name = t.name.decode() if isinstance(t.name, bytes) else (t.name or "")
            if name and name not in seen:
                seen.add(name)
                continue
            base = f"{name}_sg{k}" if name else f"tensor_sg{k}_{i}"
            new, n = base, 1
            while new in seen:
                n += 1
                new = f"{base}_{n}"
            t.name = new
            seen.add(new)
            renamed += 1
    return renamed


# ---- signature -----------------------------------------------------------------------------
def _tensor_name(t, index: int) -> str:
    name = t.name.decode() if isinstance(t.name, bytes) else (t.name or "")
    return name or f"tensor_{index}"


def add_signature(model) -> bool:
    """Add a `serving_default` SignatureDef over subgraph 0's inputs and outputs when the model
    has none; names are the tensor names (made unique). Returns whether one was added."""
    schema = _schema()
    if model.signatureDefs:
        return False
    sg = model.subgraphs[0]
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = SIGNATURE_KEY, 0
    seen: Set[str] = set()

    def maps(indices) -> list:
        out = []
        for i in indices if indices is not None else []:
            name = base = _tensor_name(sg.tensors[int(i)], int(i))
            k = 1
            while name in seen:
                k += 1
                name = f"{base}_{k}"
            seen.add(name)
            tm = schema.TensorMapT()
            tm.name, tm.tensorIndex = name, int(i)
            out.append(tm)
        return out
    sig.inputs = maps(sg.inputs)
    seen.clear()
    sig.outputs = maps(sg.outputs)
    model.signatureDefs = [sig]
    return True


def repair(data: bytes, name: str = "model") -> Repair:
    """Normalize op codes, fold fp16 DEQUANTIZE, add a signature: the derived fp32 baseline.
    When nothing needed changing, `data` is returned as given (`changes` empty)."""
    model = load(data, name)
    changes: List[str] = []
    n = normalize_op_codes(model)
    if n:
        changes.append(f"{n} op codes normalized (deprecated_builtin_code -> builtin_code)")
    n = fold_fp16_dequantize(model)
    if n:
        changes.append(f"{n} fp16 constants folded into fp32 (DEQUANTIZE removed)")
    n = unique_tensor_names(model)
    if n:
        changes.append(f"{n} duplicate tensor names made unique")
    if add_signature(model):
        changes.append(f"{SIGNATURE_KEY} signature added")
    if not changes:
        return Repair(data, [])
    return Repair(dump(model), changes)


def signature_subgraph(data: bytes, key: str) -> int:
    """The subgraph index the SignatureDef `key` runs."""
    for s in load(data).signatureDefs or []:
        k = s.signatureKey.decode() if isinstance(s.signatureKey, bytes) else str(s.signatureKey)
        if k == key:
            return int(s.subgraphIndex or 0)
    raise ModelError(f"the model has no signature {key!r}")


def signature_key(data: bytes, wanted: Optional[str] = None) -> Optional[str]:
    """The SignatureDef to use: `wanted` (must exist), else serving_default, else the first;
    None when the model has none."""
    keys = [s.signatureKey.decode() if isinstance(s.signatureKey, bytes) else str(s.signatureKey)
            for s in load(data).signatureDefs or []]
    if wanted:
        if wanted not in keys:
            raise ModelError(f"the model has no signature {wanted!r}",
                             hint="signatures: " + (", ".join(keys) or "none"))
        return wanted
    if SIGNATURE_KEY in keys:
        return SIGNATURE_KEY
    return keys[0] if keys else None
