"""Build small float .tflite models without TensorFlow.

Uses the flatbuffer object API that ai-edge-litert ships (`ai_edge_litert.schema_py_generated`).
Only what the built-in models need: FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D (all with fused
RELU / RELU6), AVERAGE_POOL_2D, MEAN, RESHAPE, SOFTMAX, ADD. The model gets one subgraph and a
SignatureDef ``serving_default`` whose input/output names are the tensor names (ai-edge-quantizer
calibrates through the signature).

Example::

    b = ModelBuilder("tiny")
    x = b.input("pixels", [1, 64])
    h = b.fully_connected(x, w1, b1, activation="relu")      # w1: [out, in]
    y = b.softmax(b.fully_connected(h, w2, b2))
    b.output(y, "probabilities")
    Path("tiny.tflite").write_bytes(b.build())

Layouts follow TFLite: activations NHWC, CONV_2D weights [out, kh, kw, in], DEPTHWISE_CONV_2D
weights [1, kh, kw, channels], FULLY_CONNECTED weights [out, in]. The output is deterministic:
the same calls give the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
SIGNATURE_KEY = "serving_default"

_ACTIVATIONS = {
    None: schema.ActivationFunctionType.NONE,
    "none": schema.ActivationFunctionType.NONE,
    "relu": schema.ActivationFunctionType.RELU,
    "relu6": schema.ActivationFunctionType.RELU6,
}
_PADDING = {"same": schema.Padding.SAME, "valid": schema.Padding.VALID}
_DTYPES = {
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int64): schema.TensorType.INT64,
}


class _AlignedBufferT(schema.BufferT):
    """A Buffer whose data vector is 16-byte aligned (as the TFLite converter writes them)."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (flatbuffers naming)
        data_off = None
        if self.data is not None:
            raw = np.ascontiguousarray(self.data).view(np.uint8).ravel()
            builder.StartVector(1, raw.size, 16)
            builder.head = builder.head - raw.size
            builder.Bytes[builder.head:builder.head + raw.size] = raw.tobytes()
            builder.vectorNumElems = raw.size
            data_off = builder.EndVector()
        schema.BufferStart(builder)
        if data_off is not None:
            schema.BufferAddData(builder, data_off)
        return schema.BufferEnd(builder)


@dataclass
class _Tensor:
    index: int
    name: str
    shape: Tuple[int, ...]
    dtype: np.dtype


def _conv_out(size: int, k: int, stride: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - k) // stride + 1


class ModelBuilder:
    """Accumulates tensors and operators of a single-subgraph float model."""

    def __init__(self, description: str = "edge-bench") -> None:
        self.description = description
        self._tensors: List[schema.TensorT] = []
        self._shapes: List[_Tensor] = []
        self._buffers: List[schema.BufferT] = [schema.BufferT()]  # buffer 0: the empty sentinel
        self._opcodes: List[Tuple[int, int]] = []  # (builtin code, version)
        self._operators: List[schema.OperatorT] = []
        self._inputs: List[int] = []
        self._outputs: List[int] = []
        self._names: Dict[str, int] = {}
        self._counter = 0

    # ---- tensors ---------------------------------------------------------------------------
    def _unique(self, name: str) -> str:
        if name not in self._names:
            return name
        i = 1
        while f"{name}_{i}" in self._names:
            i += 1
        return f"{name}_{i}"

    def _tensor(self, name: str, shape: Sequence[int], dtype=np.float32,
                data: Optional[np.ndarray] = None) -> int:
        dtype = np.dtype(dtype)
        if dtype not in _DTYPES:
            raise ValueError(f"unsupported tensor dtype {dtype}")
        name = self._unique(name)
        buf = _AlignedBufferT()
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype).reshape(tuple(shape)))
            buf.data = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        self._buffers.append(buf)
        t = schema.TensorT()
        t.shape = [int(s) for s in shape]
        t.type = _DTYPES[dtype]
        t.buffer = len(self._buffers) - 1
        t.name = name
        t.hasRank = True
        self._tensors.append(t)
        idx = len(self._tensors) - 1
        self._shapes.append(_Tensor(idx, name, tuple(int(s) for s in shape), dtype))
        self._names[name] = idx
        return idx

    def shape(self, tensor: int) -> Tuple[int, ...]:
        return self._shapes[tensor].shape

    def input(self, name: str, shape: Sequence[int], dtype=np.float32) -> int:
        idx = self._tensor(name, shape, dtype)
        self._inputs.append(idx)
        return idx

    def const(self, name: str, array: np.ndarray, dtype=None) -> int:
        array = np.asarray(array)
        return self._tensor(name, array.shape, dtype or array.dtype, data=array)

    def output(self, tensor: int, name: Optional[str] = None) -> int:
        """Mark `tensor` as a model output (renamed to `name`, which is also its signature name)."""
        if name and name != self._shapes[tensor].name:
            if name in self._names:
                raise ValueError(f"tensor name {name!r} already used")
            del self._names[self._shapes[tensor].name]
            self._names[name] = tensor
            self._shapes[tensor].name = name
            self._tensors[tensor].name = name
        self._outputs.append(tensor)
        return tensor

    def _tmp(self, op: str, shape: Sequence[int]) -> int:
        self._counter += 1
        return self._tensor(f"{op.lower()}_{self._counter}", shape)

    # ---- operators -------------------------------------------------------------------------
    def _op(self, code: int, inputs: Sequence[int], outputs: Sequence[int],
            options_type: int = schema.BuiltinOptions.NONE, options=None, version: int = 1) -> None:
        key = (code, version)
        if key not in self._opcodes:
            self._opcodes.append(key)
        op = schema.OperatorT()
        op.opcodeIndex = self._opcodes.index(key)
        op.inputs = list(inputs)
        op.outputs = list(outputs)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        self._operators.append(op)

    def fully_connected(self, x: int, weights: np.ndarray, bias: Optional[np.ndarray] = None,
                        activation: Optional[str] = None, name: str = "dense") -> int:
        weights = np.asarray(weights, np.float32)
        out_dim, in_dim = weights.shape
        xs = self.shape(x)
        if xs[-1] != in_dim:
            raise ValueError(f"fully_connected: input has {xs[-1]} features, weights expect {in_dim}")
        w = self.const(f"{name}/kernel", weights)
        ins = [w]
        if bias is not None:
            ins.append(self.const(f"{name}/bias", np.asarray(bias, np.float32).reshape(out_dim)))
        else:
            ins.append(-1)
        batch = int(np.prod(xs[:-1]))
        y = self._tensor(f"{name}/out", [batch, out_dim])
        opts = schema.FullyConnectedOptionsT()
        opts.fusedActivationFunction = _ACTIVATIONS[activation]
        self._op(schema.BuiltinOperator.FULLY_CONNECTED, [x] + ins, [y],
                 schema.BuiltinOptions.FullyConnectedOptions, opts)
        return y

    def conv2d(self, x: int, weights: np.ndarray, bias: Optional[np.ndarray] = None,
               stride: int = 1, padding: str = "same", activation: Optional[str] = None,
               name: str = "conv") -> int:
        weights = np.asarray(weights, np.float32)
        cout, kh, kw, cin = weights.shape
        n, h, w_, c = self.shape(x)
        if c != cin:
            raise ValueError(f"conv2d: input has {c} channels, weights expect {cin}")
        wt = self.const(f"{name}/kernel", weights)
        bt = self.const(f"{name}/bias", np.zeros(cout, np.float32) if bias is None
                        else np.asarray(bias, np.float32))
        y = self._tensor(f"{name}/out", [n, _conv_out(h, kh, stride, padding),
                                          _conv_out(w_, kw, stride, padding), cout])
        opts = schema.Conv2DOptionsT()
        opts.padding = _PADDING[padding]
        opts.strideH = opts.strideW = stride
        opts.dilationHFactor = opts.dilationWFactor = 1
        opts.fusedActivationFunction = _ACTIVATIONS[activation]
        self._op(schema.BuiltinOperator.CONV_2D, [x, wt, bt], [y],
                 schema.BuiltinOptions.Conv2DOptions, opts)
        return y

    def depthwise_conv2d(self, x: int, weights: np.ndarray, bias: Optional[np.ndarray] = None,
                         stride: int = 1, padding: str = "same",
                         activation: Optional[str] = None, name: str = "dwconv") -> int:
        weights = np.asarray(weights, np.float32)
        one, kh, kw, cout = weights.shape
        n, h, w_, c = self.shape(x)
        if one != 1 or cout % c:
            raise ValueError(f"depthwise_conv2d: weights {weights.shape} do not fit {c} channels")
        wt = self.const(f"{name}/kernel", weights)
        bt = self.const(f"{name}/bias", np.zeros(cout, np.float32) if bias is None
                        else np.asarray(bias, np.float32))
        y = self._tensor(f"{name}/out", [n, _conv_out(h, kh, stride, padding),
                                          _conv_out(w_, kw, stride, padding), cout])
        opts = schema.DepthwiseConv2DOptionsT()
        opts.padding = _PADDING[padding]
        opts.strideH = opts.strideW = stride
        opts.depthMultiplier = cout // c
        opts.dilationHFactor = opts.dilationWFactor = 1
        opts.fusedActivationFunction = _ACTIVATIONS[activation]
        self._op(schema.BuiltinOperator.DEPTHWISE_CONV_2D, [x, wt, bt], [y],
                 schema.BuiltinOptions.DepthwiseConv2DOptions, opts)
        return y

    def average_pool2d(self, x: int, size: int, stride: Optional[int] = None,
                       padding: str = "valid") -> int:
        stride = stride or size
        n, h, w, c = self.shape(x)
        y = self._tmp("avgpool", [n, _conv_out(h, size, stride, padding),
                                  _conv_out(w, size, stride, padding), c])
        opts = schema.Pool2DOptionsT()
        opts.padding = _PADDING[padding]
        opts.strideH = opts.strideW = stride
        opts.filterHeight = opts.filterWidth = size
        self._op(schema.BuiltinOperator.AVERAGE_POOL_2D, [x], [y],
                 schema.BuiltinOptions.Pool2DOptions, opts)
        return y

    def mean(self, x: int, axes: Sequence[int], keepdims: bool = False) -> int:
        shape = self.shape(x)
        axes = sorted(a % len(shape) for a in axes)
        out = [d if i not in axes else 1 for i, d in enumerate(shape)] if keepdims else \
            [d for i, d in enumerate(shape) if i not in axes]
        self._counter += 1
        ax = self.const(f"mean_{self._counter}/axes", np.asarray(axes, np.int32))
        y = self._tmp("mean", out)
        opts = schema.ReducerOptionsT()
        opts.keepDims = keepdims
        self._op(schema.BuiltinOperator.MEAN, [x, ax], [y], schema.BuiltinOptions.ReducerOptions,
                 opts)
        return y

    def reshape(self, x: int, shape: Sequence[int]) -> int:
        shape = [int(s) for s in shape]
        if int(np.prod(shape)) != int(np.prod(self.shape(x))):
            raise ValueError(f"reshape: {self.shape(x)} -> {shape} changes the element count")
        self._counter += 1
        st = self.const(f"reshape_{self._counter}/shape", np.asarray(shape, np.int32))
        y = self._tmp("reshape", shape)
        opts = schema.ReshapeOptionsT()
        opts.newShape = list(shape)
        self._op(schema.BuiltinOperator.RESHAPE, [x, st], [y], schema.BuiltinOptions.ReshapeOptions,
                 opts)
        return y

    def softmax(self, x: int, beta: float = 1.0) -> int:
        y = self._tmp("softmax", self.shape(x))
        opts = schema.SoftmaxOptionsT()
        opts.beta = float(beta)
        self._op(schema.BuiltinOperator.SOFTMAX, [x], [y], schema.BuiltinOptions.SoftmaxOptions,
                 opts)
        return y

    def add(self, a: int, b: int, activation: Optional[str] = None) -> int:
        if self.shape(a) != self.shape(b):
            raise ValueError(f"add: shapes {self.shape(a)} and {self.shape(b)} differ")
        y = self._tmp("add", self.shape(a))
        opts = schema.AddOptionsT()
        opts.fusedActivationFunction = _ACTIVATIONS[activation]
        self._op(schema.BuiltinOperator.ADD, [a, b], [y], schema.BuiltinOptions.AddOptions, opts)
        return y

    # ---- serialization ---------------------------------------------------------------------
    def model(self) -> schema.ModelT:
        if not self._inputs or not self._outputs:
            raise ValueError("a model needs at least one input and one output")
        sub = schema.SubGraphT()
        sub.tensors = self._tensors
        sub.inputs = list(self._inputs)
        sub.outputs = list(self._outputs)
        sub.operators = self._operators
        sub.name = "main"

        codes = []
        for code, version in self._opcodes:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            codes.append(oc)

        sig = schema.SignatureDefT()
        sig.signatureKey = SIGNATURE_KEY
        sig.subgraphIndex = 0
        sig.inputs, sig.outputs = [], []
        for idx in self._inputs:
            m = schema.TensorMapT()
            m.name, m.tensorIndex = self._shapes[idx].name, idx
            sig.inputs.append(m)
        for idx in self._outputs:
            m = schema.TensorMapT()
            m.name, m.tensorIndex = self._shapes[idx].name, idx
            sig.outputs.append(m)

        model = schema.ModelT()
        model.version = SCHEMA_VERSION
        model.description = self.description
        model.operatorCodes = codes
        model.subgraphs = [sub]
        model.buffers = self._buffers
        model.signatureDefs = [sig]
        return model

    def build(self) -> bytes:
        """Serialize to .tflite bytes (flatbuffer with the "TFL3" file identifier)."""
        fbb = flatbuffers.Builder(1 << 16)
        fbb.Finish(self.model().Pack(fbb), file_identifier=FILE_IDENTIFIER)
        return bytes(fbb.Output())
