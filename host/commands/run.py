"""edge-bench run: quantize, push, time on the devices, stream results into table, store, JSON."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List

from ..errors import UsageError

DEFAULT_MODELS = ["builtin:digits", "builtin:mobilenet"]
DEFAULT_VARIANTS = "fp32,int8"

HELP = """\
Time models (and their quantized variants) on devices and score their accuracy.

With no arguments: the built-in models (builtin:digits, builtin:mobilenet) as fp32 and int8 on
`local` (this machine). Devices come from devices.yaml (--config, EDGE_BENCH_CONFIG,
./devices.yaml or ~/.config/edge-bench/devices.yaml).

Timing follows TFLite's benchmark_model: a first inference timed on its own, --warmup runs,
then timed runs until BOTH --runs and --min-seconds are reached (never past --max-seconds, nor
past --max-runs samples). Each model is timed in --processes fresh worker processes (default 3)
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
  edge-bench run --label nightly-2026-11-27 --baseline last --fail-on-regression --json out.json
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="benchmark models on devices (default: built-ins on local)",
                       description=HELP, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", "-d", default=None,
                   help="device names and tag:TAG, comma separated (default: local)")
    p.add_argument("--config", "-c", default=None, help="devices.yaml to use")
    p.add_argument("--model", "-m", action="append", default=None,
                   help="a float .tflite file, builtin:NAME, a PyTorch .pt2 or module:function"
                        " (pip install 'edge-bench[torch]'); repeat for several"
                        f" (default: {', '.join(DEFAULT_MODELS)})")
    p.add_argument("--variants", default=None,
                   help="fp32,fp16,dynamic-int8,int8,int16x8,weight-int8,weight-int4"
                        f" (default: {DEFAULT_VARIANTS})")
    p.add_argument("--threads", default="1", help="interpreter threads, e.g. 1,2,4 (default: 1)")
    p.add_argument("--runs", type=int, default=50, help="minimum timed runs (default: 50)")
    p.add_argument("--warmup", type=int, default=5, help="warmup runs after the first inference"
                                                        " (default: 5)")
    p.add_argument("--min-seconds", type=float, default=1.0,
                   help="minimum seconds of timed runs (default: 1.0)")
    p.add_argument("--max-seconds", type=float, default=60.0,
                   help="stop timing after this many seconds per task (default: 60)")
    p.add_argument("--max-runs", type=int, default=10000,
                   help="stop timing after this many samples even if --min-seconds is not reached"
                        " (keeps microsecond models from returning millions of samples;"
                        " default: 10000)")
    p.add_argument("--processes", type=int, default=3, metavar="N",
                   help="time each model in N worker processes, sharing --runs/--min-seconds"
                        " (default: 3; 1 = one process, as before; compare's fast quartile of"
                        " all their samples hardly reaches a process that ran slow throughout)")
    p.add_argument("--interleave", action=argparse.BooleanOptionalAction, default=True,
                   help="run the models' worker processes round-robin (A, B, C, A, B, C, ...;"
                        " default) so that a few slow seconds of the device (heat, another"
                        " tenant, a busy sibling core) hit every model a little instead of one"
                        " model entirely; results then arrive in the last round."
                        " --no-interleave: each model's processes back to back, results as"
                        " each model finishes")
    p.add_argument("--calibration", default=None,
                   help="calibration data (.npz, .npy, folder of .npy, or `random`) for int8/int16x8")
    p.add_argument("--quantizer", default="ai-edge-quantizer",
                   help="who makes the variants: ai-edge-quantizer (default, any float .tflite),"
                        " tflite-converter (TensorFlow's, for .keras/.h5/SavedModel models;"
                        " pip install 'edge-bench[tf]') or pt2e (PyTorch's PT2E flow for .pt2 /"
                        " module:function models, variants named pt2e-int8...; pip install"
                        " 'edge-bench[torch]'); ai-edge-quantizer,pt2e makes both in one table")
    p.add_argument("--eval", default=None,
                   help=".npz with model inputs (`x` or input names) and optional labels `y`:"
                        " run on the device and scored against the fp32 reference")
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
    p.add_argument("--threshold", type=float, default=0.05,
                   help="smallest slowdown that counts as a regression (default: 0.05 = 5%%)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when the comparison with --baseline finds a regression")
    p.add_argument("--quiet", "-q", action="store_true", help="no table, only errors and --json")
    p.set_defaults(func=run)


def _int_list(text: str, flag: str) -> List[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected whole numbers separated by commas, e.g. 1,2,4")
    if not vals or any(v < 1 for v in vals):
        raise UsageError(f"{flag} {text!r}: expected numbers >= 1")
    return vals


def run(args: argparse.Namespace) -> int:
    from ..config import find_config, load_fleet
    from ..fleet.plan import Timing, make_artifacts, resolve_model
    from ..models.quantize import parse_quantizers, parse_variants, route_variants
    from ..fleet.runner import Task

    if args.runs < 1 or args.warmup < 0 or args.min_seconds < 0 or args.max_seconds <= 0:
        raise UsageError("--runs must be >= 1, --warmup and --min-seconds >= 0, --max-seconds > 0")
    if not 1 <= args.processes <= 100:
        raise UsageError(f"--processes {args.processes}: expected 1 to 100 worker processes per"
                         " model (3 is the default)")
    fleet = load_fleet(find_config(args.config))
    devices = fleet.select(args.devices)
    overrides: Dict[str, Any] = {}
    if args.no_xnnpack:
        overrides["xnnpack"] = False
    if args.runtime:
        overrides["runtime"] = args.runtime
    if args.timeout:
        overrides["timeout_s"] = args.timeout
    if args.lock_wait is not None and args.lock_wait < 0:
        raise UsageError(f"--lock-wait {args.lock_wait:g}: expected seconds >= 0")
    if args.cooldown_max_s is not None and args.cooldown_max_s < 0:
        raise UsageError(f"--cooldown-max-s {args.cooldown_max_s:g}: expected seconds >= 0")
    overrides.update(lock_wait_s=args.lock_wait, cooldown_temp_c=args.cooldown_temp,
                     cooldown_max_s=args.cooldown_max_s)  # None = keep the device's setting
    devices = [d.with_overrides(**overrides) for d in devices]
    quantizers = parse_quantizers(args.quantizer)
    variants = route_variants(parse_variants(args.variants or DEFAULT_VARIANTS), quantizers)
    threads = _int_list(args.threads, "--threads")
    timing = Timing(runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds,
                    max_seconds=args.max_seconds, max_runs=max(args.max_runs, args.runs),
                    processes=args.processes, interleave=args.interleave)
    model_names = args.model or DEFAULT_MODELS
    models = [resolve_model(m, args.calibration, args.eval, ",".join(quantizers))
              for m in model_names]

    json_to_stdout = args.json == "-"
    from ..render.display import LiveDisplay
    display = LiveDisplay(stream=sys.stderr if json_to_stdout else sys.stdout, quiet=args.quiet)

    artifacts = make_artifacts(models, variants, progress=display.note)
    plan = {}
    for d in devices:
        tasks = []
        for a in artifacts:
            for th in threads:
                tasks.append(Task(id=f"t{len(tasks)}", artifact=a, threads=th, timing=timing))
        plan[d] = tasks

    from ..results.record import new_run
    doc = new_run(args.label, list(getattr(args, "argv", ["edge-bench", "run"])))
    store = None
    if not args.no_store:
        from ..results.store import Store
        store = Store(args.db) if args.db else Store()
        if args.baseline and not args.baseline.startswith("last"):
            store.resolve(args.baseline)  # a typo fails now, not after the whole benchmark
        doc["run_id"] = store.begin_run(doc) or doc["run_id"]
    elif args.baseline:
        raise UsageError("--baseline needs the results store (drop --no-store)")

    def on_result(r: Dict[str, Any]) -> None:
        doc["results"].append(r)
        if store is not None:
            store.add_result(doc["run_id"], r)
        display.on_result(r)

    from ..fleet.session import Session
    # cooldown and lock wait travel on each Device (flags > devices.yaml), see DeviceRun
    session = Session(plan, on_result=on_result, on_status=display.on_status, job_id=doc["run_id"],
                      op_profiling=args.op_profiling)
    interrupted = False
    try:
        with display:
            try:
                session.run()
            except KeyboardInterrupt:
                interrupted = True
    finally:
        doc["devices"] = {r.device.name: r.summary() for r in session.runs}
        from datetime import datetime, timezone
        doc["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        failed = [r for r in doc["results"] if r["status"] != "ok" or (r.get("accuracy") or {}).get("flag")]
        doc["status"] = "interrupted" if interrupted else ("partial" if failed else "ok")
        if store is not None:
            store.finish_run(doc["run_id"], doc["status"])
        if args.json:
            from ..results.document import write_json
            write_json(doc, args.json)
    display.print_final_table()
    if interrupted:
        print(f"edge-bench: interrupted; {len(doc['results'])} finished results kept"
              f" (run {doc['run_id']})", file=sys.stderr)
        return 128 + int(session.signal or 2)   # 130 for Ctrl-C (SIGINT), 143 for SIGTERM
    code = 0
    if failed:
        print(f"edge-bench: {len(failed)} of {len(doc['results'])} results failed or disagree with"
              " fp32 (see status column)", file=sys.stderr)
        code = 3
    if args.baseline:
        if store is None:
            raise UsageError("--baseline needs the results store (drop --no-store)")
        from ..analysis.compare import compare_and_print
        _rows, regressed = compare_and_print(store, args.baseline, doc, threshold=args.threshold,
                                             file=sys.stderr if json_to_stdout else None,
                                             quiet=args.quiet)
        if regressed and args.fail_on_regression:
            return 1
    return code
