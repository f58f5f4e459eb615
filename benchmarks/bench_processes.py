"""What do several worker processes per model cost? Wall time of the README's first command.

Times `edge-bench run` on `local` (the built-in models as fp32 and int8: 4 models, the
defaults) with `--processes 1` and with the default `--processes 3` (interleaved), alternating,
`--repeats` times each, and reports the median wall time of each and their ratio. The timing
totals (--runs, --min-seconds) are the same in both: what differs is the start of 2 more
worker processes per model (Python, numpy, LiteRT, the model) and the round-robin order.

Run:  python benchmarks/bench_processes.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List


def one(processes: int, tmp: str) -> float:
    env = dict(os.environ, EDGE_BENCH_CACHE=os.path.join(tmp, "cache"),
               HOME=os.path.join(tmp, "home"))
    env.pop("EDGE_BENCH_CONFIG", None)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--no-store", "--quiet",
                    "--processes", str(processes)], check=True, env=env, cwd=tmp,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    walls: Dict[int, List[float]] = {1: [], 3: []}
    with tempfile.TemporaryDirectory() as tmp:
        one(1, tmp)  # warm the quantized-variant cache and the page cache
        for _ in range(a.repeats):
            for k in walls:
                walls[k].append(one(k, tmp))
    med = {k: statistics.median(v) for k, v in walls.items()}
    for k, v in walls.items():
        print(f"--processes {k}: median {med[k]:.2f} s  (runs: {', '.join(f'{x:.2f}' for x in v)})")
    print(f"ratio 3 / 1: {med[3] / med[1]:.2f}; extra per model: {(med[3] - med[1]) / 4:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
