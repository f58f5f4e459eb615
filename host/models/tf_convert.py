"""Keras / SavedModel input converted with tf.lite.TFLiteConverter (the optional `[tf]` extra).

`edge-bench quantize|run --quantizer tflite-converter` makes the variants with TensorFlow's own
converter instead of ai-edge-quantizer, so the two can be compared on the same model. Input: a
Keras model file (.keras, .h5/.hdf5) or a SavedModel folder (with saved_model.pb). The variant
names are the same; the converter settings behind each (`RECIPES`):

=============  ==================================================================================
fp32           no optimization (the float model)
fp16           Optimize.DEFAULT + target_spec.supported_types = [float16] (fp16 weights)
dynamic-int8   Optimize.DEFAULT, no representative dataset (dynamic range: int8 weights)
int8           Optimize.DEFAULT + representative dataset + TFLITE_BUILTINS_INT8, int8 model
               inputs/outputs (like ai-edge-quantizer's static recipe)       needs calibration
int16x8        Optimize.DEFAULT + representative dataset +
               EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, int16 inputs/outputs
=============  ==================================================================================

weight-int8 and weight-int4 have no converter equivalent (the converter has no weight-only
recipe with explicit DEQUANTIZE, nor 4-bit weights) and fail with a message pointing to
ai-edge-quantizer; the other variants still run.

Calibration data is loaded exactly like ai-edge-quantizer's (`quantize.load_calibration`, matched
to the inputs of the converter's own fp32 model) and fed as the representative dataset, one
sample at a time, keyed by the signature's input names.

With `--quantizer ai-edge-quantizer` (the default) a Keras/SavedModel input is converted to fp32
here and then quantized by ai-edge-quantizer.

TensorFlow is imported lazily, only when a conversion is needed; without it the error says
`pip install 'edge-bench[tf]'`. Converted files are cached like quantized ones, under
`$EDGE_BENCH_CACHE/quantized/tf-<source sha256>`, keyed by (source sha256, variant, calibration
sha256, "tflite-converter", TensorFlow version). The converter's Python and C++ chatter (it
prints to the process's stdout, which would corrupt `--json -`) is captured and shown only when
the conversion fails.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict, Union

import numpy as np

from ..errors import ModelError, UsageError
from ..hashing import sha256_bytes, sha256_file
from ..quiet import captured_output, noise_free
from .quantcache import cache_get_or_make, default_cache_dir, write_atomic
from .quantize import calibration_sha256, load_calibration, unloadable
from .variants import QuantizeResult, needs_calibration, parse_variants

QUANTIZER = "tflite-converter"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
INSTALL_HINT = "pip install 'edge-bench[tf]', or pip install tensorflow-cpu"

RECIPES: Dict[str, str] = {
    "fp32": "TFLiteConverter, no optimization (float model)",
    "fp16": "TFLiteConverter Optimize.DEFAULT + supported_types=[float16] (fp16 weights)",
    "dynamic-int8": "TFLiteConverter Optimize.DEFAULT (dynamic range: int8 weights)",
    "int8": "TFLiteConverter Optimize.DEFAULT + representative dataset + TFLITE_BUILTINS_INT8, "
            "int8 inputs/outputs",
    "int16x8": "TFLiteConverter Optimize.DEFAULT + representative dataset + "
               "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, int16 inputs/outputs",
}
SUPPORTED = tuple(RECIPES)
STATIC = frozenset({"int8", "int16x8"})


def is_tf_model(path: Union[str, Path]) -> bool:
    """A Keras model file (.keras/.h5/.hdf5) or a SavedModel folder. Never imports TensorFlow."""
    p = Path(path).expanduser()
    if p.is_dir():
        return (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file()
    return p.suffix.lower() in KERAS_SUFFIXES and p.is_file()


def import_tf():
    """`tensorflow`, or UsageError saying how to install it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:
        raise UsageError(f"Keras/SavedModel models and --quantizer {QUANTIZER} need TensorFlow, "
                         f"which is not installed ({e})", hint=INSTALL_HINT) from e
    return tf


def tf_version() -> str:
    try:
        from importlib.metadata import version
    except ImportError:  # pragma: no cover
        return "unknown"
    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            return version(dist)
        except Exception:
            continue
    return "unknown"


def source_sha256(path: Union[str, Path]) -> str:
    """sha256 of a Keras file, or of a SavedModel folder (relative paths + file hashes)."""
    p = Path(path).expanduser()
    if p.is_dir():
        parts = [f"{f.relative_to(p).as_posix()}:{sha256_file(f)}"
                 for f in sorted(p.rglob("*")) if f.is_file()]
        return sha256_bytes("\n".join(parts).encode())
    return sha256_file(p)


def _converter(tf, source: Path):
    if source.is_dir():
        return tf.lite.TFLiteConverter.from_saved_model(str(source.resolve()))
    model = tf.keras.models.load_model(str(source.resolve()), compile=False)
    return tf.lite.TFLiteConverter.from_keras_model(model)


def _unsupported(variant: str) -> ModelError:
    return ModelError(f"variant {variant} is not offered by the TFLite converter "
                      f"(it has: {', '.join(SUPPORTED)})",
                      hint="use --quantizer ai-edge-quantizer for weight-only int8/int4")


def convert(source: Union[str, Path], variant: str, out_path: Union[str, Path],
            calibration: Union[None, str, Path, Dict[str, np.ndarray]] = None,
            float_model: Union[None, str, Path] = None) -> QuantizeResult:
    """Write `variant` of the Keras/SavedModel `source` to `out_path` with TFLiteConverter.

    `calibration` (int8/int16x8 only): a dict from quantize.load_calibration or a path/"random"
    to load against `float_model` (this converter's fp32 .tflite of `source`; converted first
    when not given). The written file is loaded once in LiteRT."""
    source = Path(source).expanduser()
    if not is_tf_model(source):
        raise UsageError(f"{source} is not a Keras model (.keras/.h5) or a SavedModel folder",
                         hint=f"--quantizer {QUANTIZER} converts Keras/SavedModel models")
    variant = parse_variants(variant)[0]
    if variant not in SUPPORTED:
        raise _unsupported(variant)
    out_path = Path(out_path)
    with captured_output("TFLiteConverter"):  # TF's import prints oneDNN/CPU notices (C++)
        tf = import_tf()
    rep = None
    n_cal = 0
    if variant in STATIC:
        if calibration is None:
            raise needs_calibration(variant)
        if not isinstance(calibration, dict):
            if float_model is None:
                with tempfile.TemporaryDirectory() as d:
                    fm = Path(d) / "fp32.tflite"
                    convert(source, "fp32", fm)
                    calibration = load_calibration(calibration, fm)
            else:
                calibration = load_calibration(calibration, float_model)
        cal = {k: np.asarray(v) for k, v in calibration.items()}
        n_cal = len(next(iter(cal.values())))

        def rep():
            for i in range(n_cal):
                yield {name: arr[i:i + 1] for name, arr in cal.items()}

    with captured_output("TFLiteConverter") as log:
        try:
            conv = _converter(tf, source)
            if variant != "fp32":
                conv.optimizations = [tf.lite.Optimize.DEFAULT]
            if variant == "fp16":
                conv.target_spec.supported_types = [tf.float16]
            elif variant == "int8":
                conv.representative_dataset = rep
                conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                conv.inference_input_type = tf.int8
                conv.inference_output_type = tf.int8
            elif variant == "int16x8":
                conv.representative_dataset = rep
                conv.target_spec.supported_ops = [
                    tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
                conv.inference_input_type = tf.int16
                conv.inference_output_type = tf.int16
            data = conv.convert()
            err = None
        except Exception as e:  # the converter raises ConverterError, ValueError, OSError, ...
            err = e
    if err is not None:
        msg = " ".join(str(err).split())[:1500] or type(err).__name__
        detail = noise_free(log[0]) if log else ""
        raise ModelError(f"variant {variant} of {source.name}: TFLiteConverter failed: {msg}"
                         + (f"\nconverter output:\n{detail}" if detail and detail not in msg
                            else "")) from err
    write_atomic(out_path, bytes(data))
    e = unloadable(out_path)
    if e is not None:
        raise ModelError(f"variant {variant} of {source.name}: the converted model does not load "
                         f"in LiteRT: {e}") from e
    desc = RECIPES[variant] + (f"; {n_cal} calibration samples" if n_cal else "")
    return QuantizeResult(variant, out_path, out_path.stat().st_size, sha256_file(out_path), desc)


def cached_convert(source: Union[str, Path], variant: str,
                   calibration: Union[None, str, Path] = None,
                   cache_dir: Union[None, str, Path] = None,
                   float_model: Union[None, str, Path] = None) -> QuantizeResult:
    """`variant` of `source` from the cache, converting on a miss. Key: (source sha256, variant,
    calibration sha256 for int8/int16x8, "tflite-converter", TensorFlow version)."""
    source = Path(source).expanduser()
    variant = parse_variants(variant)[0]
    if variant not in SUPPORTED:
        raise _unsupported(variant)
    if variant in STATIC and calibration is None:
        raise needs_calibration(variant)
    if not is_tf_model(source):
        raise UsageError(f"{source} is not a Keras model (.keras/.h5) or a SavedModel folder")
    src_sha = source_sha256(source)
    calib_sha = calibration_sha256(calibration) if variant in STATIC else "none"
    key = sha256_bytes(f"{src_sha}|{variant}|{calib_sha}|{QUANTIZER}|{tf_version()}"
                       .encode())[:24]
    base = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    out = base / f"tf-{src_sha[:16]}" / f"{variant}-{key}.tflite"

    def make(tmp: str) -> QuantizeResult:
        fm = float_model
        if variant in STATIC and fm is None:
            fm = cached_convert(source, "fp32", None, cache_dir).path
        return convert(source, variant, tmp, calibration, fm)

    return cache_get_or_make(out, make, {
        "source_sha256": src_sha, "variant": variant, "calibration_sha256": calib_sha,
        "quantizer": QUANTIZER, "tensorflow": tf_version()})
