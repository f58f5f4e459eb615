"""`edge-bench explain MODEL --variant int8 [--calibration DIR|FILE]`: which ops lose the accuracy.

The variant (made or taken from the cache like `run` and `quantize` make it) and the fp32 model
run on the calibration samples in the host's LiteRT, every intermediate tensor kept; each op's
output is compared with fp32's by tensor name (models/explain.py). The table lists the ops
that lose the most, in 80 columns; --json writes every op.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from .data_options import add_accuracy_target, add_image_options

HELP = "compare a quantized variant with fp32 op by op: which ops lose the accuracy"

DESCRIPTION = """\
Run fp32 and a quantized variant of a model on the calibration samples (at most 16) with every
intermediate tensor kept, and compare each op's output by tensor name. Columns:

  snr     the op's output vs fp32 (the error accumulated up to and including this op)
  lost    SNR the op itself loses: its worst input's SNR minus its output's
  grid    fp32's output rounded to the variant's integer grid (scale, zero point) vs itself:
          low when the calibrated range does not fit the values (clipped, or
          stretched by outliers)
  (dB; "exact" when identical). Ops are ranked by `lost`.
"""

EPILOG = """\
examples:
  edge-bench explain model.tflite --variant int8 --calibration photos/
  edge-bench explain builtin:digits --variant int8 --json -
  edge-bench explain model.tflite --variant int8-mixed --calibration photos/ --top 30
"""

WIDTH = 80


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("explain", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="float .tflite file or builtin:NAME")
    p.add_argument("--variant", default="int8",
                   help="the quantized variant to explain (default: int8; also int16x8,"
                        " int8-mixed, dynamic-int8, weight-int8, ...)")
    p.add_argument("--calibration", metavar="DIR|FILE|random", default=None,
                   help="samples to compare on, also the calibration of static variants: a"
                        " folder of images, .npz, .npy, folder of .npy, or random (built-in"
                        " models bring their own)")
    p.add_argument("--signature", default=None, metavar="KEY",
                   help="the SignatureDef to use (default: serving_default, else the first)")
    add_image_options(p)
    add_accuracy_target(p)
    p.add_argument("--top", type=int, default=15, metavar="N",
                   help="ops to list in the terminal (default: 15; --json has all)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the comparison (- for"
                                                                " stdout)")
    p.set_defaults(func=run)


def explain_variant(model: str, variant: str, calibration: Optional[str],
                    signature: Optional[str] = None, images: Any = None,
                    accuracy_target: Optional[float] = None) -> Dict[str, Any]:
    """The comparison as a JSON-able dict (schema edge-bench/explain/1)."""
    import tempfile
    import warnings

    from ..app.quantize import prepare
    from ..errors import UsageError
    from ..models.dispatch import make_variant
    from ..models.explain import explain
    from ..models.quantize import CalibrationWarning, load_calibration
    from ..models.variants import parse_variants
    from ..models.variants import STATIC_VARIANTS
    v = parse_variants(variant)[0]
    if v == "fp32":
        raise UsageError("--variant fp32 is the reference itself", hint="e.g. --variant int8")
    with tempfile.TemporaryDirectory(prefix="edge-bench-explain-") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)   # said once, below
            job = prepare(model, v, "ai-edge-quantizer", calibration, tmp, signature,
                          images=images, accuracy_target=accuracy_target)
            if job.calibration is None:   # a variant that needs none: samples to compare on
                src = job.calibration_file
                if src is None:
                    raise UsageError(f"explain {model}: no samples to compare on",
                                     hint="pass --calibration DIR|FILE (or random)")
                job.calibration = load_calibration(src, job.model_path, job.signature)
                job.calibration_source = calibration or src
        res = make_variant(job.model_path, v, None,
                           job.calibration_file if v in STATIC_VARIANTS else None,
                           signature=job.signature, accuracy_target=accuracy_target)
        expl = explain(job.model_path, res.path, job.calibration, job.signature)
    warnings_out = list(job.warnings)
    src = str(job.calibration_source)
    if Path(src).is_file():     # a built-in's calibration file: its name says enough
        src = Path(src).name
    return {"schema": "edge-bench/explain/1", "model": model, "variant": v,
            "variant_bytes": res.bytes, "fp32_bytes": job.model_path.stat().st_size,
            "recipe": res.recipe_description, "samples_from": src,
            "warnings": warnings_out, **expl.to_json(),
            **({"mixed": res.recipe} if res.recipe else {})}


def _db(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "exact" if v >= 119.99 else f"{v:.1f}"


def format_table(doc: Dict[str, Any], top: int, width: int = WIDTH) -> List[str]:
    """The terminal lines (none wider than `width`)."""
    from ..render.visible import visible

    def fit(s: str) -> str:
        s = visible(s)  # tensor and file names: untrusted text, the project's one display rule
        return s if len(s) <= width else s[:width - 3] + "..."
    ratio = doc["variant_bytes"] / doc["fp32_bytes"] if doc["fp32_bytes"] else math.nan
    name = doc["model"] if str(doc["model"]).startswith("builtin:") else Path(doc["model"]).name
    lines = [fit(f"{name} {doc['variant']} vs fp32: output SNR"
                 f" {_db(doc['output_snr_db'])} dB, {ratio:.2f}x the fp32 size"),
             fit("per output: " + ", ".join(f"{o['name']} {_db(o['snr_db'])} dB"
                                            for o in doc.get("outputs") or [])),
             fit(f"samples: {doc['samples']} of {doc['samples_from']}"),
             fit(f"ops compared: {doc['ops_compared']} of {doc['ops_total']}; the"
                 f" {min(top, len(doc['ops']))} that lose the most:"),
             f"{'#':>4}  {'op':<22}{'snr':>7}{'lost':>7}{'grid':>7}  output tensor"]
    for o in doc["ops"][:top]:
        lines.append(fit(f"{o['index']:>4}  {o['op'][:22]:<22}{_db(o['snr_db']):>7}"
                         f"{_db(o['loss_db']):>7}{_db(o['grid_db']):>7}  {o['output']}"))
    for w in doc.get("warnings") or []:
        lines.append(fit(f"warning: {w}"))
    if doc.get("mixed"):
        lines.append(fit(f"int8-mixed kept {len(doc['mixed']['float_ops'])} op(s) float:"
                         + "".join(f" #{f['index']} {f['op']}"
                                   for f in doc["mixed"]["float_ops"])))
    return lines


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..models.imagedata import ImageOptions
    if args.top < 1:
        raise UsageError(f"--top {args.top}: expected a number >= 1")
    doc = explain_variant(args.model, args.variant, args.calibration, args.signature,
                          ImageOptions(args.input_range, args.mean, args.std),
                          args.accuracy_target)
    if args.json:
        text = json.dumps(doc, indent=1) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
            return 0
        Path(args.json).write_text(text)
    for line in format_table(doc, args.top):
        print(line)
    return 0
