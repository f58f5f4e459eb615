"""PyTorch -> .tflite with litert-torch: the float model, and PyTorch's own PT2E quantization.

Variants of the `pt2e` route (`RECIPES`); their result names carry the route (`pt2e-int8`) so
that a table or a comparison never mixes them up with ai-edge-quantizer's `int8`:

==================  ===============================================================================
fp32                litert_torch.convert(model, example_inputs): the float model (shared by routes)
pt2e-int8           static: PT2EQuantizer(symmetric per-channel int8 weights, int8 activations
                    from HistogramObserver over the calibration set), prepare_pt2e, calibrate,
                    convert_pt2e, litert_torch.convert(quant_config=...): int8 model inputs/outputs
pt2e-dynamic-int8   dynamic: int8 per-channel weights, activations quantized at run time (no
                    calibration), float inputs/outputs
==================  ===============================================================================

A QAT-prepared model (a factory returning what `prepare_qat_pt2e` made, fine-tuned; qat.py):
`fp32` is its float network without fake-quantize, and `pt2e-int8` is the QAT model itself
through convert_pt2e (the ranges it learned; no calibration) and litert-torch.

Files are cached like every other variant (quantize.cache_get_or_make), under
`$EDGE_BENCH_CACHE/quantized/torch-<model sha256>`, keyed by (model content sha256, variant,
calibration sha256, torch and litert-torch versions). litert-torch's progress lines and the
converter's C++ logging are captured and shown only when a conversion fails.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ...errors import EdgeBenchError, ModelError
from ...hashing import sha256_bytes, sha256_file
from ...quiet import captured_output, noise_free
from .source import (TorchModel, export_failure, import_torch, load_torch_model,
                     positional_arrays, sample_args)

ROUTE = "pt2e"
PREFIX = ROUTE + "-"
RECIPES: Dict[str, str] = {
    "fp32": "litert-torch convert (float model)",
    "int8": "PT2E static: int8 per-channel weights, int8 activations (HistogramObserver), "
            "litert-torch",
    "dynamic-int8": "PT2E dynamic: int8 per-channel weights, activations quantized at run "
                    "time, litert-torch",
}
QAT_RECIPE = ("PT2E QAT: the model's own fake-quantize ranges and fine-tuned weights "
              "(prepare_qat_pt2e), convert_pt2e, litert-torch; int8 per-channel weights, "
              "int8 activations")
#: base variants (without the `pt2e-` prefix) the route offers besides fp32
SUPPORTED = ("int8", "dynamic-int8")
STATIC = frozenset({"int8"})


def versions() -> str:
    from importlib.metadata import version
    parts = []
    for dist in ("torch", "litert-torch", "torchao"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except Exception:  # noqa: BLE001 - not installed
            parts.append(f"{dist} -")
    return ", ".join(parts)


def base_variant(variant: str) -> str:
    """`pt2e-int8` -> `int8`; other names unchanged."""
    return variant[len(PREFIX):] if variant.startswith(PREFIX) else variant


def _quantizer(static: bool) -> Any:
    from litert_torch.quantize import pt2e_quantizer as pq
    cfg = pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=not static)
    return pq.PT2EQuantizer().set_global(cfg)


def _torch_samples(model: TorchModel, calibration: Dict[str, np.ndarray]) -> list:
    """Calibration arrays (by signature name args_i, or the one input) -> tuples of tensors."""
    arrays = positional_arrays(model, calibration, "calibration")
    return [sample_args(model, arrays, i) for i in range(len(arrays[0]))]


def _convert(model: TorchModel, variant: str, out_path: Path,
             calibration: Optional[Dict[str, np.ndarray]]) -> int:
    """Run litert-torch (after PT2E for quantized variants); write the flatbuffer; return the
    number of calibration samples used."""
    torch = import_torch()

    n_cal = 0
    with captured_output("litert-torch") as log:
        err: Optional[BaseException] = None
        stage = "litert-torch conversion"
        try:
            import litert_torch
            from litert_torch.quantize.quant_config import QuantConfig
            if variant == "fp32":
                edge = litert_torch.convert(model.module(), model.example_inputs)
            elif variant in STATIC and model.qat is not None:
                stage = f"PT2E QAT {variant}"
                from . import qat
                g = qat.converted(model.qat)
                stage = f"litert-torch conversion of PT2E QAT {variant}"
                edge = litert_torch.convert(g, model.example_inputs,
                                            quant_config=QuantConfig(pt2e_quantizer=qat.quantizer()))
            else:
                from torchao.quantization.pt2e import quantize_pt2e
                stage = f"PT2E {variant}"
                static = variant in STATIC
                q = _quantizer(static)
                g = quantize_pt2e.prepare_pt2e(model.module(), q)
                # observers only see what runs through them: without a pass, the weight
                # observers of a dynamic model keep their defaults and the int8 weights are
                # garbage (constant outputs; measured). Dynamic: the example inputs suffice.
                samples = (_torch_samples(model, calibration or {}) if static
                           else [model.example_inputs])
                with torch.no_grad():
                    for args in samples:
                        g(*args)
                n_cal = len(samples) if static else 0
                g = quantize_pt2e.convert_pt2e(g, fold_quantize=False)
                stage = f"litert-torch conversion of PT2E {variant}"
                edge = litert_torch.convert(g, model.example_inputs,
                                            quant_config=QuantConfig(pt2e_quantizer=q))
            data = edge.model_content() if hasattr(edge, "model_content") else None
            if data is None:
                edge.export(str(out_path))
            else:
                from ..quantcache import write_atomic
                write_atomic(out_path, bytes(data))
        except EdgeBenchError:
            raise
        except Exception as e:  # noqa: BLE001 - torch/litert-torch raise anything
            err = e
    if err is not None:
        detail = noise_free(log[0]) if log else ""
        e2 = export_failure(model.name, err, stage)
        if detail and not e2.hint:
            e2.hint = detail
        raise e2 from err
    return n_cal


def convert(model: Union[str, TorchModel], variant: str, out_path: Union[str, Path],
            calibration: Union[None, str, Path, Dict[str, np.ndarray]] = None,
            float_model: Union[None, str, Path] = None):
    """Write `variant` (fp32, or pt2e-int8 / pt2e-dynamic-int8, with or without the prefix) of the PyTorch model to `out_path`; the file is loaded once in LiteRT.

    `calibration` (pt2e-int8): a dict from quantize.load_calibration, or a path/"random" loaded
    against `float_model` (the fp32 .tflite of this model)."""
    from ..quantize import load_calibration, unloadable
    from ..variants import QuantizeResult, needs_calibration

    tm = model if isinstance(model, TorchModel) else load_torch_model(model)
    base = base_variant(variant)
    if base not in ("fp32",) + SUPPORTED:
        raise ModelError(f"variant {variant} is not offered by the PT2E route "
                         f"(it has: fp32, {', '.join(PREFIX + v for v in SUPPORTED)})",
                         hint="use --quantizer ai-edge-quantizer for fp16, int16x8 and "
                              "weight-only variants")
    out_path = Path(out_path)
    if base in STATIC and tm.qat is None and calibration is None:  # QAT brings its own ranges
        raise needs_calibration(variant)
    # what the variant is made from and checked against: this model's fp32 conversion
    fm = None if base == "fp32" else (float_model if float_model is not None
                                      else cached_convert(tm, "fp32").path)
    cal = None
    if base in STATIC and tm.qat is None:
        cal = calibration if isinstance(calibration, dict) else load_calibration(calibration, fm)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n_cal = _convert(tm, base, out_path, cal)
    try:
        e = unloadable(out_path)
        if e is not None:
            raise ModelError(f"{variant} of {tm.name}: the converted model does not load in "
                             f"LiteRT: {e}") from e
        if fm is not None:   # no silent no-op: the same rule as ai-edge-quantizer's variants
            from ..variant_check import check_changed
            check_changed(base, tm.name, Path(fm).read_bytes(), out_path.read_bytes(),
                          shown=PREFIX + base, smaller=False)
    except ModelError:
        out_path.unlink(missing_ok=True)   # no file under a variant's name that is not one
        raise
    desc = (QAT_RECIPE if base in STATIC and tm.qat is not None
            else RECIPES[base] + (f"; {n_cal} calibration samples" if n_cal else ""))
    name = base if base == "fp32" else PREFIX + base
    return QuantizeResult(name, out_path, out_path.stat().st_size, sha256_file(out_path), desc)


def cached_convert(model: Union[str, TorchModel], variant: str,
                   calibration: Union[None, str, Path] = None,
                   cache_dir: Union[None, str, Path] = None,
                   float_model: Union[None, str, Path] = None):
    """`variant` of the PyTorch model from the cache, converting on a miss. Key: (model content
    sha256, variant, calibration sha256 for pt2e-int8 of a float model, torch + litert-torch
    versions)."""
    from ..quantcache import cache_get_or_make, default_cache_dir
    from ..quantize import calibration_sha256
    from ..variants import needs_calibration

    tm = model if isinstance(model, TorchModel) else load_torch_model(model)
    base = base_variant(variant)
    calibrated = base in STATIC and tm.qat is None  # a QAT model brings its own ranges
    if calibrated and calibration is None:
        raise needs_calibration(variant)
    calib_sha = calibration_sha256(calibration) if calibrated else "none"
    ver = versions()
    key = sha256_bytes(f"{tm.sha256}|{base}|{calib_sha}|{ROUTE}|{ver}".encode())[:24]
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    out = root / f"torch-{tm.sha256[:16]}" / f"{base}-{key}.tflite"

    def make(tmp: str):
        fm = float_model
        if calibrated and fm is None:
            fm = cached_convert(tm, "fp32", None, cache_dir).path
        return convert(tm, base, tmp, calibration, fm)

    return cache_get_or_make(out, make, {
        "source_sha256": tm.sha256, "source": tm.name, "variant": base if base == "fp32"
        else PREFIX + base, "calibration_sha256": calib_sha, "quantizer": ROUTE,
        "versions": ver})


def torch_float_model(name: str, cache_dir: Union[None, str, Path] = None):
    """(fp32 .tflite path, TorchModel) of a PyTorch model: loaded once, converted (cached)."""
    tm = load_torch_model(name)
    return Path(cached_convert(tm, "fp32", None, cache_dir).path), tm
