"""Fault tests on a fleet of real SSH devices (tests/netns.py: one sshd per network namespace,
its own IP, its own cgroup), all driven through `edge-bench run` as a subprocess.

Each test lands one fault on one device while the others run, then checks what a lab engineer
relies on: the faulty device is marked failed with the reason, the others finish, exit code 3
(partial), every finished result is in the JSON document AND in the SQLite store, and nothing is
left running on the devices where the controller could still reach them.

Jobs use builtin:mobilenet fp32 (0.4 ms per invoke here), one worker process per task
(--processes 1), with --min-seconds so that each task
really times for a couple of seconds: builtin:digits (1.4 us per invoke) hits --max-runs in
14 ms, far too short for a fault to land "mid-run". A fault is triggered when the device's
agent worker process appears in /proc (found through the device's cgroup), so it lands inside
the timing loop, not before or after it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

# exclusive: stop times and a throttled device's slowdown are measured; nothing else runs
# beside it (conftest.py)
pytestmark = pytest.mark.exclusive

REPO = Path(__file__).resolve().parents[1]
# --min-seconds, not the sample cap, sets how long a task runs; one worker process per task, so
# that a fault triggered by "the worker has appeared" lands inside that task's only timing loop
# (several processes per task: tests/test_agent.py::test_a_crashing_process_fails_its_task_once...)
JOB = ["--model", "builtin:mobilenet", "--variants", "fp32", "--runs", "10", "--warmup", "1",
       "--max-runs", "1000000", "--processes", "1"]


# ---------------------------------------------------------------------------- helpers
class Run:
    """`edge-bench run` in a subprocess, with its JSON document and store."""

    def __init__(self, tmp: Path, cfg: Path, *args: str, devices: str = "tag:fleet",
                 threads: str = "1,2", min_seconds: float = 2.0, label: str = "faults") -> None:
        self.tmp = tmp
        self.out = tmp / f"{label}.json"
        self.db = tmp / "results.sqlite"
        env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp / "cache"), PYTHONUNBUFFERED="1")
        env.pop("EDGE_BENCH_CONFIG", None)
        argv = [sys.executable, "-m", "edge_bench.cli", "run", "--config", str(cfg),
                "--devices", devices, *JOB, "--threads", threads,
                "--min-seconds", str(min_seconds), "--json", str(self.out), "--db", str(self.db),
                "--label", label, *args]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=str(tmp))
        self.code: Optional[int] = None
        self.stdout = self.stderr = ""
        self.wall = 0.0

    def finish(self, timeout: float = 240) -> "Run":
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.stdout, self.stderr = self.proc.communicate()
            raise AssertionError(f"edge-bench run did not finish in {timeout} s:\n{self.stderr[-3000:]}")
        self.code = self.proc.returncode
        self.wall = time.monotonic() - self.t0
        return self

    @property
    def doc(self) -> Dict[str, Any]:
        assert self.out.exists(), f"no JSON document; exit {self.code}\n{self.stderr[-3000:]}"
        return json.loads(self.out.read_text())

    def stored(self) -> Dict[str, Any]:
        from edge_bench.results.store import Store
        with Store(self.db) as st:
            return st.get_run(self.doc["run_id"], samples=False)

    def results(self, device: str) -> List[Dict[str, Any]]:
        return [r for r in self.doc["results"] if r["device"] == device]

    def why(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.stdout[-2500:]}\nstderr:\n{self.stderr[-4000:]}"


def wait_worker(dev: Any, run: Run, timeout: float = 90.0, settle: float = 0.7) -> List[int]:
    """Wait until the device's agent worker is timing (then `settle` s more); return its pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            raise AssertionError("edge-bench exited before the fault could land:\n" + run.why())
        pids = dev.pids("--worker")
        if pids:
            time.sleep(settle)
            return pids
        time.sleep(0.05)
    raise AssertionError(f"{dev.name}: the agent worker never started\n{run.why()}")


def wait_gone(dev: Any, timeout: float = 15.0) -> List[int]:
    """Poll until the device runs no agent process; return what is left after `timeout`."""
    deadline = time.monotonic() + timeout
    left = dev.agent_pids()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = dev.agent_pids()
    return left


def assert_others_ok(run: Run, fleet: Any, bad: str, per_device: int = 2) -> None:
    for d in fleet.devices:
        if d.name == bad:
            continue
        rs = run.results(d.name)
        assert len(rs) == per_device, (d.name, rs, run.why())
        for r in rs:
            assert r["status"] == "ok", (d.name, r["error"], run.why())
            assert r["runs"] >= 10 and len(r["samples_ms"]) == r["runs"]


def assert_stored_like_doc(run: Run) -> Dict[str, Any]:
    """Every result of the document is in the store, with the same status."""
    st = run.stored()
    doc_keys = sorted((r["device"], r["threads"], r["status"]) for r in run.doc["results"])
    st_keys = sorted((r["device"], r["threads"], r["status"]) for r in st["results"])
    assert doc_keys == st_keys, (doc_keys, st_keys)
    return st


def no_traceback(run: Run) -> None:
    assert "Traceback" not in run.stderr, run.why()


# ---------------------------------------------------------------------------- (a) link down
@pytest.mark.netns
def test_link_down_mid_run_stalls_that_device_others_finish(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(4)
    cfg = fleet.write_yaml(tmp_path / "devices.yaml", idle_timeout_s=6, connect_timeout_s=3)
    run = Run(tmp_path, cfg)
    bad = fleet[1]
    wait_worker(bad, run)
    t_fault = time.monotonic()
    bad.link_down()
    run.finish()
    assert run.code == 3, run.why()
    bad_rs = run.results(bad.name)
    assert bad_rs and all(r["status"] == "error" for r in bad_rs), bad_rs
    err = bad_rs[0]["error"]
    assert "stalled" in err and "no output for" in err, err
    # detected by the application idle timeout (6 s) plus the kill attempt (connect_timeout_s 3)
    assert time.monotonic() - t_fault < 6 + 3 + 30
    assert run.doc["devices"][bad.name]["failure"]
    assert_others_ok(run, fleet, bad.name)
    st = assert_stored_like_doc(run)
    assert st["status"] == "partial"
    assert sum(r["status"] == "ok" for r in st["results"]) == 6
    no_traceback(run)


# ---------------------------------------------------------------------------- (b) sshd killed
def test_sshd_killed_mid_run_fails_that_device_others_finish(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(3)
    cfg = fleet.write_yaml(tmp_path / "devices.yaml", idle_timeout_s=30)
    run = Run(tmp_path, cfg)
    bad = fleet[0]
    wait_worker(bad, run)
    bad.kill_sshd()
    run.finish()
    assert run.code == 3, run.why()
    bad_rs = run.results(bad.name)
    assert len(bad_rs) == 2 and all(r["status"] == "error" for r in bad_rs), bad_rs
    assert "connection" in bad_rs[0]["error"] and "lost" in bad_rs[0]["error"], bad_rs[0]["error"]
    assert_others_ok(run, fleet, bad.name)
    assert_stored_like_doc(run)
    assert run.stored()["status"] == "partial"
    no_traceback(run)


# ---------------------------------------------------------------------------- (c) agent killed
def test_agent_worker_killed_that_task_errors_job_continues(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(3)
    cfg = fleet.write_yaml(tmp_path / "devices.yaml", idle_timeout_s=30)
    run = Run(tmp_path, cfg)
    bad = fleet[2]
    for pid in wait_worker(bad, run):
        os.kill(pid, signal.SIGKILL)          # what `pkill -9 -f 'agent-.*--worker'` does
    run.finish()
    assert run.code == 3, run.why()
    rs = sorted(run.results(bad.name), key=lambda r: r["threads"])
    assert [r["status"] for r in rs] == ["error", "ok"], rs      # the next task still ran
    assert "killed by SIGKILL" in rs[0]["error"], rs[0]["error"]
    d = rs[0]["error_detail"]                 # the same facts as fields, over real ssh
    assert d["type"] == "WorkerCrashed" and d["signal"] == signal.SIGKILL, d
    assert d["signal_name"] == "SIGKILL" and d["exit_code"] is None
    assert run.doc["devices"][bad.name]["failure"] is None
    assert_others_ok(run, fleet, bad.name)
    assert_stored_like_doc(run)
    no_traceback(run)


def test_agent_process_killed_device_fails_cleanly_no_orphans(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(3)
    cfg = fleet.write_yaml(tmp_path / "devices.yaml", idle_timeout_s=30)
    # 4 s tasks: on a loaded machine this test's poller can lag the job by seconds, and the
    # job process must still be there when the fault lands (a CI run once found it gone)
    run = Run(tmp_path, cfg, min_seconds=4.0)
    bad = fleet[1]
    workers = wait_worker(bad, run)
    main = [p for p in bad.agent_pids() if "--worker" not in _cmd(p)]
    assert main, bad.agent_pids()
    for pid in workers:       # a worker that would never finish on its own once orphaned
        os.kill(pid, signal.SIGSTOP)
    for pid in main:
        os.kill(pid, signal.SIGKILL)
    run.finish()
    assert run.code == 3, run.why()
    rs = run.results(bad.name)
    assert len(rs) == 2 and all(r["status"] == "error" for r in rs), rs
    assert "exited -9 before finishing" in rs[0]["error"], rs[0]["error"]
    for r in rs:
        d = r["error_detail"]
        assert d["type"] == "AgentExited" and d["signal"] == signal.SIGKILL, d
        assert d["exit_code"] is None and "exited -9 before finishing" in d["message"], d
    # the orphaned (stopped) worker was killed with the agent's process group
    assert wait_gone(bad, 5) == [], [_cmd(p) for p in bad.agent_pids()]
    assert_others_ok(run, fleet, bad.name)
    assert_stored_like_doc(run)
    no_traceback(run)


def _cmd(pid: int) -> str:
    from netns import proc_cmdline
    return proc_cmdline(pid)


# ---------------------------------------------------------------------------- (d) stall
def test_stalled_agent_hits_idle_timeout_and_is_killed(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(3)
    cfg = fleet.write_yaml(tmp_path / "devices.yaml", idle_timeout_s=30,
                           per_device={"dev0": {"idle_timeout_s": 5}})
    run = Run(tmp_path, cfg, threads="1", min_seconds=1.5)
    bad = fleet[0]
    wait_worker(bad, run, settle=0.2)
    stopped = bad.agent_pids()
    assert stopped
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    run.finish()
    assert run.code == 3, run.why()
    rs = run.results(bad.name)
    assert len(rs) == 1 and rs[0]["status"] == "error"
    assert "stalled: no output for 5 s" in rs[0]["error"] and "remote process killed" in rs[0]["error"]
    # the stopped processes were really killed (SIGKILL reaches stopped processes)
    assert wait_gone(bad, 10) == [], [(_cmd(p)) for p in bad.agent_pids()]
    assert_others_ok(run, fleet, bad.name, per_device=1)
    assert_stored_like_doc(run)
    no_traceback(run)


# ---------------------------------------------------------------------------- (e) host key
def test_changed_host_key_is_refused_with_fingerprint(tmp_path: Path, make_fleet: Any) -> None:
    from sshd import make_keypair, public_key_line, fingerprint
    fleet = make_fleet(3)
    bad = fleet[1]
    other = make_keypair(tmp_path / "impostor")
    bad.sshd.known_hosts.write_text(f"{bad.sshd.known_hosts_name} {public_key_line(other)}\n")
    before = bad.sshd.known_hosts.read_text()
    cfg = fleet.write_yaml(tmp_path / "devices.yaml")
    run = Run(tmp_path, cfg, threads="1", min_seconds=0.2).finish()
    assert run.code == 3, run.why()
    rs = run.results(bad.name)
    assert len(rs) == 1 and rs[0]["status"] == "error"
    err = rs[0]["error"]
    assert "HOST KEY CHANGED" in err and bad.sshd.host_key_fingerprint in err, err
    assert fingerprint(other) in err                   # what known_hosts expected
    assert "edge-bench devices trust dev1" in err
    assert bad.sshd.known_hosts.read_text() == before  # nothing accepted or rewritten
    assert not bad.agent_pids() and not bad.workdir.exists()  # never connected
    assert_others_ok(run, fleet, bad.name, per_device=1)
    no_traceback(run)


# ---------------------------------------------------------------------------- (f) throttled
def test_cpu_throttled_device_finishes_slower(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(3)
    slow = fleet[2]
    if slow.cgroup is None:
        pytest.skip("no writable cgroup v1 cpu controller")
    # every device is bound by its "board": half a CPU each (the three fit in 2 cores, so they
    # do not slow each other down), the slow one a tenth: in 20 ms periods it runs 2 ms, then
    # waits 18 ms
    for d in fleet.devices:
        d.set_cpu(0.5, period_us=20_000)
    slow.set_cpu(0.1, period_us=20_000)
    cfg = fleet.write_yaml(tmp_path / "devices.yaml", idle_timeout_s=120)
    run = Run(tmp_path, cfg, threads="1", min_seconds=2.0).finish()
    assert run.code == 0, run.why()
    by_dev = {r["device"]: r for r in run.doc["results"]}
    assert all(r["status"] == "ok" for r in by_dev.values())
    assert slow.cpu_stat()["nr_throttled"] > 0
    # CFS throttling stretches every invoke that straddles the end of a 2 ms slice by ~18 ms:
    # a 0.4 ms invoke is hit about 1 time in 5 (1 in 25 for the half-CPU devices), so the mean,
    # p90 and p99 rise sharply, while the median (hit by less than half of the invokes) stays
    # put. Behaviour, not a number:
    others = [r for n, r in by_dev.items() if n != slow.name]
    s = by_dev[slow.name]["latency_ms"]
    assert s["mean"] > 1.5 * max(o["latency_ms"]["mean"] for o in others), (s, others)
    assert s["p99"] > max(o["latency_ms"]["p99"] for o in others)
    # and it finished fewer runs in its --min-seconds, i.e. it really was a slower device
    assert by_dev[slow.name]["runs"] < min(o["runs"] for o in others)


def test_fleet_weighs_one_process_per_device(tmp_path: Path, make_fleet: Any) -> None:
    """The devices' CPU weight is one ordinary process each, not more: a heavier fleet starved
    `edge-bench run` of CPU while the devices were busy (a SIGTERM acted on 28 s late)."""
    from netns import CGROUP_GROUP, reweigh_devices
    fleet = make_fleet(3)
    cg = fleet[0].cgroup
    if cg is None:
        pytest.skip("no writable cgroup v1 cpu controller")
    assert int((cg.parent / "cpu.shares").read_text()) == 3 * 1024
    # all fleets (other test workers may have one too) weigh far less than the 64 processes
    # they once did
    assert int((cg.parent.parent / "cpu.shares").read_text()) < 16 * 1024
    # the group of all fleets weighs what the fleets in it weigh (a tree like the kernel's)
    root = tmp_path / "cpu"
    for name, shares in (("a", 3072), ("b", 1024)):
        (root / CGROUP_GROUP / name).mkdir(parents=True)
        (root / CGROUP_GROUP / name / "cpu.shares").write_text(f"{shares}\n")
    (root / CGROUP_GROUP / "cpu.shares").write_text("65536\n")
    assert reweigh_devices(root) == 4096
    assert (root / CGROUP_GROUP / "cpu.shares").read_text() == "4096"
    for name in ("a", "b"):
        (root / CGROUP_GROUP / name / "cpu.shares").unlink()
        (root / CGROUP_GROUP / name).rmdir()
    assert reweigh_devices(root) == 1024     # no fleet left: one process's weight


# ---------------------------------------------------------------------------- (g) retries
def test_refused_then_available_is_retried_with_backoff(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(3)
    late = fleet[0]
    late.sshd.stop()                                   # connection refused for now
    cfg = fleet.write_yaml(tmp_path / "devices.yaml",
                           per_device={"dev0": {"retries": 5, "retry_backoff_s": 0.5}})
    run = Run(tmp_path, cfg, threads="1", min_seconds=0.2)
    # the board finishes booting once the run has been refused twice: read the run's progress
    # lines as they come ("connection refused; retrying in ... (attempt 3 of 6)"), not a timer
    lines: List[str] = []
    retried = threading.Event()

    def read_stderr() -> None:
        assert run.proc.stderr is not None
        for line in run.proc.stderr:
            lines.append(line)
            if "retrying in" in line and "(attempt 3 of 6)" in line:
                retried.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert retried.wait(120), "".join(lines)
    finally:
        late.sshd.restart()
    assert run.proc.stdout is not None
    run.stdout = run.proc.stdout.read()
    run.code = run.proc.wait(timeout=240)
    reader.join(30)
    run.stderr = "".join(lines)
    assert run.code == 0, run.why()
    assert "[dev0] connection refused" in run.stderr, run.stderr
    assert all(r["status"] == "ok" for r in run.doc["results"]) and len(run.doc["results"]) == 3
    summary = run.doc["devices"][late.name]
    # refused at attempts 1 and 2, the sshd is up before attempt 3 (1.5 s after the 2nd)
    assert summary["connect_attempts"] == 3, summary
    assert run.doc["devices"]["dev1"]["connect_attempts"] == 1


def test_refused_without_retries_budget_fails_after_backoff(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(2)
    fleet[0].sshd.stop()
    cfg = fleet.write_yaml(tmp_path / "devices.yaml",
                           per_device={"dev0": {"retries": 2, "retry_backoff_s": 0.3}})
    run = Run(tmp_path, cfg, threads="1", min_seconds=0.2).finish()
    assert run.code == 3, run.why()
    err = run.results("dev0")[0]["error"]
    assert "connection refused" in err and "gave up after 3 attempts" in err, err
    assert run.results("dev0")[0]["error_detail"]["type"] == "TransportError"
    assert not err.startswith("dev0"), err    # the device is a field, not part of the text
    assert run.doc["devices"]["dev0"]["connect_attempts"] == 3
    assert run.doc["devices"]["dev0"]["connect_attempts"] == 3
    assert run.results("dev1")[0]["status"] == "ok"


# ---------------------------------------------------------------------------- (h) no space
def test_full_disk_on_one_device_fails_push_with_no_space(tmp_path: Path, make_fleet: Any) -> None:
    fleet = make_fleet(3)
    bad = fleet[1]
    tiny = str(fleet.base / "tiny-disk")
    bad.mount_tmpfs(tiny, size="100k")                 # in that device's own mount namespace
    cfg = fleet.write_yaml(tmp_path / "devices.yaml", per_device={"dev1": {"workdir": tiny}})
    run = Run(tmp_path, cfg, threads="1", min_seconds=0.2).finish()
    assert run.code == 3, run.why()
    err = run.results(bad.name)[0]["error"]
    assert "no space left on the device" in err.lower(), err
    assert "KB free" in err, err
    assert_others_ok(run, fleet, bad.name, per_device=1)
    no_traceback(run)


# ---------------------------------------------------------------------------- (i) signals
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_run_stops_cleanly_kills_agents_keeps_results(
        tmp_path: Path, make_fleet: Any, sig: int, code: int) -> None:
    fleet = make_fleet(3)
    cfg = fleet.write_yaml(tmp_path / "devices.yaml", idle_timeout_s=60)
    # >= 30 s per device: on this 2-core host the controller competes with the devices for CPU
    # and can process a result seconds after it arrives; the run must not end in that window
    run = Run(tmp_path, cfg, threads="1,2,3,4,5", min_seconds=6.0)
    # signal once a device has started its second task (a second worker process in its cgroup:
    # its first result was sent before) while every device is timing. Seen on the devices,
    # not in the store: a controller starved of CPU can store results seconds late.
    seen: Dict[str, set] = {d.name: set() for d in fleet.devices}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = {d.name: set(d.pids("--worker")) for d in fleet.devices}
        for name, pids in now.items():
            seen[name] |= pids
        if all(now.values()) and any(len(s) >= 2 for s in seen.values()):
            break
        assert run.proc.poll() is None, run.why()
        time.sleep(0.05)
    else:
        raise AssertionError("devices never reached their second task\n" + run.why())
    t_sig = time.monotonic()
    run.proc.send_signal(sig)
    run.finish(timeout=60)
    stop_s = time.monotonic() - t_sig
    assert run.code == code, run.why()
    assert stop_s < 20, stop_s
    assert "interrupted" in run.stderr
    for d in fleet.devices:        # no agent left timing on any board
        assert wait_gone(d, 5) == [], (d.name, [_cmd(p) for p in d.agent_pids()])
    doc = run.doc
    assert doc["status"] == "interrupted"
    ok = [r for r in doc["results"] if r["status"] == "ok"]
    ahead = [n for n, pids in seen.items() if len(pids) >= 2]
    # what had finished is kept: the first task of the device that had started its second
    assert any(r["status"] == "ok" for n in ahead for r in run.results(n)), doc["results"]
    assert len(ok) < 15, doc["results"]          # and the run really was cut short
    # every planned task has a row: what did not finish says it was cancelled, not failed
    assert len(doc["results"]) == 15, doc["results"]
    assert all(r["status"] == "skipped" and r["error"].startswith("cancelled")
               for r in doc["results"] if r["status"] != "ok"), doc["results"]
    st = run.stored()
    assert st["status"] == "interrupted"
    assert sorted((r["device"], r["threads"]) for r in st["results"] if r["status"] == "ok") == \
        sorted((r["device"], r["threads"]) for r in ok)
    no_traceback(run)


def _stored_per_device(db: Path) -> Dict[str, int]:
    """Results per device in the store so far (read-only, while the run writes)."""
    import sqlite3
    if not db.exists():
        return {}
    try:
        # a plain connection: a read-only one cannot open a WAL database whose -shm it
        # may not write, and would then see nothing at all
        con = sqlite3.connect(str(db), timeout=5)
        try:
            return dict(con.execute("SELECT device, COUNT(*) FROM results GROUP BY device").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return {}


# ---------------------------------------------------------------------------- (j) quoting
def test_metacharacters_in_workdir_model_path_and_device_name_inject_nothing(
        tmp_path: Path, make_fleet: Any) -> None:
    import shutil
    canary = Path(f"/tmp/eb-pwned-{os.getpid()}")
    canaries = [canary.with_name(canary.name + s) for s in ("-a", "-b", "-c", "-d", "-e")]
    for c in canaries:
        c.unlink(missing_ok=True)
    names = ["dev0", f"odd;$(touch${{IFS}}{canaries[0]})'\"`touch${{IFS}}{canaries[1]}`"]
    fleet = make_fleet(2, names=names)
    workdirs = [fleet.base / (f"work dir {i} $(touch {canaries[2]}) ; touch {canaries[3]}; 'q'"
                              f" \"dq\" `touch {canaries[4]}` & |<>*?") for i in range(2)]
    # (a file name cannot hold "/": this canary is relative, checked in every likely cwd)
    model = tmp_path / "my model $(touch eb-pwned-m); touch eb-pwned-m; 'x' \"y\".tflite"
    shutil.copy(REPO / "host/models/builtin/data/digits.tflite", model)
    cfg = fleet.write_yaml(tmp_path / "devices.yaml",
                           per_device={n: {"workdir": str(w)} for n, w in zip(names, workdirs)})
    out = tmp_path / "q.json"
    env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp_path / "cache"))
    env.pop("EDGE_BENCH_CONFIG", None)
    p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--config", str(cfg),
                        "--devices", "tag:fleet", "--model", str(model), "--variants", "fp32",
                        "--runs", "5", "--min-seconds", "0", "--json", str(out), "--no-store"],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(out.read_text())
    assert sorted(r["device"] for r in doc["results"]) == sorted(names)
    assert all(r["status"] == "ok" for r in doc["results"]), doc["results"]
    assert all(r["model"] == str(model) for r in doc["results"])
    # the workdir exists under its literal name, with the agent and the model in it
    for workdir in workdirs:
        assert workdir.is_dir() and any(x.name.startswith("agent-") for x in workdir.iterdir())
        assert len(list((workdir / "blobs").glob("*.tflite"))) == 1
    assert [c for c in canaries if c.exists()] == []
    for where in [tmp_path, Path.home(), *workdirs, *(w / "blobs" for w in workdirs)]:
        assert not (where / "eb-pwned-m").exists(), where
