"""Quantized variants of the built-in models on this machine: size, latency, accuracy.

Runs `edge-bench run` on `local` for builtin:digits (with its 359-sample eval set: top-1 and
agreement with fp32, computed on the device's outputs) and builtin:mobilenet (random weights:
latency and size only) x all 7 variants, REPEATS times (the variant order is rotated every
repeat so slow drift of the machine is spread over all variants), and prints a markdown table:
per variant the file size, its ratio to fp32, the median of the per-repeat median latencies
(and their min-max), the speedup vs fp32, top-1 and agreement.

The `local` device gets a private workdir (so a benchmark never takes the lock of the user's
own `local` device); pass --config/--devices to time a real fleet device instead.

Run:  python benchmarks/bench_variants.py [--repeats 5] [--runs 200] [--min-seconds 0.5]
      python benchmarks/bench_variants.py --models digits.keras --quantizer tflite-converter \
          --variants fp32,fp16,dynamic-int8,int8,int16x8 --calibration C.npz --eval E.npz
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

VARIANTS = ("fp32", "fp16", "dynamic-int8", "int8", "int16x8", "weight-int8", "weight-int4")
MODELS = ("builtin:digits", "builtin:mobilenet")


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "-"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"


def run_once(model: str, variants: List[str], args: argparse.Namespace, env: Dict[str, str],
             cwd: str) -> List[Dict[str, Any]]:
    cmd = [sys.executable, "-m", "edge_bench.cli", "run", "--model", model,
           "--variants", ",".join(variants), "--threads", str(args.threads),
           "--runs", str(args.runs), "--warmup", str(args.warmup),
           "--min-seconds", str(args.min_seconds), "--json", "-", "--no-store", "--quiet",
           "--quantizer", args.quantizer,
           "--processes", "1"]  # one worker per variant, as when docs/benchmarks.md was measured
    if args.calibration:
        cmd += ["--calibration", args.calibration]
    if args.eval:
        cmd += ["--eval", args.eval]
    if args.config:
        cmd += ["--config", args.config]
    if args.devices:
        cmd += ["--devices", args.devices]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=3600)
    if p.returncode not in (0, 3):
        sys.exit(f"edge-bench run failed ({p.returncode}):\n{p.stderr}")
    return json.loads(p.stdout)["results"]


def fmt_bytes(n: Optional[int]) -> str:
    return "-" if n is None else f"{n:,}"


def _us(ms: float) -> str:
    us = ms * 1000.0
    return f"{us:,.0f}" if us >= 100 else f"{us:.3g}"


def table(rows: Dict[Tuple[str, str], Dict[str, Any]], models: List[str],
          variants: List[str]) -> str:
    out = ["| model | variant | bytes | vs fp32 | median µs (min-max of repeats) | speedup vs fp32 "
           "| top-1 | agreement vs fp32 |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for m in models:
        base = rows.get((m, "fp32"), {})
        base_ms = statistics.median(base["medians"]) if base.get("medians") else None
        for v in variants:
            r = rows.get((m, v))
            if r is None:
                continue
            name = m.split(":", 1)[1] if m.startswith("builtin:") else Path(m).name
            if r.get("error"):
                out.append(f"| {name} | {v} | {fmt_bytes(r.get('bytes'))} | | error: "
                           f"{r['error'][:80]} | | | |")
                continue
            med = statistics.median(r["medians"])
            spread = f"{_us(min(r['medians']))}-{_us(max(r['medians']))}"
            ratio = (f"{r['bytes'] / base['bytes']:.2f}x" if base.get("bytes") else "-")
            speed = f"{base_ms / med:.2f}x" if base_ms else "-"
            acc = r.get("accuracy")
            top1 = f"{acc['top1']:.1%}" if acc and acc.get("top1") is not None else "-"
            agree = f"{acc['agreement_vs_ref']:.1%}" if acc else "-"
            if acc and acc.get("flag"):
                agree += " FLAGGED"
            out.append(f"| {name} | {v} | {fmt_bytes(r['bytes'])} | {ratio} | {_us(med)} ({spread}) "
                       f"| {speed} | {top1} | {agree} |")
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200, help="minimum timed runs per variant")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--quantizer", default="ai-edge-quantizer",
                    help="or tflite-converter (needs TensorFlow and Keras/SavedModel --models)")
    ap.add_argument("--calibration", default=None, help="for --models that are not built-in")
    ap.add_argument("--eval", default=None, help="for --models that are not built-in")
    ap.add_argument("--config", default=None, help="devices.yaml (default: a private `local`)")
    ap.add_argument("--devices", default=None)
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]

    load_before = _load()
    started = datetime.now(timezone.utc)
    rows: Dict[Tuple[str, str], Dict[str, Any]] = {}
    runtime = "-"
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EDGE_BENCH_CACHE=os.path.join(tmp, "cache"))
        env.pop("EDGE_BENCH_CONFIG", None)
        if not args.config:
            cfg = Path(tmp) / "devices.yaml"
            cfg.write_text(f"version: 1\ndevices:\n  local:\n    transport: local\n"
                           f"    workdir: {Path(tmp) / 'wd'}\n")
            args.config = str(cfg)
        for rep in range(args.repeats):
            order = variants[rep % len(variants):] + variants[:rep % len(variants)]
            for m in models:
                for r in run_once(m, order, args, env, tmp):
                    key = (m, r["variant"])
                    row = rows.setdefault(key, {"medians": [], "bytes": r.get("model_bytes")})
                    if r["status"] != "ok":
                        row["error"] = r.get("error") or r["status"]
                        continue
                    row["medians"].append(r["latency_ms"]["median"])
                    row["accuracy"] = r.get("accuracy")
                    runtime = (f"{r['runtime']['name']} {r['runtime']['version']}, XNNPACK "
                               f"{'on' if r['runtime'].get('xnnpack') else 'off'}")
            print(f"repeat {rep + 1}/{args.repeats} done (load {_load()})", file=sys.stderr)
    minutes = (datetime.now(timezone.utc) - started).total_seconds() / 60
    print(f"Machine: {platform.machine()}, {_cpu()}, {os.cpu_count()} cores, "
          f"Linux {platform.release()}; Python {platform.python_version()}; {runtime}; "
          f"ai-edge-quantizer {_version('ai-edge-quantizer')}  ")
    print(f"Date: {started.strftime('%Y-%m-%d %H:%M UTC')}; {args.repeats} repeats x "
          f">= {args.runs} runs and >= {args.min_seconds:g} s per variant, {args.threads} thread(s), "
          f"variants made by {args.quantizer}; {minutes:.1f} min; load average before "
          f"{load_before}, after {_load()}  ")
    print("Command: python benchmarks/bench_variants.py "
          + " ".join(a if " " not in a else repr(a) for a in (argv if argv is not None
                                                              else sys.argv[1:])))
    print()
    print(table(rows, models, variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
