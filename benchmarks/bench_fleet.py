"""Fleet scaling: `edge-bench run` on 1, 4, 8 and 16 SSH devices at once.

Every device is a real OpenSSH sshd in its own network namespace with its own IP
(tests/netns.py), held to a slice of one CPU by a cgroup v1 cpu quota (default 10%, so 16
devices need 1.6 of this machine's 2 cores, the way a real fleet is bound by its boards and not
by the controller's host). Each device runs one job: builtin:digits fp32, --runs 50,
--min-seconds 0.5 (agent, model and eval data pushed, timed, accuracy scored on the host).

Measured for each N, median of --repeats runs:
  * wall time of `edge-bench run` (process start to exit), first run (fresh workdirs: agent,
    model and eval data are pushed) and second run (same workdirs: nothing to push);
  * the controller's own CPU time (user+sys of the `edge-bench run` process, from
    getrusage(RUSAGE_CHILDREN); the devices' CPU is in their cgroups, not counted), in total and
    per device-job; the marginal cost of one more device, (cpu(N) - cpu(1)) / (N - 1), is what
    scales with the fleet, the rest is the fixed cost of starting Python, importing numpy,
    LiteRT, paramiko and rich, and scoring accuracy;
  * bytes pushed (sum over the devices, from the results document) on the first and second run.

Goals (issue 5): 16 devices in at most 1.5x the wall time of one; controller CPU under 50 ms
per device-job.

Run as root (namespaces, cgroups):
    python benchmarks/bench_fleet.py [--sizes 1,4,8,16] [--repeats 3] [--cpu 0.1] [--write-docs]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

# one worker process per job (--processes 1), as when docs/benchmarks.md was measured: this
# benchmark is about the controller and the links, not about the timing loop
JOB = ["--model", "builtin:digits", "--variants", "fp32", "--threads", "1", "--runs", "50",
       "--warmup", "5", "--min-seconds", "0.5", "--processes", "1", "--no-store", "--quiet"]


def one_run(cfg: Path, n: int, tmp: Path, env: Dict[str, str]) -> Dict[str, Any]:
    out = tmp / "out.json"
    if out.exists():
        out.unlink()
    devices = ",".join(f"dev{i}" for i in range(n))
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--config", str(cfg),
                        "--devices", devices, *JOB, "--json", str(out)],
                       capture_output=True, text=True, env=env, cwd=str(tmp), timeout=900)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"edge-bench run on {n} devices exited {p.returncode}:\n{p.stderr[-3000:]}")
    doc = json.loads(out.read_text())
    assert len(doc["results"]) == n and all(r["status"] == "ok" for r in doc["results"])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "load": max(load, os.getloadavg()[0]),
            "bytes_pushed": sum(d["bytes_pushed"] for d in doc["devices"].values())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,4,8,16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu", type=float, default=0.1, help="CPU fraction per device (cgroup quota)")
    ap.add_argument("--period-us", type=int, default=20_000, help="cgroup cfs period")
    ap.add_argument("--write-docs", action="store_true",
                    help="replace the '## Fleet scaling' section of docs/benchmarks.md")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    import netns
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    fleet = netns.start_fleet(tmp, max(sizes))
    try:
        for d in fleet.devices:
            d.set_cpu(args.cpu, args.period_us)
        env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp / "cache"))
        env.pop("EDGE_BENCH_CONFIG", None)
        # warm the host-side caches (built-in model artifacts, fp32 reference outputs) once
        warm = fleet.write_yaml(tmp / "warm.yaml", workdir=str(tmp / "warm"))
        one_run(warm, 1, tmp, env)
        rows = []
        for n in sizes:
            first: List[Dict[str, Any]] = []
            second: List[Dict[str, Any]] = []
            for rep in range(args.repeats):
                cfg = fleet.write_yaml(tmp / f"n{n}-r{rep}.yaml", per_device={
                    d.name: {"workdir": str(tmp / f"work-n{n}-r{rep}-{d.name}")} for d in fleet.devices},
                    idle_timeout_s=300)
                first.append(one_run(cfg, n, tmp, env))
                second.append(one_run(cfg, n, tmp, env))
                print(f"  n={n} rep={rep}: first {first[-1]['wall_s']:.2f} s"
                      f" cpu {first[-1]['cpu_s']:.2f} s, second {second[-1]['wall_s']:.2f} s"
                      f" cpu {second[-1]['cpu_s']:.2f} s", file=sys.stderr)
            med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
            rows.append({"n": n, "wall1": med(first, "wall_s"), "wall2": med(second, "wall_s"),
                         "cpu1": med(first, "cpu_s"), "cpu2": med(second, "cpu_s"),
                         "bytes1": med(first, "bytes_pushed"), "bytes2": med(second, "bytes_pushed"),
                         "load": med(first + second, "load")})
    finally:
        fleet.close()
    base = rows[0]
    for r in rows:
        r["ratio1"] = r["wall1"] / base["wall1"]
        r["ratio2"] = r["wall2"] / base["wall2"]
        r["marg1"] = (r["cpu1"] - base["cpu1"]) / (r["n"] - base["n"]) if r["n"] > base["n"] else None
        r["marg2"] = (r["cpu2"] - base["cpu2"]) / (r["n"] - base["n"]) if r["n"] > base["n"] else None
    text = render(rows, args)
    print(text)
    if args.write_docs:
        write_section(REPO / "docs" / "benchmarks.md", text)
    return 0


def _ms(x: Any) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def render(rows: List[Dict[str, Any]], args: argparse.Namespace) -> str:
    big = rows[-1]
    lines = [
        "## Fleet scaling",
        "",
        f"`python benchmarks/bench_fleet.py --sizes {args.sizes} --repeats {args.repeats}"
        f" --cpu {args.cpu:g}` ({date.today().isoformat()}, {platform.machine()},"
        f" {os.cpu_count()} cores, Python {platform.python_version()}).",
        "",
        f"Each device: a real OpenSSH sshd in its own network namespace (own IP on a bridge),"
        f" held to {args.cpu:.0%} of one CPU by a cgroup v1 quota (period {args.period_us // 1000} ms),"
        " as a board would be. One job per device: builtin:digits fp32, 50 runs, 0.5 s minimum,"
        " eval data scored on the host. Median of the repeats. *First* = fresh workdirs (agent,"
        " model and eval data pushed); *second* = the same again (content-addressed: nothing"
        " pushed). Controller CPU = user+sys of the `edge-bench run` process only; *marginal* ="
        " (cpu(N) - cpu(1)) / (N - 1), the cost of one more device-job.",
        "",
        "| devices | wall first (s) | x one | wall second (s) | x one | controller CPU first (s)"
        " | per job (ms) | marginal per job (ms) | controller CPU second (s) | marginal per job (ms)"
        " | bytes pushed first | bytes pushed second | host load (1 min) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['wall1']:.2f} | {r['ratio1']:.2f} | {r['wall2']:.2f} | {r['ratio2']:.2f}"
            f" | {r['cpu1']:.2f} | {_ms(r['cpu1'] / r['n'])} | {_ms(r['marg1'])}"
            f" | {r['cpu2']:.2f} | {_ms(r['marg2'])} | {int(r['bytes1']):,} | {int(r['bytes2']):,}"
            f" | {r['load']:.1f} |")
    ok_wall = big["ratio1"] <= 1.5 and big["ratio2"] <= 1.5
    marg = max(x for x in (big["marg1"], big["marg2"]) if x is not None) if big["n"] > 1 else None
    lines += [
        "",
        f"Goal: {big['n']} devices in at most 1.5x the wall time of one:"
        f" {big['ratio1']:.2f}x / {big['ratio2']:.2f}x -> {'met' if ok_wall else 'MISSED'}.",
        f"Goal: controller CPU under 50 ms per device-job (marginal):"
        f" {_ms(marg)} ms -> {'met' if marg is not None and marg < 0.05 else 'MISSED'}"
        f" (the fixed cost of one run, mostly interpreter start and imports, is"
        f" {base_cost(rows):.2f} s).",
    ]
    return "\n".join(lines) + "\n"


NOTES = "\nWhat the first measurements found, and what was fixed:\n\n* **Controller CPU was 700-760 ms per device-job** (16 devices: 12-13 s of controller CPU). A\n  py-spy profile of `edge-bench run` put 75% of it in `stats.bootstrap_median_ci`: 2000\n  resamples of every result's raw samples (10000 for a microsecond model that hits --max-runs),\n  i.e. a 2000x10000 array (160 MB) sorted per result, and done twice (the store computes the\n  CI again). Fixed in host/analysis/stats.py: above 500 samples the interval is computed as the limit\n  resampling converges to (the bootstrap median's quantiles are the order statistics of rank\n  n/2 -/+ z*sqrt(n)/2), O(n) instead of O(2000 n); it agrees with 20000 resamples to within\n  resampling noise. Now 32-35 ms per extra device-job; the rest of a run (0.44 s) is the fixed\n  cost of starting Python and importing numpy, LiteRT, paramiko and rich, paid once per run.\n* **Wall time was 3x at 16 devices** (34 s vs 11 s). Not the controller: every remote command\n  took 1.1 s on a 10% device because this host's root `~/.bashrc` (which bash sources for every\n  SSH command) runs `pyenv init`, ~110 ms of CPU and a `pyenv rehash` behind one lock file\n  shared by all the devices, serializing them. A board's login shell does none of that; the\n  fleet fixture now bind-mounts an empty rc file over it inside each device's own mount\n  namespace (tests/netns.py). The device groups' cpu.shares are also raised so that the fleet\n  is not starved by other load on the machine (cgroup v1 shares are hierarchical).\n"


def base_cost(rows: List[Dict[str, Any]]) -> float:
    return rows[0]["cpu2"] - (rows[-1]["marg2"] or 0.0) * rows[0]["n"]


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the '## Fleet scaling' section, leaving the others alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## Fleet scaling")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 3)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
