"""The tensor rules, ONE home for host and agent (docs/protocol.md "eval"): .npz loading,
matching arrays to model inputs (tensor name, signature name, `x`, order), fitting a sample's
shape to an input, random inputs and (de)quantization. Python >= 3.8, stdlib + numpy.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

try:
    import numpy as np
except Exception:  # noqa: BLE001 - reported in hello / as NoRuntime, never a bare traceback
    np = None  # type: ignore[assignment]

from .protocol import AgentError

#: the signature whose names win when a model has several (TF's default export name)
SIGNATURE_KEY = "serving_default"


def tensor_info(detail: Dict[str, Any], sig_name: Optional[str] = None) -> Dict[str, Any]:
    scale, zero_point = detail.get("quantization", (0.0, 0)) or (0.0, 0)
    out = {"name": detail.get("name"), "shape": [int(x) for x in detail["shape"]],
           "dtype": np.dtype(detail["dtype"]).name, "scale": float(scale),
           "zero_point": int(zero_point)}
    if sig_name is not None and sig_name != out["name"]:
        out["signature_name"] = sig_name
    return out


def signature_keys(interp: Any) -> List[str]:
    """The model's SignatureDef keys in file order ([] without signatures or on old runtimes)."""
    try:
        return [str(k) for k in interp._get_full_signature_list()]
    except Exception:  # noqa: BLE001 - older runtimes: tensor names only
        return []


def default_signature(keys: List[str]) -> Optional[str]:
    """The signature used when none is chosen: serving_default, else the first; None if none."""
    return SIGNATURE_KEY if SIGNATURE_KEY in keys else (keys[0] if keys else None)


def check_signature(keys: List[str], key: Optional[str], where: str) -> None:
    """AgentError ModelLoadError naming `where`, `key` and the keys there are, if `key` is unknown."""
    if key is not None and key not in keys:
        raise AgentError("ModelLoadError", "%s has no signature %r (signatures: %s)"
                         % (where, key, ", ".join(keys) or "none"))


def signature_names(interp: Any, kind: str, key: Optional[str] = None) -> Dict[int, str]:
    """{tensor index: signature name} for inputs/outputs of signature `key`, or (None) of all
    the model's signatures, serving_default first."""
    out: Dict[int, str] = {}
    try:
        full = interp._get_full_signature_list()
        keys = [key] if key is not None else sorted(full, key=lambda k: k != SIGNATURE_KEY)
        for sig in (full[k] for k in keys):
            for name, index in (sig.get(kind) or {}).items():
                out.setdefault(int(index), str(name))
    except Exception:  # noqa: BLE001 - older runtimes: tensor names only
        pass
    return out


def _qparams(detail: Dict[str, Any]) -> Tuple[float, int]:
    scale, zero_point = detail.get("quantization", (0.0, 0)) or (0.0, 0)
    return float(scale), int(zero_point)


def model_inputs(interp: Any, key: Optional[str] = None) -> List[Dict[str, Any]]:
    """The model's input details (as the runtime gives them), each with "signature_name" (its
    name in signature `key`, or by default serving_default first; None without signatures).
    The ONE description of a model's inputs, on host and device."""
    sig = signature_names(interp, "inputs", key)
    out = []
    for d in interp.get_input_details():
        d = dict(d)
        d["signature_name"] = sig.get(int(d["index"]))
        out.append(d)
    return out


def output_details(interp: Any, key: Optional[str] = None) -> List[Dict[str, Any]]:
    """The outputs read from the model: those of signature `key` (in graph order), or all the
    graph's outputs when `key` is None."""
    details = interp.get_output_details()
    if key is None:
        return details
    wanted = set(signature_names(interp, "outputs", key))
    picked = [d for d in details if int(d["index"]) in wanted]
    if len(picked) < len(wanted):
        # the SignatureDef names tensors that are no longer graph outputs: ai-edge-quantizer
        # appends a DEQUANTIZE after a quantized output and leaves the signature pointing at
        # the int8 tensor before it. The graph's outputs are then what the model returns.
        return details
    return picked


def input_name(detail: Dict[str, Any]) -> str:
    """How an input is called to a user: its signature name, else its tensor name."""
    return str(detail.get("signature_name") or detail.get("name"))


def quantize(x: "np.ndarray", dtype: Any, scale: float, zero_point: int) -> "np.ndarray":
    """Float -> integer as LiteRT quantizes by default: rint(x / scale) + zero_point, ties to
    EVEN, clipped to the dtype. That is what the QUANTIZE op does under the runtimes' default
    op resolver (XNNPACK, on by default in ai-edge-litert, tflite-runtime and TensorFlow);
    tests/test_tensors.py checks it against a real QUANTIZE model. (TFLite's reference kernel,
    BUILTIN_REF, rounds ties away from zero; the builtin kernel without delegates is not
    consistent between signs. Ties only happen at exact half steps.) Host and agent both
    quantize with this function."""
    v = np.rint(np.asarray(x, dtype=np.float64) / scale) + zero_point
    info = np.iinfo(dtype)
    return np.clip(v, info.min, info.max).astype(dtype)


def dequantize(y: "np.ndarray", detail: Dict[str, Any]) -> "np.ndarray":
    scale, zero_point = _qparams(detail)
    if np.issubdtype(y.dtype, np.integer) and scale > 0:
        return ((y.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
                ).astype(np.float32)
    return y.astype(np.float32)


def random_input(detail: Dict[str, Any], rng: "np.random.Generator") -> "np.ndarray":
    """Seeded random data of the tensor's dtype/shape: floats in [-1, 1), ints over their range."""
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(x) for x in detail["shape"])
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype.kind in "iu":
        if dtype.itemsize <= 2:
            info = np.iinfo(dtype)
            lo, hi = int(info.min), int(info.max) + 1
        else:  # int32/int64 inputs are usually indices or lengths: keep them small
            lo, hi = 0, 100
        return rng.integers(lo, hi, size=shape, dtype=dtype)
    raise AgentError("InvokeError", "cannot make random data for input %r of dtype %s; "
                     "send an `input` file" % (detail.get("name"), dtype))


def convert_for(arr: "np.ndarray", detail: Dict[str, Any], what: str) -> "np.ndarray":
    """User data -> the input tensor's dtype (quantizing floats for quantized integer inputs)."""
    target = np.dtype(detail["dtype"])
    if arr.dtype == target:
        return arr
    scale, zero_point = _qparams(detail)
    if target.kind in "iu" and scale > 0 and arr.dtype.kind in "biuf":
        # a quantized input: data of another dtype are real values (what the fp32 reference
        # sees), quantized by value; never a raw cast of uint8/int64 numbers into int8
        return quantize(arr, target, scale, zero_point)
    if target.kind in "iu" and arr.dtype.kind == "f":
        return np.rint(arr).astype(target)
    if target.kind in "iu" and arr.dtype.kind in "biu" and arr.size:
        info = np.iinfo(target)
        if int(arr.min()) < int(info.min) or int(arr.max()) > int(info.max):
            raise AgentError("EvalDataError", "%s holds values %d..%d, outside the range of the"
                             " model input %r (%s)" % (what, int(arr.min()), int(arr.max()),
                                                        detail.get("name"), target))
    if arr.dtype.kind in "biuf" and target.kind in "biuf":
        return arr.astype(target)
    raise AgentError("EvalDataError", "%s has dtype %s, the model input %r wants %s"
                     % (what, arr.dtype, detail.get("name"), target))


#: how the files numpy reads begin: .npz (a zip), .npy, a pickle (protocol 2+)
NUMPY_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY", b"\x80")


def not_numpy(path: Any) -> Optional[str]:
    """What a file given as .npz/.npy data is instead, when it is plainly not one: empty, a
    text file (with its first line), other bytes. None when it may be one (numpy decides);
    numpy would call a text file "pickled (object) data"."""
    try:
        if hasattr(path, "read"):   # an open file (read through a checked descriptor)
            pos = path.tell()
            head = path.read(4096)
            path.seek(pos)
        else:
            with open(path, "rb") as f:
                head = f.read(4096)
    except (OSError, ValueError):
        return None   # numpy's own error names the problem
    if not head:
        return "is empty"
    if head.startswith(NUMPY_MAGIC):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text.rstrip("\x00")):
        first = text.splitlines()[0] if text.splitlines() else ""
        first = first if len(first) <= 60 else first[:60] + "..."
        return "is a text file (its first line: %r), not NumPy data" % first
    return "is not NumPy data (it begins with bytes %s)" % head[:8].hex()


def load_npz(path: Any, what: str, name: Optional[str] = None) -> Dict[str, "np.ndarray"]:
    """{name: array} of an .npz (a path or a file object; no pickles); AgentError
    EvalDataError naming the file (`name`, else `path`)."""
    other = not_numpy(path)
    if other:
        raise AgentError("EvalDataError", "%s file %s %s: expected an .npz of plain arrays"
                         % (what, name or path, other))
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except Exception as e:  # noqa: BLE001 - zipfile.BadZipFile, ValueError (pickles), OSError
        raise AgentError("EvalDataError", "%s file %s is not a readable .npz of plain arrays: "
                         "%s: %s" % (what, name or path, type(e).__name__, e))


def load_npy(path: Any, what: str) -> "np.ndarray":
    """The array of an .npy (no pickles); AgentError EvalDataError naming the file."""
    other = not_numpy(path)
    if other:
        raise AgentError("EvalDataError", "%s file %s %s: expected an .npy of a plain array"
                         % (what, path, other))
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except Exception as e:  # noqa: BLE001
        raise AgentError("EvalDataError", "%s file %s is not a readable .npy of a plain array: "
                         "%s: %s" % (what, path, type(e).__name__, e))


def _expected(detail: Dict[str, Any]) -> str:
    sig = detail.get("shape_signature")
    shape = [int(x) for x in (sig if sig is not None and len(sig) else detail["shape"])]
    return "[N, %s] (one sample %s) %s" % (", ".join(str(x) for x in shape[1:]) or "...",
                                           shape, np.dtype(detail["dtype"]).name)


def match_keys(data: Dict[str, Any], inputs: List[Dict[str, Any]], what: str) -> List[str]:
    """The key in `data` for each model input (model_inputs()): its tensor name, its signature
    name, `x` for a one-input model, or the only array of a one-input model. AgentError
    EvalDataError naming the input otherwise. Other keys (labels `y`) are not looked at."""
    keys: List[str] = []
    for d in inputs:
        names = [d.get("name"), d.get("signature_name")]
        if len(inputs) == 1:
            names.append("x")
        found = next((n for n in names if n is not None and n in data), None)
        if found is None and len(inputs) == 1 and len(data) == 1:
            found = next(iter(data))
        if found is None:
            raise AgentError("EvalDataError", "%s has no array for model input %r (expected %s);"
                             " arrays in the file: %s" % (what, input_name(d), _expected(d),
                                                          sorted(data)))
        keys.append(found)
    return keys


def match_arrays(data: Dict[str, "np.ndarray"], inputs: List[Dict[str, Any]],
                 what: str) -> List["np.ndarray"]:
    """The array for each model input (match_keys), checked to hold >= 1 sample each and the
    same number of samples."""
    arrays: List["np.ndarray"] = []
    for d, key in zip(inputs, match_keys(data, inputs, what)):
        found = np.asarray(data[key])
        if found.ndim == 0 or found.shape[0] == 0:
            raise AgentError("EvalDataError", "%s array for input %r is empty or a scalar "
                             "(shape %s); expected %s" % (what, input_name(d),
                                                          list(found.shape), _expected(d)))
        arrays.append(found)
    counts = sorted(set(int(a.shape[0]) for a in arrays))
    if len(counts) > 1:
        raise AgentError("EvalDataError", "%s arrays have different sample counts %s"
                         % (what, counts))
    return arrays


def fit_shape(sample_shape: Tuple[int, ...], detail: Dict[str, Any]) -> Optional[List[int]]:
    """The batch-1 tensor shape that feeds one sample, honouring -1 dims; None if impossible."""
    sig = detail.get("shape_signature")
    sig = [int(x) for x in (sig if sig is not None and len(sig) else detail["shape"])]
    for cand in ([1] + list(sample_shape), list(sample_shape)):
        if len(cand) == len(sig) and all(s == -1 or s == c for s, c in zip(sig, cand)):
            if sig and sig[0] in (-1, 1) and cand[0] == 1:
                return cand
            if sig and sig[0] not in (-1, 1) and cand[0] == sig[0]:
                return cand
    return None


def sample_for(arr: "np.ndarray", i: int, detail: Dict[str, Any], what: str
               ) -> Tuple["np.ndarray", List[int]]:
    """(sample i converted to the input dtype and reshaped for batch 1, tensor shape it needs)."""
    sample = arr[i]
    shape = fit_shape(tuple(int(x) for x in sample.shape), detail)
    if shape is None:
        raise AgentError("EvalDataError", "%s array for input %r has samples of shape %s; "
                         "expected %s" % (what, detail.get("name"), list(sample.shape),
                                          _expected(detail)))
    return convert_for(np.ascontiguousarray(sample).reshape(shape), detail, what), shape
