"""The quantize service: resolve the model (built-in, .tflite, Keras/SavedModel), load the
calibration once, and write one file per variant into a folder; a failed variant is a row with
its error, the others are still made."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..errors import EdgeBenchError, UsageError, VariantSkipped
from ..models.variants import PT2E_STATIC, STATIC_VARIANTS

STATIC = STATIC_VARIANTS | PT2E_STATIC  # the variants that need calibration data


def resolve_model(spec: str) -> Tuple[Path, Optional[Path], str]:
    from ..models.builtin import is_builtin, resolve
    from ..models.quantize import check_tflite
    from ..models.tf_convert import is_tf_model
    from ..models.pytorch import is_torch_model

    if is_torch_model(spec):  # converted by dispatch.float_model (litert-torch)
        from ..models.pytorch.source import stem_of
        cal = None
        if is_builtin(spec):
            from ..models.builtin.torch_models import resolve_torch
            cal = resolve_torch(spec).calibration
        return spec, cal, stem_of(spec)  # type: ignore[return-value]
    if is_builtin(spec):
        m = resolve(spec)
        return m.path, m.calibration, spec.split(":", 1)[1]
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(f"model file {path} does not exist",
                         hint="give a .tflite path or builtin:digits / builtin:mobilenet")
    if not is_tf_model(path):
        check_tflite(path)
    return path, None, path.stem


@dataclass
class QuantizeJob:
    """What `edge-bench quantize` will make, with the calibration already loaded."""
    variants: List[str]
    model_path: Path                   # the float .tflite (converted from Keras/SavedModel)
    source: Any                        # the Keras/SavedModel path or TorchModel, or None
    quantizer: str
    stem: str
    out_dir: Path
    calibration: Optional[Dict[str, np.ndarray]] = None
    calibration_source: Optional[str] = None   # "random data" or the path
    warnings: List[str] = field(default_factory=list)
    derived_from: Optional[str] = None         # how the fp32 baseline was derived (wild .tflite)
    signature: Optional[str] = None            # the SignatureDef calibration goes through
    name: str = ""                             # the model as the user named it
    accuracy_target: Optional[float] = None    # int8-mixed's output SNR target (dB)
    calibration_file: Optional[str] = None     # what was loaded (a folder of images: its .npz)

    def user_text(self, text: str) -> str:
        """`text` naming the model as the user did, not the derived baseline in the cache."""
        from ..fleet.plan import rename_files
        if not self.name or Path(self.name).expanduser() == self.model_path:
            return text
        return rename_files(text, {str(self.model_path), self.model_path.name},
                            f"{self.name} (derived fp32)")

    @property
    def calibration_samples(self) -> int:
        return len(next(iter(self.calibration.values()))) if self.calibration else 0


def _sized(model_path: Path, key: Optional[str], input_shape: Optional[List[str]],
           calibration: Optional[str], name: str, derived: Optional[str]
           ) -> Tuple[Path, Optional[str]]:
    """The float model with its dynamic input dims sized (models/shapes.py), and its recipe."""
    from ..models.shapes import (cannot_guess, choose_shapes, describe, parse_input_shapes,
                                 pin_shapes)
    flags = parse_input_shapes(input_shape)
    shapes, how = choose_shapes(model_path, key, flags, [calibration], name)
    problem = cannot_guess(model_path, key, shapes, name)
    if problem:
        raise UsageError(problem)
    if not shapes:
        return model_path, derived
    text = (derived + "; " if derived else f"float32 baseline: {model_path.name} with ") + \
        describe(how)
    return pin_shapes(model_path, shapes), text


def prepare(model: str, variants: str, quantizer: str, calibration: Optional[str],
            output: str, signature: Optional[str] = None,
            input_shape: Optional[List[str]] = None, images: Any = None,
            accuracy_target: Optional[float] = None) -> QuantizeJob:
    """Check everything and load the calibration, before any variant is made. `signature`:
    the SignatureDef to calibrate through (default: serving_default, else the first);
    `input_shape`: --input-shape values (the size of dynamic dims, models/shapes.py);
    `images`: how a folder of images is normalized (imagedata.ImageOptions);
    `accuracy_target`: int8-mixed's output SNR target (dB)."""
    from ..fleet.plan import choose_signature
    from ..models.dispatch import (check_quantizer, float_model, main_quantizer,
                                   parse_quantizers, route_variants)
    from ..models.quantize import RANDOM, CalibrationWarning, load_calibration
    from ..models.variants import VARIANTS, parse_variants

    names = list(VARIANTS) if variants.strip().lower() == "all" else parse_variants(variants)
    quantizers = parse_quantizers(quantizer)
    names = route_variants(names, quantizers)  # pt2e: pt2e-int8, ...
    model_path, builtin_calib, stem = resolve_model(model)
    given = model_path if isinstance(model_path, Path) else None   # its metadata, for images
    model_path, source = float_model(model_path)  # Keras/SavedModel/PyTorch -> fp32 .tflite
    key = choose_signature(model_path, signature)
    for q in quantizers:
        check_quantizer(q, source, model)
    derived = None
    if source is None:  # a .tflite from the wild -> its float32 baseline (or itself)
        from ..models.baseline import model_baseline
        base = model_baseline(model_path)
        model_path, derived = base.path, (base.recipe() if base.derived else None)
    from ..models.imagedata import folder_as_npz  # a folder of images -> an .npz of the input
    calib_src = folder_as_npz(calibration, model_path, key, images, "--calibration",
                              given) or builtin_calib
    model_path, derived = _sized(model_path, key, input_shape,
                                 None if calib_src is None else str(calib_src), model, derived)
    job = QuantizeJob(names, model_path, source, main_quantizer(quantizers), stem,
                      Path(output).expanduser(), derived_from=derived, signature=key,
                      name=model)
    job.accuracy_target = accuracy_target
    job.calibration_file = None if calib_src is None else str(calib_src)
    if job.out_dir.exists() and not job.out_dir.is_dir():
        raise UsageError(f"output {job.out_dir} exists and is not a folder")
    job.out_dir.mkdir(parents=True, exist_ok=True)
    qat = getattr(source, "qat", None) is not None  # a QAT model brings its own int8 ranges
    static = [v for v in names if v in STATIC and not (qat and v in PT2E_STATIC)]
    if static:
        if calib_src is None:
            raise UsageError(f"variant(s) {', '.join(static)} need calibration data",
                             hint="pass --calibration FILE (.npz/.npy/folder of .npy) or "
                                  "--calibration random (accuracy will be meaningless)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CalibrationWarning)
            job.calibration = load_calibration(calib_src, model_path, key)
        job.warnings = [str(w.message) for w in caught]
        from ..models.imagedata import describe
        how = describe(calib_src) if calib_src != calibration else None
        job.calibration_source = ("random data" if str(calib_src) == RANDOM else
                                  f"{calibration} ({how})" if how else str(calib_src))
    return job


def make_variants(job: QuantizeJob, on_error: Callable[[str, EdgeBenchError], None]
                  ) -> Tuple[List[Dict[str, Any]], int]:
    """(one row per variant, how many failed). `on_error(variant, error)` as each one fails."""
    from ..models.dispatch import make_variant
    fp32_bytes = job.model_path.stat().st_size
    rows: List[Dict[str, Any]] = []
    failed = 0
    for v in job.variants:
        out = job.out_dir / f"{job.stem}-{v}.tflite"
        try:
            res = make_variant(job.model_path, v, out,
                               job.calibration if v in STATIC else None,
                               quantizer=job.quantizer, source=job.source,
                               signature=job.signature, accuracy_target=job.accuracy_target)
            if res.recipe is not None:  # int8-mixed: which ops stayed float, reproducible
                import json
                out.with_suffix(".recipe.json").write_text(json.dumps(res.recipe, indent=1))
            rows.append({"variant": v, "bytes": res.bytes, "ratio": res.bytes / fp32_bytes,
                         "recipe": res.recipe_description, "error": None, "path": str(out)})
        except VariantSkipped as e:  # deliberate (already quantized, custom op): not a failure
            rows.append({"variant": v, "bytes": None, "ratio": None, "recipe": "",
                         "error": job.user_text(str(e)), "path": None, "skipped": True})
        except EdgeBenchError as e:
            failed += 1
            rows.append({"variant": v, "bytes": None, "ratio": None, "recipe": "",
                         "error": job.user_text(str(e)), "path": None})
            on_error(v, e)
    return rows, failed
