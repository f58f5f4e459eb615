"""Quantized variants of a float .tflite model, made with ai-edge-quantizer (no TensorFlow).

Variants (`VARIANTS`, in display order) and the ai-edge-quantizer recipe behind each:

=============  ==================================================================================
fp32           the float model itself (copied, not re-written)
fp16           weight-only, float16 weights (FLOAT_CASTING algorithm); compute stays float32
dynamic-int8   dynamic range: int8 per-channel weights, activations quantized at run time
int8           full integer: int8 weights + int8 activations; NEEDS CALIBRATION DATA; the model's
               inputs/outputs become int8 (feed quantized inputs, dequantize outputs)
int16x8        int8 weights + int16 activations; NEEDS CALIBRATION DATA; int16 inputs/outputs
weight-int8    weight-only int8 (explicit DEQUANTIZE before the float op)
weight-int4    weight-only int4 (explicit DEQUANTIZE); below 8 bits accuracy must be watched
=============  ==================================================================================

Calibration data (`load_calibration`): a .npz (keys = input names, or `x` for a single-input
model), a .npy (single-input model), or a folder of .npy files (file stem = input name, or
numbered samples `0.npy, 1.npy, ...` for a single-input model). Arrays hold N samples:
[N, *input_shape[1:]] when the model's batch dimension is 1 (or [N, *input_shape]). The special
value "random" makes random data and warns (CalibrationWarning) that accuracy is meaningless.

Quantized files are cached (`cached_variant`) under `$EDGE_BENCH_CACHE/quantized` (default
`~/.cache/edge-bench/quantized`), keyed by model sha256, variant, calibration sha256 and the
ai-edge-quantizer version; written to a temp file and renamed, so concurrent runs are safe.
"""
from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import EdgeBenchError, ModelError, UsageError, VariantSkipped
from ..hashing import sha256_bytes, sha256_file
from ..quiet import quiet, take_failure_output
from .modelinfo import InputSpec, check_tflite, model_inputs
from .modelinfo import interpreter as load_interpreter
from .quantcache import cache_get_or_make, default_cache_dir, write_atomic
from .variants import (MIXED_VARIANTS, STATIC_VARIANTS, VARIANTS, QuantizeResult,
                       needs_calibration, parse_variants)
from edge_bench_agent import tensors

RECIPES: Dict[str, str] = {
    "fp32": "none (float model as given)",
    "fp16": "weight-only fp16 (float_casting, 16-bit float weights, float compute)",
    "dynamic-int8": "dynamic_wi8_afp32 (int8 per-channel weights, dynamic int8 activations)",
    "int8": "static_wi8_ai8 (int8 per-channel weights, int8 activations, calibrated)",
    "int16x8": "static_wi8_ai16 (int8 per-channel weights, int16 activations, calibrated)",
    "weight-int8": "weight_only_wi8_afp32 (int8 weights dequantized to float)",
    "weight-int4": "weight_only_wi4_afp32 (int4 weights dequantized to float)",
    "int8-mixed": "static_wi8_ai8 with the fewest sensitive ops kept float (models/mixed.py)",
}

RANDOM = "random"
RANDOM_SAMPLES = 8
SIGNATURE_KEY = "serving_default"


class CalibrationWarning(UserWarning):
    """Calibration data is random: the quantized model's accuracy means nothing."""


# ---- model checks ------------------------------------------------------------------------------
def model_ops(model_path: Union[str, Path]) -> List[str]:
    """Builtin op names used by the model (e.g. ["FULLY_CONNECTED", "SOFTMAX"])."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    try:
        buf = Path(model_path).read_bytes()
    except OSError as e:
        raise ModelError(f"model file {model_path} cannot be read: {e.strerror or e}") from e
    try:
        model = schema.Model.GetRootAs(buf, 0)
        ops = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            custom = oc.CustomCode()
            ops.append(names.get(code, custom.decode("utf-8", "replace") if custom else str(code)))
    except Exception as e:  # noqa: BLE001 - struct.error / IndexError from a cut flatbuffer
        raise ModelError(f"{model_path} is truncated or corrupt (its flatbuffer cannot be"
                         f" read: {str(e)[:120]})",
                         hint="copy or download the model again") from e
    return ops


def _recipe(variant: str):
    from ai_edge_quantizer import recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    if variant == "fp16":
        rm = recipe_manager.RecipeManager()
        rm.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED,
                                  num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
        return rm.get_quantization_recipe()
    return {
        "dynamic-int8": recipe.dynamic_wi8_afp32,
        "int8": recipe.static_wi8_ai8,
        "int16x8": recipe.static_wi8_ai16,
        "weight-int8": recipe.weight_only_wi8_afp32,
        "weight-int4": recipe.weight_only_wi4_afp32,
    }[variant]()


# ---- calibration -------------------------------------------------------------------------------
def _sample_shape(spec: InputSpec) -> Tuple[int, ...]:
    return spec.shape[1:] if spec.shape and spec.shape[0] == 1 else spec.shape


def _fit(arr: np.ndarray, spec: InputSpec, source: str, array_name: str,
         single_sample: bool = False) -> np.ndarray:
    """Check one array against an input; return it as [N, *sample_shape] of the input's dtype.
    A sample fits the input as the agent feeds it (edge_bench_agent.tensors.fit_shape)."""
    sample = _sample_shape(spec)
    arr = np.asarray(arr)
    want = f"[N, {', '.join(map(str, sample))}] {spec.dtype}"
    got = f"{list(arr.shape)} {arr.dtype}"
    if single_sample:
        arr = arr.reshape((1,) + arr.shape)
    fitted = (tensors.fit_shape(tuple(int(x) for x in arr.shape[1:]), spec.detail)
              if arr.ndim >= 1 and arr.shape[0] > 0 else None)
    if fitted is None or tuple(fitted[1:] if fitted[:1] == [1] else fitted) != tuple(sample):
        raise UsageError(f"calibration {source}: array {array_name!r} for input {spec.name!r} has "
                         f"shape {got}, expected {want} (model input shape {list(spec.shape)})")
    arr = arr.reshape((arr.shape[0],) + tuple(sample))
    if np.issubdtype(spec.dtype, np.floating):
        if not np.issubdtype(arr.dtype, np.floating):
            raise UsageError(
                f"calibration {source}: array {array_name!r} for input {spec.name!r} is {got}, "
                f"expected {want}",
                hint="float inputs need float data scaled the way the model expects "
                     "(e.g. uint8 images must be converted)")
    elif np.issubdtype(spec.dtype, np.integer) or spec.dtype == np.bool_:
        if arr.dtype != spec.dtype and not np.can_cast(arr.dtype, spec.dtype, "same_kind"):
            raise UsageError(f"calibration {source}: array {array_name!r} for input "
                             f"{spec.name!r} is {got}, expected {want}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise UsageError(f"calibration {source}: array {array_name!r} contains NaN or inf")
    return np.ascontiguousarray(arr.astype(spec.dtype, copy=False))


def _match(arrays: Dict[str, np.ndarray], specs: List[InputSpec], source: str,
           single_sample: bool = False) -> Dict[str, np.ndarray]:
    """{signature input name: [N, *sample] array}: arrays matched to inputs by the agent's rule
    (edge_bench_agent.tensors.match_keys); for calibration every array must match an input."""
    try:
        keys = tensors.match_keys(arrays, [s.detail for s in specs], f"calibration {source}")
    except tensors.AgentError as e:
        raise UsageError(e.message, hint="name the arrays after the model inputs: "
                                         + ", ".join(s.name for s in specs)) from None
    unused = [k for k in arrays if k not in keys]
    if unused:
        raise UsageError(f"calibration {source}: array(s) {', '.join(unused)} match no model input",
                         hint="model inputs: " + ", ".join(s.name for s in specs))
    out = {spec.name: _fit(arrays[key], spec, source, key, single_sample)
           for spec, key in zip(specs, keys)}
    counts = {k: len(v) for k, v in out.items()}
    if len(set(counts.values())) > 1:
        raise UsageError(f"calibration {source}: inputs have different sample counts {counts}")
    return out


def _load_npz(path: Path) -> Dict[str, np.ndarray]:
    from .datafiles import check_data_file
    check_data_file(path, "calibration file")
    try:
        return tensors.load_npz(path, "calibration")
    except tensors.AgentError as e:
        raise UsageError(e.message) from None


def _load_npy(path: Path) -> np.ndarray:
    from .datafiles import check_data_file
    check_data_file(path, "calibration file")
    try:
        return tensors.load_npy(path, "calibration")
    except tensors.AgentError as e:
        raise UsageError(e.message) from None


def random_calibration(specs: List[InputSpec], n: int = RANDOM_SAMPLES,
                       seed: int = 0) -> Dict[str, np.ndarray]:
    """Deterministic random data for every input, by the agent's rule (one home for it): floats
    uniform in [-1, 1), small integer types over their range, int32/int64 in [0, 100), bools
    0/1; dynamic (-1) dims are 1. An input no rule fits (e.g. strings) -> ModelError."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        shape = (n,) + tuple(1 if d < 0 else d for d in _sample_shape(s))
        try:
            out[s.name] = tensors.random_input({"name": s.name, "dtype": s.dtype,
                                                "shape": shape}, rng)
        except Exception as e:  # noqa: BLE001 - the agent's own error type
            raise ModelError(f"cannot make random data for input {s.name!r} ({s.dtype}): "
                             f"{getattr(e, 'message', e)}",
                             hint="pass --calibration FILE / --eval FILE with real inputs")
    return out


def load_calibration(source: Union[str, Path], model_path: Union[str, Path],
                     signature: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Load calibration samples for `model_path`: {input name: array [N, *sample shape]}.

    `source` is a .npz, a .npy, a folder of .npy files, or "random" (warns CalibrationWarning).
    Wrong shape/dtype/name -> UsageError naming the file, the array, expected and got.
    Inputs are named by SignatureDef `signature` (None: serving_default, else the first)."""
    specs = model_inputs(model_path, signature)
    if str(source) == RANDOM:
        warnings.warn("calibration data is RANDOM: int8/int16x8 accuracy will be meaningless; "
                      "pass --calibration FILE with real samples", CalibrationWarning, stacklevel=2)
        return random_calibration(specs)
    p = Path(source).expanduser()
    if not p.exists():
        raise UsageError(f"calibration file {p} does not exist")
    if p.is_dir():
        files = sorted(p.glob("*.npy"))
        if not files:
            raise UsageError(f"calibration folder {p} contains no .npy files")
        stems = [f.stem for f in files]
        names = {s.name for s in specs} | {s.tensor_name for s in specs}
        if all(st in names for st in stems) or len(specs) > 1:
            return _match({f.stem: _load_npy(f) for f in files}, specs, f"folder {p}")
        # numbered samples of a single-input model: one sample per file
        def order(f: Path):
            return (0, int(f.stem), "") if f.stem.isdigit() else (1, 0, f.stem)
        samples = []
        for f in sorted(files, key=order):
            samples.append(_match({f.stem: _load_npy(f)}, specs, f"file {f}",
                                  single_sample=True)[specs[0].name])
        return {specs[0].name: np.concatenate(samples, axis=0)}
    if p.suffix == ".npz":
        return _match(_load_npz(p), specs, f"file {p}")
    if p.suffix == ".npy":
        if len(specs) != 1:
            raise UsageError(f"calibration file {p}: a .npy holds one array but the model has "
                             f"{len(specs)} inputs ({', '.join(s.name for s in specs)})",
                             hint="use a .npz with one array per input name")
        return _match({p.stem: _load_npy(p)}, specs, f"file {p}")
    raise UsageError(f"calibration file {p}: unsupported type (use .npz, .npy, a folder of .npy, "
                     f"or 'random')")


def calibration_sha256(source: Union[None, str, Path]) -> str:
    """Content hash of a calibration source ("none" / "random" / sha256 of file or folder)."""
    if source is None:
        return "none"
    if str(source) == RANDOM:
        return RANDOM
    p = Path(source).expanduser()
    if p.is_dir():
        parts = [f"{f.name}:{sha256_file(f)}" for f in sorted(p.glob("*.npy"))]
        return sha256_bytes("\n".join(parts).encode())
    if not p.exists():
        raise UsageError(f"calibration file {p} does not exist")
    return sha256_file(p)


# ---- quantization ------------------------------------------------------------------------------
def _op_in_message(msg: str, ops: Sequence[str]) -> Optional[str]:
    for word in re.findall(r"\b[A-Z][A-Z0-9_]{1,}\b", msg):
        if word in ops:
            return word
    return None


@contextlib.contextmanager
def _quiet():
    """ai-edge-quantizer prints progress bars/reports and warns about debugging options."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        with quiet("ai-edge-quantizer"):
            yield


def _describe(variant: str, calibration: Optional[Dict[str, np.ndarray]],
              calibration_label: Optional[str]) -> str:
    desc = RECIPES[variant]
    if variant in STATIC_VARIANTS and calibration:
        n = len(next(iter(calibration.values())))
        desc += f"; {n} calibration samples" + (f" ({calibration_label})" if calibration_label
                                                 else "")
    return desc


def _run_quantizer(model_path: Path, variant: str,
                   calibration: Optional[Dict[str, np.ndarray]],
                   signature: Optional[str] = None) -> bytes:
    """Run ai-edge-quantizer, calibrating through SignatureDef `signature` (None:
    serving_default, else the first); returns the quantized flatbuffer (raises whatever it
    raises)."""
    from ai_edge_quantizer import quantizer

    with _quiet():
        qt = quantizer.Quantizer(str(model_path), _recipe(variant))
        cal = None
        if qt.need_calibration:
            n = len(next(iter(calibration.values())))
            samples = [{name: arr[i:i + 1] for name, arr in calibration.items()} for i in range(n)]
            from .repair import signature_key
            key = signature_key(Path(model_path).read_bytes(), signature) or SIGNATURE_KEY
            cal = qt.calibrate({key: samples}, num_threads=max(1, os.cpu_count() or 1))
        result = qt.quantize(cal, enable_progress_report=False)
    return bytes(result.quantized_model)


def host_cannot_run(model_path: Union[str, Path]) -> Optional[str]:
    """Why the host's LiteRT cannot run the model (e.g. a custom op it lacks), or None."""
    try:
        load_interpreter(model_path)
    except ModelError as e:
        m = re.search(r"custom op:? ?'?([A-Za-z0-9_]+)", str(e))
        return f"custom op {m.group(1)}" if m else str(e)
    return None


def quantize_model(model_path: Union[str, Path], variant: str, out_path: Union[str, Path],
                   calibration: Union[None, str, Path, Dict[str, np.ndarray]] = None,
                   signature: Optional[str] = None,
                   accuracy_target: Optional[float] = None) -> QuantizeResult:
    """Write `variant` of the float model at `model_path` to `out_path`.

    `calibration`: a dict from load_calibration, or a path / "random" to load. Required for
    int8 / int16x8 (UsageError otherwise). Quantizer failures -> ModelError naming the variant
    (and the op when the message names one). The written file is loaded once in LiteRT."""
    model_path = check_tflite(model_path)
    variant = parse_variants(variant)[0] if variant not in VARIANTS else variant
    out_path = Path(out_path)
    mixed = None
    label = None
    if variant == "fp32":
        if out_path.resolve() != model_path.resolve():
            out_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(out_path, model_path.read_bytes())
        return _result(variant, out_path, RECIPES[variant])
    unrunnable = host_cannot_run(model_path)
    if variant in STATIC_VARIANTS:
        if calibration is None:
            raise needs_calibration(variant)
        if unrunnable:
            raise VariantSkipped(variant, f"calibration runs the model on this host, whose LiteRT "
                                          f"cannot run it ({unrunnable})")
        if not isinstance(calibration, dict):
            from .imagedata import display_name
            label = "random" if str(calibration) == RANDOM else display_name(calibration)
            calibration = load_calibration(calibration, model_path, signature)
    else:
        calibration = None
    ops = model_ops(model_path)
    quantized_ops = sorted({"QUANTIZE", "DEQUANTIZE"} & set(ops))
    int_inputs = [f"{i.name} ({i.dtype})" for i in ([] if unrunnable else model_inputs(model_path))
                  if i.dtype in (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.uint8))]
    if quantized_ops or int_inputs:
        why = (f"it has {'/'.join(quantized_ops)} ops" if quantized_ops
               else f"its inputs are integer: {', '.join(int_inputs)}")
        raise VariantSkipped(variant, f"{model_path.name} is already quantized ({why})",
                             hint="variants are made from a float model: quantize that one, or "
                                  "time this file as given (variant `given`)")
    try:
        if variant in MIXED_VARIANTS:  # int8 with a few sensitive ops kept float (mixed.py)
            from .mixed import DEFAULT_TARGET_DB, make_mixed
            from .repair import signature_key
            with _quiet():
                data, mixed = make_mixed(
                    model_path, calibration,
                    signature_key(model_path.read_bytes(), signature) or SIGNATURE_KEY,
                    signature, DEFAULT_TARGET_DB if accuracy_target is None else accuracy_target)
        else:
            data = _run_quantizer(model_path, variant, calibration, signature)
    except EdgeBenchError:
        raise
    except Exception as e:  # the quantizer raises ValueError/RuntimeError/KeyError/...
        msg = " ".join(str(e).split()) or type(e).__name__
        flow = [o for o in ("IF", "WHILE", "CALL_ONCE") if o in ops]
        if flow and variant in STATIC_VARIANTS and "tensor_name_to_qsv" in msg:
            raise VariantSkipped(variant, f"{model_path.name} has control flow ({'/'.join(flow)} "
                                          "op): ai-edge-quantizer calibrates only the main graph,"
                                          f" and {variant} needs ranges for the tensors of the "
                                          "subgraphs it runs", hint="the dynamic-int8 and "
                                          "weight-only variants need no calibration") from e
        op = _op_in_message(msg, ops)
        where = f" (op {op})" if op else ""
        said = take_failure_output(max_lines=3).replace("\n", " | ")
        raise ModelError(f"variant {variant} of {model_path.name} failed{where}: {msg}",
                         hint=f"model ops: {', '.join(ops)}"
                         + (f"; the quantizer printed: {said}" if said else "")) from e
    from .variant_check import check_changed
    check_changed(variant, model_path.name, model_path.read_bytes(), data)
    write_atomic(out_path, data)
    if unrunnable:  # the device runs it (or names the op it lacks); the host cannot load it
        return _result(variant, out_path, _describe(variant, calibration, label))
    e = unloadable(out_path)
    if e is not None:
        op = _op_in_message(str(e), model_ops(model_path) + ["QUANTIZE", "DEQUANTIZE"])
        where = f" (op {op})" if op else ""
        raise ModelError(f"variant {variant} of {model_path.name}: the quantized model does not "
                         f"load in LiteRT{where}: {e}") from e
    if mixed is not None:  # which ops stayed float, and why
        return _result(variant, out_path, mixed.describe() + (f" ({label})" if label else "")
                       )._replace(recipe=mixed.to_json())
    return _result(variant, out_path, _describe(variant, calibration, label))


def unloadable(path: Path) -> Optional[ModelError]:
    """None when LiteRT loads the file just made at `path`; else the file is removed (never
    served from the cache) and the reason returned, for the caller to name the variant."""
    try:
        load_interpreter(path)
    except ModelError as e:
        with contextlib.suppress(OSError):
            path.unlink()
        return e
    return None


def _result(variant: str, path: Path, desc: str, cached: bool = False) -> QuantizeResult:
    return QuantizeResult(variant, path, path.stat().st_size, sha256_file(path), desc, cached)


# ---- cache (quantcache.py keeps the files) ----------------------------------------------------
def _quantizer_version() -> str:
    try:
        from importlib.metadata import version
        return version("ai-edge-quantizer")
    except Exception:  # pragma: no cover
        return "unknown"


def cached_variant(model_path: Union[str, Path], variant: str,
                   calibration: Union[None, str, Path] = None,
                   cache_dir: Union[None, str, Path] = None,
                   signature: Optional[str] = None,
                   accuracy_target: Optional[float] = None) -> QuantizeResult:
    """`variant` of the model from the cache, quantizing on a miss.

    Key: (model sha256, variant, calibration sha256, ai-edge-quantizer version); calibration only
    counts for int8/int16x8. fp32 returns the model file itself. Files are written to a temp name
    and renamed, so parallel runs never see a half-written model."""
    model_path = check_tflite(model_path)
    variant = parse_variants(variant)[0]
    if variant == "fp32":
        return _result(variant, model_path, RECIPES[variant])
    if variant in STATIC_VARIANTS and calibration is None:
        raise needs_calibration(variant)
    model_sha = sha256_file(model_path)
    calib_sha = calibration_sha256(calibration) if variant in STATIC_VARIANTS else "none"
    # the calibrating signature counts only for a calibrated variant, and only when it is not
    # the model's default one (the same file whether the default was named or left out)
    sig = ""
    if signature and variant in STATIC_VARIANTS:
        from .repair import signature_key
        if signature != signature_key(Path(model_path).read_bytes()):
            sig = f"|{signature}"
    if variant in MIXED_VARIANTS:
        from .mixed import DEFAULT_TARGET_DB, SEARCH_VERSION
        target = DEFAULT_TARGET_DB if accuracy_target is None else accuracy_target
        sig += f"|target={target:g}|search={SEARCH_VERSION}"
    key = sha256_bytes(f"{model_sha}|{variant}|{calib_sha}|{_quantizer_version()}{sig}"
                       .encode())[:24]
    base = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    out = base / model_sha[:16] / f"{variant}-{key}.tflite"
    return cache_get_or_make(
        out, lambda tmp: quantize_model(model_path, variant, tmp, calibration, signature,
                                        accuracy_target),
        {"model_sha256": model_sha, "variant": variant, "calibration_sha256": calib_sha,
         "quantizer": _quantizer_version()})
