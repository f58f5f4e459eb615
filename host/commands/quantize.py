"""`edge-bench quantize MODEL --variants ... [--calibration FILE|random] -o DIR`"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List


DESCRIPTION = """\
Write one .tflite per quantization variant of a float TFLite model, using ai-edge-quantizer
(no TensorFlow needed), and print each variant's size, ratio to fp32 and the recipe used.

variants:
  fp32          the float model as given
  fp16          float16 weights (weight-only), float compute
  dynamic-int8  int8 weights, activations quantized at run time
  int8          full integer (int8 weights + activations, int8 model I/O)   needs calibration
  int16x8       int8 weights + int16 activations (int16 model I/O)          needs calibration
  weight-int8   int8 weights dequantized to float
  weight-int4   int4 weights dequantized to float (watch the accuracy)

int8-mixed (not part of `all`; needs calibration): int8 with the fewest sensitive ops kept
float until every output's SNR vs fp32 reaches --accuracy-target; which ops and why are in
its recipe, also written as MODEL-int8-mixed.recipe.json. `edge-bench explain` shows the ops.

calibration data (for int8 / int16x8): a .npz (one array per input name, or `x` for a
single-input model), a .npy, or a folder of .npy files; arrays are [N, *input shape without
the batch of 1]. A folder of JPEG/PNG images is resized to the input and normalized by the
model's TFLite metadata, else by --input-range / --mean / --std. `--calibration random` uses random data (accuracy will be meaningless).
Built-in models (builtin:digits, builtin:mobilenet) bring their own calibration set.
"""

EPILOG = """\
examples:
  edge-bench quantize model.tflite --variants fp16,dynamic-int8,int8 --calibration calib.npz -o out/
  edge-bench quantize builtin:digits --variants all -o out/
  edge-bench quantize model.tflite --variants int8 --calibration random -o /tmp/q
  edge-bench quantize model.keras --quantizer tflite-converter --variants fp16,int8 -o out/
      (a Keras/SavedModel through TensorFlow's converter: pip install 'edge-bench[tf]')
  edge-bench quantize mymodels:resnet --quantizer pt2e --variants fp32,int8 --calibration c.npz -o out/
      (a PyTorch factory through PT2E + litert-torch: pip install 'edge-bench[torch]')

Files are named MODEL-VARIANT.tflite. A variant that fails is reported and the others are still
written; the exit code is then 3.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "quantize", help="write quantized variants of a .tflite model",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="float .tflite file, builtin:NAME, or a PyTorch"
                                                  " .pt2 / module:function ([torch] extra)")
    p.add_argument("--variants", default="fp32,fp16,dynamic-int8,int8",
                   help="comma-separated variants, or `all` (default: %(default)s)")
    p.add_argument("--calibration", metavar="FILE|random",
                   help="calibration data for int8/int16x8/int8-mixed (.npz, .npy, folder of"
                        " .npy, folder of JPEG/PNG images, random)")
    p.add_argument("--quantizer", default="ai-edge-quantizer",
                   help="ai-edge-quantizer (default), tflite-converter (TensorFlow's converter, "
                        "for .keras/.h5/SavedModel input; pip install 'edge-bench[tf]'), pt2e "
                        "(PyTorch's PT2E flow for .pt2 / module:function input; pip install "
                        "'edge-bench[torch]'), or ai-edge-quantizer,pt2e for both")
    p.add_argument("--signature", default=None, metavar="KEY",
                   help="the SignatureDef int8/int16x8 calibrate through, for a model with"
                        " several (default: serving_default, else the first)")
    p.add_argument("--input-shape", action="append", default=None, metavar="NAME=1x16000",
                   help="the size of an input's dynamic (-1) dims (NAME left out for a one-input"
                        " model; default: the shape of the --calibration data)")
    from .data_options import add_accuracy_target, add_image_options
    add_image_options(p)
    add_accuracy_target(p)
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show ai-edge-quantizer's and LiteRT's own output as it comes")
    p.add_argument("-o", "--output", "--out", dest="output", metavar="DIR", required=True,
                   help="output folder (created if missing)")
    p.set_defaults(func=run)
    return p


def _print_table(rows: List[dict], out_dir: Path) -> None:
    headers = ("variant", "bytes", "vs fp32", "status", "recipe")
    cells = []
    for r in rows:
        cells.append((r["variant"], f"{r['bytes']:,}" if r["bytes"] is not None else "-",
                      f"{r['ratio']:.3f}x" if r["ratio"] is not None else "-",
                      "ok" if r["error"] is None else ("skipped" if r.get("skipped") else "FAILED"),
                      r["recipe"] if r["error"] is None else r["error"]))
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        from ..render.display import escape, texts
        t = Table(title=escape(f"quantized variants in {out_dir}"))
        for h in headers:
            t.add_column(h, justify="right" if h in ("bytes", "vs fp32") else "left",
                         overflow="fold")
        for c, r in zip(cells, rows):
            style = "red" if r["error"] else None
            t.add_row(*texts(c), style=style)
        Console().print(t)
        return
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers[:-1])]
    def line(vals):
        left = "  ".join(v.rjust(w) if i in (1, 2) else v.ljust(w)
                         for i, (v, w) in enumerate(zip(vals[:-1], widths)))
        return f"{left}  {vals[-1]}"
    print(line(headers))
    for c in cells:
        print(line(c))
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from ..app.quantize import make_variants, prepare

    from ..models.imagedata import ImageOptions
    job = prepare(args.model, args.variants, args.quantizer, args.calibration, args.output,
                  args.signature, args.input_shape,
                  ImageOptions(args.input_range, args.mean, args.std), args.accuracy_target)
    for w in job.warnings:
        print(f"edge-bench: WARNING: {w}", file=sys.stderr)
    if job.derived_from:
        print(f"edge-bench: fp32 is the {job.derived_from}", file=sys.stderr)
    if job.calibration:
        print(f"calibration: {job.calibration_samples} samples from {job.calibration_source}"
              + (f" through signature {job.signature}" if job.signature else ""),
              file=sys.stderr)
    rows, failed = make_variants(
        job, lambda v, e: print(f"edge-bench: variant {v} failed: {job.user_text(str(e))}",
                                file=sys.stderr))
    _print_table(rows, job.out_dir)
    if failed:
        print(f"edge-bench: {failed} of {len(job.variants)} variant(s) failed; the others are in "
              f"{job.out_dir}", file=sys.stderr)
        return 3
    return 0
