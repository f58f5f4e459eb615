"""`edge-bench quantize MODEL --variants ... [--calibration FILE|random] -o DIR`"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import EdgeBenchError, UsageError

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

calibration data (for int8 / int16x8): a .npz (one array per input name, or `x` for a
single-input model), a .npy, or a folder of .npy files; arrays are [N, *input shape without
the batch of 1]. `--calibration random` uses random data (accuracy will be meaningless).
Built-in models (builtin:digits, builtin:mobilenet) bring their own calibration set.
"""

EPILOG = """\
examples:
  edge-bench quantize model.tflite --variants fp16,dynamic-int8,int8 --calibration calib.npz -o out/
  edge-bench quantize builtin:digits --variants all -o out/
  edge-bench quantize model.tflite --variants int8 --calibration random -o /tmp/q
  edge-bench quantize model.keras --quantizer tflite-converter --variants fp16,int8 -o out/
      (a Keras/SavedModel through TensorFlow's converter: pip install 'edge-bench[tf]')

Files are named MODEL-VARIANT.tflite. A variant that fails is reported and the others are still
written; the exit code is then 3.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "quantize", help="write quantized variants of a .tflite model",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="float .tflite file, or builtin:NAME")
    p.add_argument("--variants", default="fp32,fp16,dynamic-int8,int8",
                   help="comma-separated variants, or `all` (default: %(default)s)")
    p.add_argument("--calibration", metavar="FILE|random",
                   help="calibration data for int8/int16x8 (.npz, .npy, folder of .npy, random)")
    p.add_argument("--quantizer", default="ai-edge-quantizer",
                   help="ai-edge-quantizer (default), tflite-converter (TensorFlow's converter, "
                        "for .keras/.h5/SavedModel input; pip install 'edge-bench[tf]'), pt2e "
                        "(PyTorch's PT2E flow for .pt2 / module:function input; pip install "
                        "'edge-bench[torch]'), or ai-edge-quantizer,pt2e for both")
    p.add_argument("-o", "--output", "--out", dest="output", metavar="DIR", required=True,
                   help="output folder (created if missing)")
    p.set_defaults(func=run)
    return p


def _resolve_model(spec: str) -> Tuple[Path, Optional[Path], str]:
    from ..models.builtin import is_builtin, resolve
    from ..models.quantize import check_tflite
    from ..models.tf_convert import is_tf_model
    from ..models.pytorch import is_torch_model

    if is_torch_model(spec):  # converted by float_model (litert-torch)
        from ..models.pytorch.source import stem_of
        return spec, _torch_calibration(spec), stem_of(spec)  # type: ignore[return-value]
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


def _torch_calibration(spec: str) -> Optional[Path]:
    from ..models.builtin import is_builtin
    if not is_builtin(spec):
        return None
    from ..models.builtin.torch_models import resolve_torch
    return resolve_torch(spec).calibration


def _print_table(rows: List[dict], out_dir: Path) -> None:
    headers = ("variant", "bytes", "vs fp32", "status", "recipe")
    cells = []
    for r in rows:
        cells.append((r["variant"], f"{r['bytes']:,}" if r["bytes"] is not None else "-",
                      f"{r['ratio']:.3f}x" if r["ratio"] is not None else "-",
                      "ok" if r["error"] is None else "FAILED",
                      r["recipe"] if r["error"] is None else r["error"]))
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"quantized variants in {out_dir}")
        for h in headers:
            t.add_column(h, justify="right" if h in ("bytes", "vs fp32") else "left",
                         overflow="fold")
        for c, r in zip(cells, rows):
            style = "red" if r["error"] else None
            t.add_row(*c, style=style)
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
    from ..models.quantize import (RANDOM, STATIC_VARIANTS, VARIANTS, CalibrationWarning,
                            check_quantizer, float_model, load_calibration, make_variant,
                            parse_quantizers, parse_variants, route_variants)

    variants = list(VARIANTS) if args.variants.strip().lower() == "all" \
        else parse_variants(args.variants)
    quantizers = parse_quantizers(args.quantizer)
    variants = route_variants(variants, quantizers)  # pt2e: pt2e-int8, ...
    model_path, builtin_calib, stem = _resolve_model(args.model)
    model_path, source = float_model(model_path)  # Keras/SavedModel/PyTorch -> fp32 .tflite
    for q in quantizers:
        check_quantizer(q, source, args.model)
    quantizer = next((q for q in quantizers if q != "pt2e"), "pt2e")
    calib_src = args.calibration or builtin_calib
    out_dir = Path(args.output).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)

    static = [v for v in variants if v in STATIC_VARIANTS or v == "pt2e-int8"]
    calibration = None
    if static:
        if calib_src is None:
            raise UsageError(f"variant(s) {', '.join(static)} need calibration data",
                             hint="pass --calibration FILE (.npz/.npy/folder of .npy) or "
                                  "--calibration random (accuracy will be meaningless)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CalibrationWarning)
            calibration = load_calibration(calib_src, model_path)
        for w in caught:
            print(f"edge-bench: WARNING: {w.message}", file=sys.stderr)
        n = len(next(iter(calibration.values())))
        what = "random data" if str(calib_src) == RANDOM else str(calib_src)
        print(f"calibration: {n} samples from {what}", file=sys.stderr)

    fp32_bytes = model_path.stat().st_size
    rows, failed = [], 0
    for v in variants:
        out = out_dir / f"{stem}-{v}.tflite"
        try:
            res = make_variant(model_path, v, out, calibration if v in static else None,
                               quantizer=quantizer, source=source)
            rows.append({"variant": v, "bytes": res.bytes, "ratio": res.bytes / fp32_bytes,
                         "recipe": res.recipe_description, "error": None, "path": str(out)})
        except EdgeBenchError as e:
            failed += 1
            rows.append({"variant": v, "bytes": None, "ratio": None, "recipe": "",
                         "error": str(e), "path": None})
            print(f"edge-bench: variant {v} failed: {e}", file=sys.stderr)
    _print_table(rows, out_dir)
    if failed:
        print(f"edge-bench: {failed} of {len(variants)} variant(s) failed; the others are in "
              f"{out_dir}", file=sys.stderr)
        return 3
    return 0
