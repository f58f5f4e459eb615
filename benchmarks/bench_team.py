"""Team scale: the job queue (procrastinate on PostgreSQL) with 2 labs x 8 devices, 4 submitters.

Setup: a throwaway PostgreSQL cluster (tests/pgserver.py), two real sshd servers as the two labs'
device hosts, 8 devices per lab (each its own workdir and device lock on its lab's sshd), one
`edge-bench worker` process per lab (each with only its lab's devices in its devices.yaml).

Measured:
  * queue: 4 submitters started at once, each `submit --wait` for all 16 devices = 64 jobs;
    all complete, duplicates (a (run, device, model, variant, threads) stored twice) and lost
    results (a planned key never stored) counted from the store; wall time from the first
    submit's start to the last one's exit;
  * the same 64 device-jobs through `run` from one controller: 4 `edge-bench run` over the
    16 devices, one after the other (what one machine without the queue does); wall time;
  * queue overhead per job: from the moment a job could start (it was deferred and the previous
    job on its device had ended) to its `started` event, ms (median, p95), from procrastinate's
    event table;
  * store write throughput: `add_result` of results with 300 raw samples each, 1 writer and
    4 writer threads, PostgreSQL vs SQLite (WAL), results/s.

Goal (issue 14): queue wall time <= 1.2x the `run` wall time; 0 duplicates, 0 lost.

Run as root:
    python benchmarks/bench_team.py [--per-lab 8] [--submitters 4] [--write-docs]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

JOB = ["--model", "builtin:digits", "--variants", "fp32", "--threads", "1", "--runs", "20",
       "--warmup", "2", "--min-seconds", "0.2", "--processes", "1", "--quiet"]


def pct(xs: List[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def store_throughput(db: str, tmp: Path, n: int = 400) -> Dict[str, float]:
    import numpy as np
    from synth import fake_result
    from edge_bench.results.backend import open_store
    out: Dict[str, float] = {}
    for kind, ref in (("postgresql", db), ("sqlite", str(tmp / "bench.sqlite"))):
        for writers in (1, 4):
            st = open_store(ref)
            rid = st.begin_run({"label": f"bench-{writers}"})
            rng = np.random.default_rng(0)
            docs = [fake_result(1.0 + 0.05 * rng.random(300), device=f"d{i % writers}",
                                model="m", variant=f"v{i}", threads=1,
                                median_ci_ms=[0.9, 1.1]) for i in range(n)]

            def write(part: List[Dict[str, Any]]) -> None:
                for r in part:
                    st.add_result(rid, r)
            threads = [threading.Thread(target=write, args=(docs[w::writers],))
                       for w in range(writers)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out[f"{kind}_{writers}"] = n / (time.perf_counter() - t0)
            assert len(st.get_run(rid, samples=False)["results"]) == n
            st.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-lab", type=int, default=8)
    ap.add_argument("--submitters", type=int, default=4)
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args()
    import pgserver
    import sshd
    import team
    tmp = Path(tempfile.mkdtemp(prefix="bench-team-"))
    cluster = pgserver.start_cluster()
    servers = []
    workers = None
    try:
        db = cluster.create_db("bench")
        key = sshd.make_keypair(tmp / "client_key", "bench-team")
        servers = [sshd.start_sshd(tmp, client_key=key, name=f"lab{i}") for i in (1, 2)]
        devs = {f"{lab}-d{i}": (srv, lab) for lab, srv in zip(("lab1", "lab2"), servers)
                for i in range(a.per_lab)}
        wd = tmp / "workdirs"
        all_cfg = team.lab_yaml(tmp / "all.yaml", devs, wd)
        cfgs = {lab: team.lab_yaml(tmp / f"{lab}.yaml",
                                   {k: v for k, v in devs.items() if v[1] == lab}, wd)
                for lab in ("lab1", "lab2")}
        names = ",".join(devs)
        env = team.env(tmp)
        # warm up: agent, model and eval data pushed once to every workdir, for both ways
        p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--config", str(all_cfg),
                            "--devices", names, *JOB, "--no-store"], env=env, cwd=str(tmp),
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr

        # --- the same 64 jobs through `run`, one controller, runs back to back ----------------
        t0 = time.perf_counter()
        for i in range(a.submitters):
            p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--config",
                                str(all_cfg), "--devices", names, *JOB, "--no-store"],
                               env=env, cwd=str(tmp), capture_output=True, text=True, timeout=900)
            assert p.returncode == 0, p.stderr
        run_wall = time.perf_counter() - t0

        # --- through the queue: two workers, submitters at once ------------------------------
        workers = team.Workers(tmp, db)
        for lab in ("lab1", "lab2"):
            workers.start(lab, cfgs[lab])
        t0 = time.perf_counter()
        subs = [team.popen(["submit", "--config", str(all_cfg), "--devices", names, *JOB,
                            "--label", f"sub{i}", "--wait"], tmp, db, tmp / f"sub{i}.log")
                for i in range(a.submitters)]
        codes = [s.wait(1800) for s in subs]
        queue_wall = time.perf_counter() - t0
        assert codes == [0] * a.submitters, [(tmp / f"sub{i}.log").read_text() for i in range(a.submitters)]

        runs = team.query(db, "SELECT run_id, status FROM runs WHERE label LIKE 'sub%%'")
        stored = team.query(db, "SELECT r.run_id, r.device, r.model, r.variant, r.threads FROM"
                                " results r JOIN runs u ON u.run_id = r.run_id"
                                " WHERE u.label LIKE 'sub%%'")
        planned = {(rid, d) for rid, _ in runs for d in devs}
        got = [(x[0], x[1]) for x in stored]
        duplicates = len(got) - len(set(got))
        lost = len(planned - set(got))
        jobs = team.query(db, """
            SELECT j.lock, j.id,
              (SELECT min(at) FROM procrastinate_events e WHERE e.job_id = j.id AND type = 'deferred'),
              (SELECT min(at) FROM procrastinate_events e WHERE e.job_id = j.id AND type = 'started'),
              (SELECT max(at) FROM procrastinate_events e WHERE e.job_id = j.id
                 AND type IN ('succeeded', 'failed')), j.status::text
            FROM procrastinate_jobs j ORDER BY j.lock, 4""")
        overhead: List[float] = []
        prev_end: Dict[str, Any] = {}
        for lock, _id, deferred, started, ended, _st in jobs:
            ready = max(deferred, prev_end[lock]) if lock in prev_end else deferred
            overhead.append((started - ready).total_seconds() * 1000)
            prev_end[lock] = ended
        thr = store_throughput(cluster.url("postgres").rsplit("/", 1)[0] + "/bench", tmp)
        res = {
            "jobs": len(jobs), "succeeded": sum(1 for j in jobs if j[5] == "succeeded"),
            "runs_ok": sum(1 for r in runs if r[1] == "ok"), "duplicates": duplicates,
            "lost": lost, "queue_wall": queue_wall, "run_wall": run_wall,
            "ratio": queue_wall / run_wall, "overhead_med": statistics.median(overhead),
            "overhead_p95": pct(overhead, 0.95), **thr,
        }
    finally:
        if workers:
            workers.close()
        for s in servers:
            s.stop()
        pgserver.remove_cluster(cluster)
        shutil.rmtree(tmp, ignore_errors=True)
    print(res)
    text = render(res, a)
    print(text)
    if a.write_docs:
        doc = REPO / "docs" / "benchmarks.md"
        body = doc.read_text()
        marker = "## Team scale"
        if marker in body:  # replace this section only, up to the next one
            start = body.index(marker)
            nxt = body.find("\n## ", start + len(marker))
            rest = body[nxt:] if nxt >= 0 else ""
            body = body[:start].rstrip() + "\n\n" + text.rstrip() + "\n" + rest
        else:
            body = body.rstrip() + "\n\n" + text
        doc.write_text(body)
    return 0


def render(r: Dict[str, Any], a: argparse.Namespace) -> str:
    n = a.per_lab * 2
    return f"""## Team scale: the job queue on PostgreSQL

`python benchmarks/bench_team.py --write-docs` ({date.today()}, {platform.machine()},
{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL from Debian, procrastinate).
2 labs x {a.per_lab} devices (real sshd, one `edge-bench worker` process per lab),
{a.submitters} submitters started at once, each `submit --wait` for all {n} devices:
{r['jobs']} jobs of builtin:digits fp32 (`{' '.join(JOB)}`).

| measure | value |
| --- | --- |
| jobs succeeded / queued | {r['succeeded']} / {r['jobs']} |
| runs `ok` | {r['runs_ok']} / {a.submitters} |
| duplicate results | {r['duplicates']} |
| lost results | {r['lost']} |
| wall time, queue (first submit to last exit) | {r['queue_wall']:.1f} s |
| wall time, the same jobs as {a.submitters} `run`s back to back from one controller | {r['run_wall']:.1f} s |
| queue / run | {r['ratio']:.2f}x (goal <= 1.2x) |
| queue overhead per job, ready to started (median / p95) | {r['overhead_med']:.0f} / {r['overhead_p95']:.0f} ms |
| store writes, PostgreSQL, 1 / 4 writers | {r['postgresql_1']:.0f} / {r['postgresql_4']:.0f} results/s |
| store writes, SQLite (WAL), 1 / 4 writers | {r['sqlite_1']:.0f} / {r['sqlite_4']:.0f} results/s |

"Ready" is when the job was deferred or, if later, when the previous job on its device (the
same procrastinate lock) ended: the time the queue itself adds. Each stored result carries 300
raw samples; each write is its own transaction (a result is durable the moment it arrives).
"""


if __name__ == "__main__":
    sys.exit(main())
