"""The job queue end to end: a real PostgreSQL server, the real CLI, two workers as two labs
(separate processes, each with only its own lab's devices in its devices.yaml) and real sshd
devices. Faults: a worker killed mid-job, the server restarted mid-run, two submitters racing
for the same devices, a lab without a worker, a bad URL."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import team
from pgserver import wait_for


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory, sshd_factory: Any) -> Dict[str, Any]:
    """Two labs, each one sshd with two devices. submit.yaml knows all four (with their labs);
    lab-a.yaml / lab-b.yaml only their own lab's devices, as on two lab hosts."""
    tmp = tmp_path_factory.mktemp("labs")
    a, b = sshd_factory(name="lab-a"), sshd_factory(name="lab-b")
    devs = {"a1": (a, "lab-a"), "a2": (a, "lab-a"), "b1": (b, "lab-b"), "b2": (b, "lab-b")}
    wd = tmp / "workdirs"
    return {
        "tmp": tmp,
        "submit": team.lab_yaml(tmp / "submit.yaml", devs, wd),
        "lab-a": team.lab_yaml(tmp / "lab-a.yaml", {k: v for k, v in devs.items() if k[0] == "a"}, wd),
        "lab-b": team.lab_yaml(tmp / "lab-b.yaml", {k: v for k, v in devs.items() if k[0] == "b"}, wd),
    }


@pytest.fixture
def workers(tmp_path: Path, pg_url: str):
    w = team.Workers(tmp_path, pg_url)
    yield w
    w.close()


def submit(labs: Dict[str, Any], tmp: Path, db: str, *args: str,
           inproc: bool = False) -> subprocess.CompletedProcess:
    argv = ["submit", "--config", str(labs["submit"]), *team.FAST, *args]
    return team.main(argv, db) if inproc else team.cli(argv, tmp, db)


@pytest.mark.netns
def test_two_labs_two_submitters_at_once(tmp_path: Path, pg_url: str, pg_cluster: Any,
                                          make_fleet: Any, workers: team.Workers) -> None:
    """Two labs, each a private network (tests/netns.py) with two devices; each lab's worker runs
    inside its lab's network namespace, where the other lab's devices cannot be reached. Two
    shells submit runs over all four devices at once: both finish, one run each in the history,
    and the device locks ran the two runs' jobs on each device one after the other."""
    import copy

    import yaml
    fleets = {"lab-a": make_fleet(2, names=["a1", "a2"]), "lab-b": make_fleet(2, names=["b1", "b2"])}
    if not all(f.netns for f in fleets.values()):
        pytest.skip("network namespaces not permitted here")
    db = pg_url.rsplit("/", 1)[1]
    every: Dict[str, Any] = {}
    for lab, fleet in fleets.items():
        entries = {d.name: d.device_yaml(lab=lab, lock_wait_s=120) for d in fleet.devices}
        every.update(entries)
        own = dict(entries)
        if lab == "lab-a":  # misconfigured: the other lab's device, as if it were ours
            own["b1-from-a"] = {**fleets["lab-b"][0].device_yaml(lab="lab-a", connect_timeout_s=3)}
        cfg = tmp_path / f"{lab}.yaml"
        cfg.write_text(yaml.safe_dump({"version": 1, "devices": own}))
        # the lab host: the first device's namespace; it reaches the server on its bridge
        workers.start(lab, cfg, netns=fleet[0].ns,
                      db=pg_cluster.url(db, host=f"{fleet.subnet}.1"))
    # a deep copy: shared nested values would be dumped as a YAML alias, which devices.yaml refuses
    every["b1-from-a"] = {**copy.deepcopy(every["b1"]), "lab": "lab-a"}
    submit_cfg = tmp_path / "submit.yaml"
    submit_cfg.write_text(yaml.safe_dump({"version": 1, "devices": every}))
    shells = [team.popen(["submit", "--config", str(submit_cfg), *team.FAST,
                          "--devices", "a1,a2,b1,b2", "--label", f"shell{i}", "--wait"],
                         tmp_path, pg_url, tmp_path / f"shell{i}.log") for i in (1, 2)]
    for i, p in enumerate(shells, 1):
        assert p.wait(300) == 0, (tmp_path / f"shell{i}.log").read_text()
    runs = team.query(pg_url, "SELECT run_id, label, status FROM runs ORDER BY label")
    assert [(r[1], r[2]) for r in runs] == [("shell1", "ok"), ("shell2", "ok")]
    for run_id, _label, _ in runs:
        res = team.results(pg_url, run_id)
        assert sorted(r[0] for r in res) == ["a1", "a2", "b1", "b2"]  # one each, none twice
        assert all(r[4] == "ok" for r in res)
    # both runs wanted every device at once: the device lock ran them one after the other
    spans: Dict[str, list] = {}
    for lock, run_id, start, end in team.job_spans(pg_url):
        assert start is not None and end is not None
        spans.setdefault(lock, []).append((start, end))
    assert sorted(spans) == ["device:a1", "device:a2", "device:b1", "device:b2"]
    for lock, (x, y) in ((k, sorted(v)) for k, v in spans.items()):
        assert x[1] <= y[0], f"{lock}: two jobs ran at once {x} {y}"
    # history shows them as one run each
    h = team.cli(["history", "--csv", "-"], tmp_path, pg_url)
    assert h.returncode == 0, h.stderr
    assert sorted(line.split(",")[0] for line in h.stdout.splitlines()[1:]) == \
        sorted([runs[0][0]] * 4 + [runs[1][0]] * 4)
    # lab-a's worker cannot reach lab-b's network: a job for it fails there, with the reason
    p = team.cli(["submit", "--config", str(submit_cfg), *team.FAST, "--devices", "b1-from-a",
                  "--wait"], tmp_path, pg_url)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "cannot reach" in p.stdout and "Network is unreachable" in p.stdout


def queue_cells(out: str) -> List[Tuple[str, str]]:
    """(lab, device) of each row of `edge-bench queue`'s table, read by column: a run id's
    random part may hold "b1" too (it did: CI failed on `"b1" not in stdout`)."""
    lines = out.splitlines()
    head = next([c.strip() for c in line.split("┃")[1:-1]] for line in lines
                if line.startswith("┃"))
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in lines
            if line.startswith("│") and line.split("│")[1].strip()]  # not a wrapped cell's tail
    return [(r[head.index("lab")], r[head.index("device")]) for r in rows]


def test_unserved_lab_priority_and_cancel(labs: Dict[str, Any], tmp_path: Path,
                                          pg_url: str, workers: team.Workers) -> None:
    """No worker yet: submit names the unserved lab (and --wait gives up with exit 3); queue
    shows who waits for what; cancel drops a waiting run; once lab-a's worker starts, the
    higher priority job starts first on the shared device."""
    p = submit(labs, tmp_path, pg_url, "--devices", "b1", "--label", "nobody",
               "--wait", "--serve-timeout", "2", inproc=True)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "no worker serves lab lab-b" in p.stderr
    nobody = p.stdout.splitlines()[0].strip()
    low = submit(labs, tmp_path, pg_url, "--devices", "a1", "--label", "nightly", inproc=True)
    high = submit(labs, tmp_path, pg_url, "--devices", "a1", "--label", "dev", "--priority", "10",
                  inproc=True)
    assert low.returncode == 0 and high.returncode == 0, low.stderr + high.stderr
    assert "no worker serves lab lab-a" in low.stderr and "lab-b" not in low.stderr
    q = team.main(["queue"], pg_url)
    assert q.returncode == 0, q.stderr
    assert "3 jobs waiting" in q.stdout and q.stdout.count("│ waiting") == 3
    assert ("lab-b", "b1") in queue_cells(q.stdout)
    assert "@" in q.stdout  # who submitted it
    c = team.main(["cancel", nobody], pg_url)
    assert c.returncode == 0 and "1 waiting jobs cancelled" in c.stdout, c.stdout + c.stderr
    assert team.run_status(pg_url, nobody) == "cancelled"
    assert queue_cells(team.main(["queue"], pg_url).stdout) == [("lab-a", "a1")] * 2
    workers.start("lab-a", labs["lab-a"])
    ids = {"low": low.stdout.split()[0], "high": high.stdout.split()[0]}
    wait_for(lambda: all(team.run_status(pg_url, r) == "ok" for r in ids.values()), 180,
             "both runs to finish")
    start = {run: s for _lock, run, s, _e in team.job_spans(pg_url) if s is not None}
    assert start[ids["high"]] < start[ids["low"]]
    # cancelling a running job stops its device at once
    long = submit(labs, tmp_path, pg_url, "--devices", "a1", "--label", "long", "--runs", "100000",
                  "--max-runs", "1000000", "--min-seconds", "120", "--max-seconds", "300",
                  inproc=True)
    run_id = long.stdout.split()[0]
    wait_for(lambda: team.query(pg_url, "SELECT 1 FROM procrastinate_jobs WHERE status = 'doing'"
                                        " AND args->>'run_id' = %s", (run_id,)), 60, "the long job")
    t0 = time.monotonic()
    c = team.main(["cancel", run_id], pg_url)
    assert c.returncode == 0 and "1 running jobs asked to stop" in c.stdout, c.stdout + c.stderr
    wait_for(lambda: team.run_status(pg_url, run_id) == "cancelled", 60, "the cancelled run")
    assert time.monotonic() - t0 < 60  # not the 120 s the job would have taken
    assert team.query(pg_url, "SELECT status::text FROM procrastinate_jobs WHERE"
                              " args->>'run_id' = %s", (run_id,)) == [("aborted",)]


def test_worker_killed_mid_job_is_retried_without_duplicates(
        labs: Dict[str, Any], tmp_path: Path, pg_url: str, workers: team.Workers) -> None:
    w1 = workers.start("lab-a", labs["lab-a"], "--stalled-after", "3")
    p = submit(labs, tmp_path, pg_url, "--devices", "a1", "--label", "killed",
               "--threads", "1,2,3", "--min-seconds", "1.5",
               "--max-runs", "300000")  # time-bound tasks (~1.5 s each): the kill lands mid-job
    assert p.returncode == 0, p.stderr
    run_id = p.stdout.split()[0]
    wait_for(lambda: len(team.results(pg_url, run_id)) >= 1, 180, "a first result")
    before = team.results(pg_url, run_id)
    assert len(before) < 3, "the job finished before it could be killed"
    workers.kill(w1)  # SIGKILL: no cleanup, the job stays `doing` with a silent heartbeat
    workers.start("lab-a", labs["lab-a"], "--stalled-after", "3")
    wait_for(lambda: team.run_status(pg_url, run_id) in ("ok", "partial"), 240, "the retried run")
    after = team.results(pg_url, run_id)
    keys = [(r[0], r[1], r[2], r[3]) for r in after]
    assert sorted(r[3] for r in after) == [1, 2, 3] and len(set(keys)) == 3
    assert {r[5] for r in before} <= {r[5] for r in after}  # the stored results were kept
    assert team.run_status(pg_url, run_id) == "ok"
    notes = [n[0] for n in team.query(pg_url, "SELECT note FROM edge_bench_job_notes"
                                              " WHERE run_id = %s", (run_id,))]
    assert any("queued again" in n for n in notes), notes
    assert any("already stored by an earlier attempt" in n for n in notes), notes


def test_server_restart_mid_run_loses_nothing(labs: Dict[str, Any], tmp_path: Path, pg_url: str,
                                              pg_cluster: Any, workers: team.Workers) -> None:
    workers.start("lab-a", labs["lab-a"])
    workers.start("lab-b", labs["lab-b"])
    sub = team.popen(["submit", "--config", str(labs["submit"]), *team.FAST, "--threads", "1,2,3",
                      "--min-seconds", "1.2", "--max-runs", "300000", "--devices", "a1,b1",
                      "--label", "restart", "--wait"],
                     tmp_path, pg_url, tmp_path / "submit.log")
    run_id = wait_for(lambda: [r[0] for r in team.query(pg_url, "SELECT run_id FROM runs")], 60,
                      "the run")[0]
    wait_for(lambda: len(team.results(pg_url, run_id)) >= 1, 180, "a first result")
    assert len(team.results(pg_url, run_id)) < 6
    pg_cluster.restart()
    assert sub.wait(300) == 0, (tmp_path / "submit.log").read_text()
    res = team.results(pg_url, run_id)
    keys = [(r[0], r[3]) for r in res]
    assert sorted(keys) == [(d, t) for d in ("a1", "b1") for t in (1, 2, 3)]
    assert team.run_status(pg_url, run_id) == "ok"
    for p in workers.procs:
        assert p.poll() is None, "a worker died with the server restart"


def test_bad_url_and_wrong_password_exit_2(labs: Dict[str, Any], tmp_path: Path,
                                           pg_cluster: Any, pg_url: str) -> None:
    import pgserver
    db = pg_url.rsplit("/", 1)[1]
    url = pg_cluster.url(db, user=pgserver.SECRET_USER).replace(
        "@", f":wrong-{pgserver.SECRET_PASSWORD}@")
    for args in (["submit", "--config", str(labs["submit"]), "--devices", "a1", "--db", url],
                 ["worker", "--lab", "lab-a", "--config", str(labs["lab-a"]), "--db", url],
                 ["queue", "--db", "postgresql://nobody@127.0.0.1:1/x"],
                 ["submit", "--config", str(labs["submit"]), "--devices", "a1",
                  "--db", str(tmp_path / "local.sqlite")]):
        p = team.main(args, None)
        assert p.returncode == 2, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
        assert pgserver.SECRET_PASSWORD not in p.stderr + p.stdout
