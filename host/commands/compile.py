"""`edge-bench compile MODEL --target VENDOR[:SOC] [-o DIR]`: the NPU model, compiled ahead of time."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Compile a .tflite for a vendor's NPU ahead of time with ai-edge-litert's AOT tools (the
compile a device would otherwise do at load time, `run --accelerator npu`'s JIT compile).
The result holds DISPATCH_OP nodes: it runs only with `run --accelerator npu` on a device
with the vendor's dispatch library. Cached by content (model sha256 + target + ai-edge-litert
version) under $EDGE_BENCH_CACHE/aot (default ~/.cache/edge-bench/aot).

targets: intel_openvino[:LNL|PTL]  (default SOC: LNL; compiled for OpenVINO's CPU device,
         the graph backend this machine has; see docs/accelerators.md)
"""

EPILOG = """\
examples:
  edge-bench compile builtin:digits --target intel_openvino -o out/
  edge-bench run --model out/digits-intel_openvino_LNL.tflite --accelerator npu \\
      --npu-option graph_backend=cpu
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compile", help="compile a .tflite for an NPU ahead of time",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help=".tflite file or builtin:NAME")
    p.add_argument("--target", required=True, metavar="VENDOR[:SOC]",
                   help="the NPU to compile for: intel_openvino[:SOC]")
    p.add_argument("-o", "--output", dest="output", metavar="DIR", default=None,
                   help="also copy the compiled model here as MODEL-VENDOR_SOC.tflite"
                        " (default: only the cache; its path is printed)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..models import builtin
    from ..models.aot import aot_compile
    from ..models.quantcache import write_atomic
    if builtin.is_builtin(args.model):
        src, stem = builtin.resolve(args.model).path, args.model.split(":", 1)[1]
    else:
        src = Path(args.model).expanduser()
        stem = src.stem
    res = aot_compile(src, args.target)
    path = res.path
    if args.output:
        out_dir = Path(args.output).expanduser()
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{stem}-{res.target.replace(':', '_')}.tflite"
        write_atomic(path, res.path.read_bytes())  # replaces, never writes through, a link
    print(f"{path}  {res.bytes:,} bytes  sha256 {res.sha256[:16]}  target {res.target}"
          f"{'  (cached)' if res.cached else ''}")
    sys.stdout.flush()
    return 0
