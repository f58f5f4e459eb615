"""False alarms and detection of `compare` on a microsecond model, from real runs (issue 27).

Makes real runs of builtin:digits fp32 on `local` (the real agent, 3 worker processes each):
`--quiet-runs` with nothing added, `--busy-runs` with two LiteRT inference loops (builtin
mobilenet, 1 thread) and a memory-bandwidth loop (numpy, 160 MB) beside it. Then builds pairs
from the stored processes, resampled: each side of a pair is 3 processes drawn at random
(without replacement) from the quiet pool (or the busy pool for a busy candidate), so 100+
pairs come from a few dozen runs. Counts per rule:

* quiet same vs same: false `slower` and false `faster`;
* quiet base vs busy candidate: false `slower` (the busy check, analysis/interference.py);
* a real 10% slowdown (every candidate sample x 1.10) on quiet runs: `slower` (detection).

Rules: `pooled` = the fast quartile of all processes' samples (before issue 27), `fast-level`
= pooled over the processes at each side's fast level with a majority needed
(analysis/processes.py), each with and without the busy check.

    python benchmarks/bench_false_alarms.py [--quiet-runs 16] [--busy-runs 6] [--pairs 120]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MOBILENET = REPO / "host" / "models" / "builtin" / "data" / "mobilenet.tflite"
LOADS = [
    "from ai_edge_litert.interpreter import Interpreter\n"
    f"i = Interpreter(model_path={str(MOBILENET)!r}, num_threads=1)\n"
    "i.allocate_tensors()\nwhile True: i.invoke()\n",
] * 2 + ["import numpy as np\na = np.ones(20_000_000)\nb = np.empty_like(a)\n"
         "while True: np.copyto(b, a)\n"]


def one_run(tmp: Path, i: int) -> Dict[str, Any]:
    out = tmp / f"run{i}.json"
    env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp / "cache"))
    # a `local` device of its own (its own workdir, so its own device lock): on a machine
    # shared with other benchmarks this measures beside them instead of queueing behind them
    cfg = tmp / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  local:\n    transport: local\n"
                   f"    workdir: {tmp / 'wd'}\n")
    env["EDGE_BENCH_CONFIG"] = str(cfg)
    p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--model", "builtin:digits",
                        "--variants", "fp32", "--no-store", "--json", str(out), "-q",
                        "--lock-wait", "600"],
                       env=env, cwd=str(tmp), capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    (r,) = json.loads(out.read_text())["results"]
    return r


def processes(r: Dict[str, Any]) -> List[Tuple[np.ndarray, Dict[str, Any]]]:
    s = np.asarray(r["samples_ms"], dtype=np.float64)
    cuts = np.cumsum(r["process_runs"])[:-1]
    busy = (r.get("interference") or {}).get("processes") or [r.get("interference") or {}] * 3
    return list(zip(np.split(s, cuts), busy))


def synth(pool: List[Tuple[np.ndarray, Dict[str, Any]]], rng: np.random.Generator,
          scale: float = 1.0) -> Dict[str, Any]:
    pick = rng.choice(len(pool), size=3, replace=False)
    parts = [pool[j] for j in pick]
    s = np.concatenate([p[0] for p in parts]) * scale
    inter = {"other_cores": float(np.mean([p[1].get("other_cores") or 0 for p in parts])),
             "steal_cores": 0.0, "cores": os.cpu_count(),
             "processes": [{"other_cores": p[1].get("other_cores"), "steal_cores": 0.0}
                           for p in parts]}
    return {"device": "local", "model": "builtin:digits", "variant": "fp32", "threads": 1,
            "status": "ok", "samples_ms": s.tolist(), "process_runs": [p[0].size for p in parts],
            "interference": inter}


@contextmanager
def rule(pooled: bool, busy_check: bool) -> Iterator[None]:
    """The verdict with the issue-27 rules switched off as asked (patched for the benchmark)."""
    from edge_bench.analysis import verdict
    saved = (verdict.fast_processes, verdict.minority_note, verdict.busy_reason)
    if pooled:
        verdict.fast_processes = lambda g, q, t: list(g)          # type: ignore[assignment]
        verdict.minority_note = lambda *a: None                    # type: ignore[assignment]
    if not busy_check:
        verdict.busy_reason = lambda *a: None                      # type: ignore[assignment]
    try:
        yield
    finally:
        verdict.fast_processes, verdict.minority_note, verdict.busy_reason = saved


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quiet-runs", type=int, default=16)
    ap.add_argument("--busy-runs", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=120)
    ap.add_argument("--keep", metavar="FILE", help="write the runs made to FILE (JSON)")
    ap.add_argument("--runs-from", metavar="FILE", help="judge the runs in FILE, make none")
    args = ap.parse_args()
    from edge_bench.analysis.verdict import compare_results
    t0 = time.time()
    if args.runs_from:
        got = json.loads(Path(args.runs_from).read_text())
        quiet, busy = got["quiet"], got["busy"]
    else:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            quiet = [one_run(tmp, i) for i in range(args.quiet_runs)]
            busy = []
            load = [subprocess.Popen([sys.executable, "-c", code]) for code in LOADS]
            try:
                time.sleep(2.0)
                busy = [one_run(tmp, 100 + i) for i in range(args.busy_runs)]
            finally:
                for p in load:
                    p.kill()
                    p.wait()
        if args.keep:
            Path(args.keep).write_text(json.dumps({"quiet": quiet, "busy": busy}))
    qpool = [p for r in quiet for p in processes(r)]
    bpool = [p for r in busy for p in processes(r)]
    oc = lambda rs: [round((r.get("interference") or {}).get("other_cores") or 0, 2) for r in rs]  # noqa: E731
    print(f"runs made in {time.time() - t0:.0f} s; other_cores quiet {oc(quiet)}, busy {oc(busy)}")
    p25 = [round(float(np.quantile(p[0], 0.25)) * 1000, 2) for p in qpool]
    print(f"quiet processes' p25 (us): {p25}")
    rng = np.random.default_rng(0)
    pairs = {"same": [(synth(qpool, rng), synth(qpool, rng)) for _ in range(args.pairs)],
             "busy": [(synth(qpool, rng), synth(bpool, rng)) for _ in range(args.pairs)]
             if len(bpool) >= 3 else []}
    pairs["slow10"] = [(synth(qpool, rng), synth(qpool, rng, 1.10)) for _ in range(args.pairs)]
    print("| rule | quiet same vs same: slower / faster | quiet base vs busy cand: slower |"
          " real +10%: slower |")
    print("|---|---|---|---|")
    for name, pooled, check in (("pooled (before)", True, False), ("pooled + busy check", True, True),
                                ("fast-level + busy check (now)", False, True)):
        with rule(pooled, check):
            def count(kind: str, verdict: str) -> str:
                ps = pairs[kind]
                n = sum(1 for a, b in ps if compare_results(a, b)["verdict"] == verdict)
                return f"{n}/{len(ps)}" if ps else "-"
            print(f"| {name} | {count('same', 'slower')} / {count('same', 'faster')} |"
                  f" {count('busy', 'slower')} | {count('slow10', 'slower')} |", flush=True)
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
