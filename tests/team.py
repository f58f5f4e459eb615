"""Helpers for the team-scale tests: devices.yaml for two labs of real sshd devices, worker
processes (the real CLI), and queries on the shared store."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import pgserver

FAST = ["--model", "builtin:digits", "--variants", "fp32", "--runs", "5", "--warmup", "1",
        "--min-seconds", "0", "--processes", "1"]


def lab_yaml(path: Path, devices: Dict[str, Any], workdirs: Path) -> Path:
    """devices: name -> (sshd, lab). Each device is its own workdir on its lab's sshd."""
    lines = ["version: 1", "devices:"]
    for name, (sshd, lab) in devices.items():
        lines += [f"  {name}:", "    transport: ssh", f"    host: {sshd.host}",
                  f"    port: {sshd.port}", f"    user: {sshd.user}", f"    key: {sshd.client_key}",
                  f"    known_hosts: {sshd.known_hosts}", f"    python: {sys.executable}",
                  f"    workdir: {workdirs / name}", "    retries: 1", f"    lab: {lab}",
                  "    lock_wait_s: 120"]
    path.write_text("\n".join(lines) + "\n")
    return path


def env(tmp: Path, db: Optional[str] = None) -> Dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_BENCH_", "PG"))}
    e["EDGE_BENCH_CACHE"] = str(tmp / "cache")
    if db:
        e["EDGE_BENCH_DB"] = db
    return e


def cli(args: List[str], tmp: Path, db: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", *args], capture_output=True,
                          text=True, env=env(tmp, db), cwd=str(tmp), timeout=timeout)


def main(args: List[str], db: Optional[str]) -> subprocess.CompletedProcess:
    """The real CLI entry point in this process (no interpreter start: ~3 s less per call on a
    busy 2-core box), with --db; stdout/stderr captured like `cli`."""
    import contextlib
    import io
    from edge_bench.cli import main as cli_main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main([*args, "--db", db] if db else list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def popen(args: List[str], tmp: Path, db: str, log: Path,
          prefix: Sequence[str] = ()) -> subprocess.Popen:
    f = log.open("w")
    return subprocess.Popen([*prefix, sys.executable, "-m", "edge_bench.cli", *args], stdout=f,
                            stderr=subprocess.STDOUT, env=env(tmp, db), cwd=str(tmp),
                            start_new_session=True, text=True)


class Workers:
    """Worker processes started by a test; each one ended (its own process group) at close."""

    def __init__(self, tmp: Path, db: str) -> None:
        self.tmp, self.db = tmp, db
        self.procs: List[subprocess.Popen] = []

    def start(self, lab: str, config: Optional[Path], *extra: str,
              netns: Optional[str] = None, db: Optional[str] = None) -> subprocess.Popen:
        """A worker process; with `netns`, inside that network namespace (a lab host that
        reaches only its own lab's network), talking to the server at `db`."""
        n = len(self.procs)
        cfg = ["--config", str(config)] if config else []
        p = popen(["worker", "--lab", lab, *cfg, *extra], self.tmp, db or self.db,
                  self.tmp / f"worker-{lab}-{n}.log",
                  prefix=["ip", "netns", "exec", netns] if netns else [])
        self.procs.append(p)
        pgserver.wait_for(lambda: registered(self.db, p.pid) or p.poll() is not None, 60,
                          f"worker for {lab} to register")
        assert p.poll() is None, self.log(p)
        return p

    def log(self, p: subprocess.Popen) -> str:
        i = self.procs.index(p)
        logs = sorted(self.tmp.glob(f"worker-*-{i}.log"))
        return logs[0].read_text() if logs else ""

    def kill(self, p: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        p.wait(30)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(10)


def query(db: str, sql: str, params: Iterable[Any] = ()) -> List[Any]:
    import psycopg
    with psycopg.connect(db, autocommit=True) as c:
        return c.execute(sql, tuple(params)).fetchall()


def served(db: str) -> List[str]:
    try:
        return [r[0] for r in query(db, "SELECT lab FROM edge_bench_workers"
                                        " WHERE heartbeat > now() - interval '30 seconds'")]
    except Exception:
        return []


def registered(db: str, pid: int) -> bool:
    try:
        return bool(query(db, "SELECT 1 FROM edge_bench_workers WHERE pid = %s", (pid,)))
    except Exception:
        return False


def results(db: str, run_id: str) -> List[Any]:
    return query(db, "SELECT device, model, variant, threads, status, id FROM results"
                     " WHERE run_id = %s ORDER BY id", (run_id,))


def run_status(db: str, run_id: str) -> Optional[str]:
    rows = query(db, "SELECT status FROM runs WHERE run_id = %s", (run_id,))
    return rows[0][0] if rows else None


def job_spans(db: str) -> List[Any]:
    """(device lock, run_id, started, ended) of every finished device job."""
    return query(db, """
        SELECT j.lock, j.args->>'run_id',
               (SELECT min(e.at) FROM procrastinate_events e WHERE e.job_id = j.id AND e.type = 'started'),
               (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id
                 AND e.type IN ('succeeded', 'failed', 'cancelled', 'aborted'))
          FROM procrastinate_jobs j ORDER BY j.id""")
