"""Harness overhead: the median latency the agent reports vs a bare `invoke()` loop.

For each built-in model (fp32), alternately:
  * bare: a fresh Python process that loads the model in LiteRT and times `invoke()` with
    perf_counter_ns, nothing else (the lower bound any harness can reach);
  * agent: `edge-bench run` on `local` (agent in a subprocess, worker per model), taking the
    median the agent reported.
Each is repeated REPEATS times; we report the median of the medians and the ratio agent/bare.
A ratio near 1.0 means the harness adds nothing measurable to what it measures.

Run:  python benchmarks/bench_overhead.py [--repeats 5] [--runs 300]
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
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "host" / "models" / "builtin" / "data"

BARE = r"""
import sys, time, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
rng = np.random.default_rng(0)
it.set_tensor(d["index"], rng.uniform(-1, 1, d["shape"]).astype(d["dtype"]))
for _ in range(int(sys.argv[3])):
    it.invoke()
s = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter_ns(); it.invoke(); s.append(time.perf_counter_ns() - t0)
s.sort()
print(s[len(s) // 2] / 1e6)
"""


def bare_median(model: Path, runs: int, warmup: int) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, str(model), str(runs), str(warmup)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def agent_median(model: str, runs: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EDGE_BENCH_CACHE=os.path.join(tmp, "cache"))
        out = subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--model", model,
                              "--variants", "fp32", "--runs", str(runs), "--warmup", str(warmup),
                              "--min-seconds", "0", "--json", "-", "--no-store", "--quiet",
                              "--processes", "1"],  # one process, like the bare loop
                             capture_output=True, text=True, check=True, env=env, cwd=tmp)
    r = json.loads(out.stdout)["results"][0]
    return float(r["latency_ms"]["median"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    a = ap.parse_args()
    print(f"# harness overhead, {date.today()}, {platform.machine()}, {os.cpu_count()} cores,"
          f" Python {platform.python_version()}, {a.repeats} repeats x {a.runs} runs")
    print("| model | bare invoke() median ms | agent median ms | agent / bare |")
    print("|---|---|---|---|")
    for name in ("digits", "mobilenet"):
        bare, agent = [], []
        for _ in range(a.repeats):
            bare.append(bare_median(DATA / f"{name}.tflite", a.runs, a.warmup))
            agent.append(agent_median(f"builtin:{name}", a.runs, a.warmup))
        b, g = statistics.median(bare), statistics.median(agent)
        print(f"| builtin:{name} fp32 | {b:.4f} | {g:.4f} | {g / b:.3f} |", flush=True)


if __name__ == "__main__":
    main()
