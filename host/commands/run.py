"""edge-bench run: quantize, push, time on the devices, stream results into table, store, JSON."""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Any, Dict

from ..analysis.verdict import DEFAULT_THRESHOLD
from ..app.run import (DEFAULT_MODELS, DEFAULT_VARIANTS, DEFAULT_VARIANTS_NO_CALIBRATION,
                       RunRequest)
from ..models.variants import VARIANTS
from .data_options import add_accuracy_target, add_image_options
from .gate_options import add_gate_options

D = RunRequest()  # the defaults, one home: the service's request

HELP = f"""\
Time models (and their quantized variants) on devices and score their accuracy.

With no arguments: the built-in models ({', '.join(DEFAULT_MODELS)}) as {DEFAULT_VARIANTS} on
`local` (this machine). Devices come from devices.yaml (--config, EDGE_BENCH_CONFIG,
./devices.yaml or ~/.config/edge-bench/devices.yaml).

Timing follows TFLite's benchmark_model: a first inference timed on its own, --warmup runs,
then timed runs until BOTH --runs and --min-seconds are reached (never past --max-seconds, nor
past --max-runs samples). Each model is timed in --processes fresh worker processes (default {D.processes})
that share those totals, run round-robin across the models (--no-interleave: back to back): a
process, or a few seconds of the device, can run slower for all its samples (memory layout, a
busy core, another tenant), and comparisons take the fast quartile of all the processes'
samples, which such a process hardly reaches.
Every result is stored the moment it arrives (SQLite, --db); --json writes the whole document.
"""

EXAMPLES = """\
examples:
  edge-bench run
  edge-bench run --devices pi4,jetson --model mobilenet_v2.tflite --threads 1,4
  edge-bench run --devices tag:arm64 --variants fp32,fp16,dynamic-int8,int8 --eval eval.npz
  edge-bench run --devices jetson --variants fp32,fp16 --accelerator cpu,gpu --gpu-precision fp32
  edge-bench run --label nightly-2026-11-27 --baseline last --fail-on-regression --json out.json
  edge-bench run --model builtin:digits-torch --quantizer ai-edge-quantizer,pt2e
      (a PyTorch model: .pt2 or module:function, both quantization routes in one table;
       pip install 'edge-bench[torch]')
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="benchmark models on devices (default: built-ins on local)",
                       description=HELP, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", "-d", default=None,
                   help="device names and tag:TAG, comma separated (default: local)")
    p.add_argument("--config", "-c", default=None, help="devices.yaml to use")
    p.add_argument("--model", "-m", action="append", default=None,
                   help="a float .tflite file, builtin:NAME, or a PyTorch .pt2 /"
                        " module:function (pip install 'edge-bench[torch]'); repeat for several"
                        f" (default: {', '.join(DEFAULT_MODELS)})")
    p.add_argument("--variants", default=None,
                   help=f"{','.join(VARIANTS)} and `given` (the .tflite exactly as given, e.g."
                        " fp16-stored; an already-quantized file is always timed as given)"
                        f" (default: {DEFAULT_VARIANTS}); a model without calibration data gets"
                        f" {DEFAULT_VARIANTS_NO_CALIBRATION}, its int8 shown as a skip, not a"
                        " failure; also int8-mixed: int8 with the fewest sensitive ops kept"
                        " float (--accuracy-target)")
    p.add_argument("--reference", action="append", default=None, metavar="FLOAT.tflite",
                   help="the float model of an already-quantized --model: its fp32 row, the"
                        " reference the given file is scored against, and what the variants are"
                        " made from (one per --model, in order)")
    p.add_argument("--signature", default=None, metavar="KEY",
                   help="the SignatureDef to benchmark, calibrate and score, for a model with"
                        " several (default: serving_default, else the first)")
    p.add_argument("--input-shape", action="append", default=None, metavar="NAME=1x16000",
                   help="the size of an input's dynamic (-1) dims, on the host and the devices"
                        " (NAME: the input's name; left out for a one-input model); repeat for"
                        " several inputs (default: the shape of the --calibration/--eval data)")
    p.add_argument("--threads", default=D.threads,
                   help=f"interpreter threads, e.g. 1,2,4 (default: {D.threads})")
    p.add_argument("--accelerator", default=D.accelerator, metavar="cpu,gpu,npu",
                   help="where the model runs, one row per accelerator: cpu (the Interpreter,"
                        f" XNNPACK), gpu and npu (LiteRT's CompiledModel API,"
                        " ai-edge-litert >= 2 on the device; a model that falls back to the CPU"
                        " is an error row naming why; see docs/accelerators.md; default:"
                        f" {D.accelerator})")
    p.add_argument("--gpu-precision", default=D.gpu_precision, choices=["fp16", "fp32"],
                   help="GPU arithmetic: fp16 is the runtime's own choice, fp32 when fp16 gives"
                        f" wrong outputs (default: {D.gpu_precision})")
    p.add_argument("--npu-option", default=None, metavar="K=V,...",
                   help="NPU vendor options, e.g. graph_backend=cpu (Intel OpenVINO: compile"
                        " for its CPU device, the stand-in used in the tests)")
    p.add_argument("--require-full", action="store_true",
                   help="a gpu/npu/delegate row whose model ran partly on the CPU is an error")
    p.add_argument("--aot", default=None, metavar="VENDOR[:SOC]",
                   help="also time each variant compiled ahead of time for this NPU (e.g."
                        " intel_openvino), a VARIANT+aot row on the npu accelerator beside the"
                        " JIT-compiled one (edge-bench compile; docs/accelerators.md)")
    p.add_argument("--delegate", action="append", default=None, metavar="PATH[:K=V,...]",
                   help="an external delegate .so on the device (libedgetpu, Arm NN), loaded"
                        " through the Interpreter API with its options: one more row, labelled"
                        " delegate:FILE, with the ops it took counted; repeatable")
    p.add_argument("--runs", type=int, default=D.runs, help=f"minimum timed runs (default: {D.runs})")
    p.add_argument("--warmup", type=int, default=D.warmup,
                   help=f"warmup runs after the first inference (default: {D.warmup})")
    p.add_argument("--min-seconds", type=float, default=D.min_seconds,
                   help=f"minimum seconds of timed runs (default: {D.min_seconds:g})")
    p.add_argument("--max-seconds", type=float, default=D.max_seconds,
                   help=f"stop timing after this many seconds per task (default: {D.max_seconds:g})")
    p.add_argument("--max-runs", type=int, default=D.max_runs,
                   help="stop timing after this many samples even if --min-seconds is not reached"
                        " (keeps microsecond models from returning millions of samples;"
                        f" default: {D.max_runs})")
    p.add_argument("--processes", type=int, default=D.processes, metavar="N",
                   help="time each model in N worker processes, sharing --runs/--min-seconds"
                        f" (default: {D.processes}; 1 = one process, as before; compare's fast quartile of"
                        " all their samples hardly reaches a process that ran slow throughout)")
    p.add_argument("--interleave", action=argparse.BooleanOptionalAction, default=D.interleave,
                   help="run the models' worker processes round-robin (A, B, C, A, B, C, ...;"
                        " default) so that a few slow seconds of the device (heat, another"
                        " tenant, a busy sibling core) hit every model a little instead of one"
                        " model entirely; results then arrive in the last round."
                        " --no-interleave: each model's processes back to back, results as"
                        " each model finishes")
    p.add_argument("--calibration", default=None,
                   help="calibration data (.npz, .npy, folder of .npy, folder of JPEG/PNG"
                        " images, or `random`) for int8/int16x8/int8-mixed")
    p.add_argument("--quantizer", default=D.quantizer,
                   help="who makes the variants: ai-edge-quantizer (default, any float .tflite),"
                        " tflite-converter (TensorFlow's, for .keras/.h5/SavedModel models;"
                        " pip install 'edge-bench[tf]') or pt2e (PyTorch's PT2E flow for .pt2 /"
                        " module:function models, variants named pt2e-int8, ...; pip install"
                        " 'edge-bench[torch]'); ai-edge-quantizer,pt2e makes both in one table")
    p.add_argument("--eval", default=None,
                   help=".npz with model inputs (`x` or input names) and optional labels `y`,"
                        " or a folder of images (labels: a folder per class or labels.csv):"
                        " run on the device and scored against the fp32 reference")
    add_image_options(p)
    add_accuracy_target(p)
    p.add_argument("--no-xnnpack", action="store_true", help="disable the XNNPACK delegate")
    p.add_argument("--runtime", default=None,
                   choices=["auto", "ai_edge_litert", "tflite_runtime", "tensorflow"],
                   help="force a TFLite runtime on the devices (default: auto)")
    p.add_argument("--cooldown-temp", type=float, default=None,
                   help="wait until the SoC is below this temperature (C) before each model"
                        " (default: the device's cooldown_temp_c in devices.yaml, else no wait)")
    p.add_argument("--cooldown-max-s", type=float, default=None,
                   help="give up waiting for cooldown after this many seconds (default: the"
                        " device's cooldown_max_s, else 120)")
    p.add_argument("--lock-wait", type=float, default=None, metavar="SECONDS",
                   help="wait up to SECONDS for a device that is busy with another benchmark"
                        " (default: the device's lock_wait_s, else 0 = fail at once)")
    p.add_argument("--op-profiling", action="store_true",
                   help="per-op profile (devices with runner: benchmark_model)")
    p.add_argument("--timeout", type=float, default=None, help="per-device job timeout in seconds")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results document (- for stdout)")
    p.add_argument("--db", default=None, help="results store (default: EDGE_BENCH_DB or"
                                              " ~/.local/share/edge-bench/results.sqlite)")
    p.add_argument("--no-store", action="store_true", help="do not write to the results store")
    p.add_argument("--label", default=None, help="a name for this run, e.g. nightly-2026-11-27")
    p.add_argument("--baseline", default=None,
                   help="compare with this run (id, label, last, last~N) after the run")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="smallest slowdown that counts as a regression"
                        f" (default: {DEFAULT_THRESHOLD:g} = {DEFAULT_THRESHOLD * 100:g}%%)")
    add_gate_options(p, "with --baseline")
    p.add_argument("--no-confirm", action="store_true",
                   help="with --fail-on-regression: fail on a slowdown measured once. Without"
                        " it, keys judged slower are timed again and stay a regression only when"
                        " that is slower too; else they are inconclusive")
    p.add_argument("--quiet", "-q", action="store_true", help="no table, only errors and --json")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show the libraries' own output (LiteRT, ai-edge-quantizer) as it comes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..app import run as service
    from ..render.display import LiveDisplay

    req = service.RunRequest(**{f.name: getattr(args, f.name) for f in fields(service.RunRequest)
                                if hasattr(args, f.name)})
    json_to_stdout = args.json == "-"
    out_stream = sys.stderr if json_to_stdout else sys.stdout
    display = LiveDisplay(stream=out_stream, quiet=args.quiet)
    # a confirmation may follow the run: then --json is written after it, with `confirmations`
    later = bool(args.json and args.baseline and args.fail_on_regression and not args.no_confirm)
    out = service.execute(req, display, json_out=args.json, json_later=later)
    try:
        return _report(service, req, out, display, args, out_stream)
    finally:
        if later:   # also when the confirmation fails or is interrupted: nothing is lost
            from ..results.document import write_json
            write_json(out.doc, args.json)


def _report(service: Any, req: Any, out: Any, display: Any, args: argparse.Namespace,
            out_stream: Any) -> int:
    """What `run` says, compares and confirms once the benchmark is over; its exit code."""
    from ..render.compare import emit
    json_to_stdout = args.json == "-"
    display.print_final_table()
    if out.interrupted:
        rows = out.doc["results"]
        from ..results.record import is_cancelled
        cancelled = sum(1 for r in rows if is_cancelled(r))
        partial = sum(1 for r in rows if r.get("status") == "partial")
        print(f"edge-bench: interrupted; {len(rows) - cancelled - partial} finished results kept,"
              f" {partial} partial (the samples measured so far), {cancelled} tasks cancelled"
              f" (run {out.doc['run_id']})", file=sys.stderr)
        return service.exit_code(out, None, args.fail_on_regression)
    if out.store_error:
        print(f"edge-bench: {out.store_error}; every result is in the table"
              + (f" and in {args.json}" if args.json and args.json != "-" else
                 " (use --json FILE to keep them)" if not args.json else ""), file=sys.stderr)
    if out.failed:
        print(f"edge-bench: {len(out.failed)} of {len(out.doc['results'])} results failed or"
              " disagree with fp32 (the reasons are in the status column"
              + (", in full under `why:`)" if display.live and not args.quiet else ")"),
              file=sys.stderr)
    if out.store is not None and not out.store_error and not args.quiet:
        rid = out.doc["run_id"]
        print(f"edge-bench: run {rid} stored in {out.store.path} (`edge-bench report {rid}"
              " --html FILE`, `compare`, `history`)", file=sys.stderr)
    cmp = None
    if args.baseline:
        cmp = service.compare_baseline(req, out)
        if cmp is None:
            print(f"edge-bench: no baseline yet: the store has no run `{args.baseline}` before"
                  f" this one; nothing compared (run {out.doc['run_id']} is the first baseline)",
                  file=sys.stderr if json_to_stdout else sys.stdout)
        else:
            if args.fail_on_regression and not args.no_confirm:
                cmp = confirm(service, req, out, cmp, args, out_stream)
            emit(cmp, file=sys.stderr if json_to_stdout else None, quiet=args.quiet)
            from .gate_options import print_gate
            print_gate(cmp, args, failed=len(out.failed) + bool(out.store_error))
    return service.exit_code(out, cmp, args.fail_on_regression, args.fail_on_inconclusive)


def confirm(service: Any, req: Any, out: Any, cmp: Dict[str, Any], args: argparse.Namespace,
            stream: Any) -> Dict[str, Any]:
    """Time the keys judged slower once more before failing (app/run.py confirm_regressions)."""
    from ..analysis.confirm import keys_to_confirm
    from ..render.display import LiveDisplay
    n = len(keys_to_confirm(cmp))
    if not n:
        return cmp
    if not args.quiet:
        print(f"{n} key(s) slower than the baseline: timing again to confirm (--no-confirm: do"
              " not)", file=stream)
    return service.confirm_regressions(req, out, cmp, LiveDisplay(stream=stream, quiet=args.quiet))
