"""Tiny real .tflite models for tests, built with the flatbuffer object API that ai-edge-litert ships.

No TensorFlow needed. Every model carries a `serving_default` signature so that ai-edge-quantizer
accepts it.

    path = write_dense_softmax(tmp_path / "m.tflite", seed=0)       # x[1,16] -> y[1,10]
    w, b = dense_softmax_weights(seed=0)                              # the same weights, for numpy
    ref = numpy_dense_softmax(x, w, b)                                # what the model computes
    write_int8_model(path, tmp_path / "m_int8.tflite", calib_x)       # full-integer via the quantizer
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as s

PathLike = Union[str, Path]

N_IN = 16
N_OUT = 10


def dense_softmax_weights(seed: int = 0, n_in: int = N_IN,
                          n_out: int = N_OUT) -> Tuple[np.ndarray, np.ndarray]:
    """(weights [n_out, n_in], bias [n_out]) float32, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.5, size=(n_out, n_in)).astype(np.float32)
    b = rng.normal(0.0, 0.1, size=(n_out,)).astype(np.float32)
    return w, b


def numpy_dense_softmax(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """softmax(x @ w.T + b) row-wise, float32 — what the dense+softmax model computes."""
    z = x.astype(np.float32) @ w.T + b
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _tensor(name: str, shape: Sequence[int], buffer: int, ttype: int = s.TensorType.FLOAT32,
            signature: Optional[Sequence[int]] = None) -> "s.TensorT":
    t = s.TensorT()
    t.name = name
    t.shape = list(shape)
    t.type = ttype
    t.buffer = buffer
    if signature is not None:
        t.shapeSignature = list(signature)
    return t


def _buffer(data: Optional[np.ndarray] = None) -> "s.BufferT":
    b = s.BufferT()
    if data is not None:
        b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    return b


def _opcode(code: int, version: int = 1) -> "s.OperatorCodeT":
    oc = s.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = code if code < 127 else 127
    oc.version = version
    return oc


def _signature(inputs: Dict[str, int], outputs: Dict[str, int]) -> "s.SignatureDefT":
    def maps(d: Dict[str, int]) -> List["s.TensorMapT"]:
        out = []
        for name, idx in d.items():
            m = s.TensorMapT()
            m.name = name
            m.tensorIndex = idx
            out.append(m)
        return out
    sig = s.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs = maps(inputs)
    sig.outputs = maps(outputs)
    return sig


def _finish(model: "s.ModelT", path: PathLike) -> Path:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(builder.Output()))
    return out


def build_dense_softmax(w: np.ndarray, b: np.ndarray, dynamic_batch: bool = False,
                        input_name: str = "x", output_name: str = "y") -> bytes:
    """Flatbuffer bytes of y = softmax(FULLY_CONNECTED(x, w, b)) with x [1, n_in] float32."""
    n_out, n_in = w.shape
    sig_in = [-1, n_in] if dynamic_batch else None
    sig_out = [-1, n_out] if dynamic_batch else None
    tensors = [
        _tensor(input_name, [1, n_in], 1, signature=sig_in),
        _tensor("w", [n_out, n_in], 2),
        _tensor("b", [n_out], 3),
        _tensor("logits", [1, n_out], 0, signature=sig_out),
        _tensor(output_name, [1, n_out], 0, signature=sig_out),
    ]
    fc = s.OperatorT()
    fc.opcodeIndex = 0
    fc.inputs = [0, 1, 2]
    fc.outputs = [3]
    fc.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    fc_opts = s.FullyConnectedOptionsT()
    fc_opts.fusedActivationFunction = s.ActivationFunctionType.NONE
    fc.builtinOptions = fc_opts
    sm = s.OperatorT()
    sm.opcodeIndex = 1
    sm.inputs = [3]
    sm.outputs = [4]
    sm.builtinOptionsType = s.BuiltinOptions.SoftmaxOptions
    sm_opts = s.SoftmaxOptionsT()
    sm_opts.beta = 1.0
    sm.builtinOptions = sm_opts

    sg = s.SubGraphT()
    sg.tensors = tensors
    sg.inputs = [0]
    sg.outputs = [4]
    sg.operators = [fc, sm]
    sg.name = "main"

    model = s.ModelT()
    model.version = 3
    model.description = "edge-bench test dense+softmax"
    model.operatorCodes = [_opcode(s.BuiltinOperator.FULLY_CONNECTED),
                           _opcode(s.BuiltinOperator.SOFTMAX)]
    model.subgraphs = [sg]
    # buffer 0 is the conventional empty buffer; 1 is the (empty) input
    model.buffers = [_buffer(), _buffer(), _buffer(w.astype(np.float32)),
                     _buffer(b.astype(np.float32))]
    model.signatureDefs = [_signature({input_name: 0}, {output_name: 4})]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def write_dense_softmax(path: PathLike, seed: int = 0, n_in: int = N_IN, n_out: int = N_OUT,
                        dynamic_batch: bool = False) -> Path:
    """Write the dense+softmax model with `dense_softmax_weights(seed)` to `path`."""
    w, b = dense_softmax_weights(seed, n_in, n_out)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(build_dense_softmax(w, b, dynamic_batch=dynamic_batch))
    return out


def write_add_model(path: PathLike, shape: Sequence[int] = (1, 4),
                    names: Tuple[str, str, str] = ("a", "b", "sum")) -> Path:
    """Two float32 inputs `a`, `b` -> `sum` = a + b (to test multi-input eval by name)."""
    a, b, out_name = names
    tensors = [_tensor(a, shape, 0), _tensor(b, shape, 0), _tensor(out_name, shape, 0)]
    op = s.OperatorT()
    op.opcodeIndex = 0
    op.inputs = [0, 1]
    op.outputs = [2]
    op.builtinOptionsType = s.BuiltinOptions.AddOptions
    op.builtinOptions = s.AddOptionsT()
    sg = s.SubGraphT()
    sg.tensors = tensors
    sg.inputs = [0, 1]
    sg.outputs = [2]
    sg.operators = [op]
    sg.name = "main"
    model = s.ModelT()
    model.version = 3
    model.operatorCodes = [_opcode(s.BuiltinOperator.ADD)]
    model.subgraphs = [sg]
    model.buffers = [_buffer()]
    model.signatureDefs = [_signature({a: 0, b: 1}, {out_name: 2})]
    return _finish(model, path)


def write_int8_model(float_path: PathLike, out_path: PathLike, calib_x: np.ndarray,
                     input_name: str = "x") -> Path:
    """Full-integer (int8 weights and activations, int8 inputs/outputs) with ai-edge-quantizer."""
    from ai_edge_quantizer import quantizer, recipe
    qt = quantizer.Quantizer(str(float_path), recipe.static_wi8_ai8())
    cal = qt.calibrate({"serving_default": [{input_name: row[None].astype(np.float32)}
                                            for row in calib_x]})
    out = Path(out_path)
    if out.exists():
        out.unlink()
    qt.quantize(cal).export_model(str(out))
    return out
