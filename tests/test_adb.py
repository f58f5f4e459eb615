"""ADBTransport through the REAL adb client and server to the adbd stand-in (tests/adbd_standin.py).

Nothing here is mocked: every command goes edge-bench -> `adb` client -> adb server (its own port)
-> TCP -> stand-in (adb transport protocol, shell v2, sync) -> /bin/sh on this machine.
What this cannot show: behaviour of a real phone's adbd/mksh/toybox (see README: nothing has been
exercised against real phones yet).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import pytest
from conftest import missing_system

from edge_bench.fleet.artifact import agent_artifact

from procs import alive, kill_all, pids_with, wait_dead  # noqa: F401

from adb_fixtures import (AdbServer, adb_binaries, adb_server, adb_server_each,  # noqa: F401
                          make_adb_device, standin)
from adbd_standin import AdbdStandin
from edge_bench.fleet.deploy import Blob, ensure_blobs
from edge_bench.errors import RemoteCommandError, TransportError
from edge_bench.transports import open_transport
from edge_bench.transports.adb import ADBTransport, build_script, find_adb

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[1]
AGENT = agent_artifact()[0]  # the built agent zipapp
DIGITS = REPO / "host" / "models" / "builtin" / "data" / "digits.tflite"
MOBILENET = REPO / "host" / "models" / "builtin" / "data" / "mobilenet.tflite"




@pytest.fixture
def phone(adb_server: AdbServer, standin: AdbdStandin, make_adb_device):  # noqa: F811
    dev = make_adb_device(adb_server, standin)
    tr = ADBTransport(dev)
    tr.connect()
    yield tr
    tr.close()


# --- every adb client found on this machine (Debian's adb 1.0.41/29.x, adbutils' bundled 36.x) ----
def test_each_adb_client_connects_runs_and_pushes(adb_server_each: AdbServer, standin: AdbdStandin,  # noqa: F811
                                                  make_adb_device, tmp_path: Path) -> None:
    dev = make_adb_device(adb_server_each, standin)
    with open_transport(dev) as tr:
        assert isinstance(tr, ADBTransport)
        assert "shell_v2" in tr.features
        assert adb_server_each.devices()[standin.serial] == "device"
        r = tr.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (r.exit_code, r.stdout, r.stderr.strip()) == (3, "out", "err")
        assert tr.run(["true"]).exit_code == 0
        assert tr.run(["sh", "-c", "exit 255"]).exit_code == 255
        data = os.urandom(300_000)
        src = tmp_path / "blob.bin"
        src.write_bytes(data)
        dst = standin.workdir + "/sub/dir/blob.bin"
        tr.makedirs(standin.workdir + "/sub/dir")
        tr.put(src, dst)
        assert tr.bytes_pushed == len(data)
        assert Path(dst).read_bytes() == data
        assert tr.sha256_many([dst]) == {dst: hashlib.sha256(data).hexdigest()}
        assert not list(Path(dst).parent.glob("*.tmp-*")), "push must be temp name + mv"


def test_each_adb_client_reports_phone_dropping_mid_command(adb_server_each: AdbServer,  # noqa: F811
                                                            standin: AdbdStandin, make_adb_device) -> None:
    """Debian's adb exits 0 and new adb exits 255 when the phone vanishes: both must be errors."""
    dev = make_adb_device(adb_server_each, standin)
    tr = ADBTransport(dev)
    tr.connect()
    proc = tr.start(["sh", "-c", "echo started; sleep 60; echo never"])
    it = proc.lines(idle_timeout=30)
    assert next(it) == "started"
    t0 = time.monotonic()
    standin.go_offline()
    with pytest.raises(TransportError) as ei:
        list(it)
    assert time.monotonic() - t0 < 15
    msg = str(ei.value)
    assert "connection to the phone was lost" in msg and "phone:" in msg
    assert getattr(ei.value, "retryable", False)
    with pytest.raises(TransportError):
        proc.wait(5)


# --- connect and state errors -----------------------------------------------------------------
def test_connect_is_fast_and_idempotent(adb_server: AdbServer, standin: AdbdStandin,  # noqa: F811
                                        make_adb_device) -> None:
    dev = make_adb_device(adb_server, standin)
    t0 = time.monotonic()
    ADBTransport(dev).connect()
    ADBTransport(dev).connect()   # already connected: no second `adb connect` needed
    assert time.monotonic() - t0 < 10


def test_no_such_serial(adb_server: AdbServer, make_adb_device, standin: AdbdStandin) -> None:  # noqa: F811
    dev = make_adb_device(adb_server, standin, serial="NOSUCHPHONE123")
    with pytest.raises(TransportError) as ei:
        ADBTransport(dev).connect()
    msg = str(ei.value)
    assert "no such serial 'NOSUCHPHONE123'" in msg and "adb devices" in msg


def test_tcp_serial_nobody_listens(adb_server: AdbServer, make_adb_device, standin: AdbdStandin) -> None:  # noqa: F811
    port = standin.port
    standin.go_offline()
    dev = make_adb_device(adb_server, standin, serial=f"127.0.0.1:{port}", connect_timeout_s=2.0)
    with pytest.raises(TransportError) as ei:
        ADBTransport(dev).connect()
    assert f"nothing listens at 127.0.0.1:{port}" in str(ei.value)
    assert "wireless debugging" in str(ei.value)


def test_adb_shares_the_connect_retries_of_every_transport(adb_server: AdbServer, make_adb_device,  # noqa: F811
                                                           standin: AdbdStandin) -> None:
    """Transport.connect_with_retries: a refused TCP serial is retried with backoff, counted in
    `attempts`, and the final error says how many attempts were made; a phone that comes back
    during the backoff is connected on a later attempt."""
    port = standin.port
    standin.go_offline()
    dev = make_adb_device(adb_server, standin, serial=f"127.0.0.1:{port}", connect_timeout_s=2.0,
                          retries=2, retry_backoff_s=0.05)
    t = ADBTransport(dev)
    with pytest.raises(TransportError) as ei:
        t.connect()
    assert t.attempts == 3 and ei.value.attempts == 3 and ei.value.retryable
    assert "gave up after 3 attempts" in str(ei.value) and str(ei.value).startswith("phone: ")
    assert ei.value.describe().startswith(f"nothing listens at 127.0.0.1:{port}")

    # the phone appears after the first refused attempt: a later attempt connects
    dev = make_adb_device(adb_server, standin, serial=f"127.0.0.1:{port}", connect_timeout_s=5.0,
                          retries=6, retry_backoff_s=0.5)
    t = ADBTransport(dev)
    failed_once = threading.Event()
    real = t._probe_tcp

    def probe() -> None:
        try:
            real()
        except TransportError:
            failed_once.set()
            raise
    t._probe_tcp = probe  # type: ignore[method-assign] - observe the real refusal, change nothing
    outcome: List[object] = []

    def connect() -> None:
        try:
            t.connect()
            outcome.append("connected")
        except TransportError as e:
            outcome.append(e)
    th = threading.Thread(target=connect, daemon=True)
    th.start()
    assert failed_once.wait(30), "the first attempt should have been refused"
    standin.go_online()
    th.join(60)
    assert outcome == ["connected"], outcome
    assert 2 <= t.attempts <= 7 and t.state() == "device"


def test_unauthorized_phone_says_accept_the_rsa_prompt(adb_server: AdbServer, make_adb_device,  # noqa: F811
                                                       tmp_path: Path) -> None:
    d = AdbdStandin(tmp_path / "locked", mode="unauthorized").start()
    try:
        dev = make_adb_device(adb_server, d, connect_timeout_s=3.0)
        with pytest.raises(TransportError) as ei:
            ADBTransport(dev).connect()
        msg = str(ei.value)
        assert "unauthorized" in msg and "RSA" in msg and "Allow USB debugging" in msg
    finally:
        d.stop()


def test_port_without_adbd_handshake(adb_server: AdbServer, make_adb_device,  # noqa: F811
                                     tmp_path: Path) -> None:
    d = AdbdStandin(tmp_path / "mute", mode="mute").start()   # accepts TCP, never answers CNXN
    try:
        dev = make_adb_device(adb_server, d, connect_timeout_s=2.0)
        with pytest.raises(TransportError) as ei:
            ADBTransport(dev).connect()
        msg = str(ei.value)
        assert "failed" in msg and "no adb handshake" in msg and "wireless debugging" in msg, msg
    finally:
        d.stop()


def test_offline_phone_says_replug(adb_server: AdbServer, standin: AdbdStandin,  # noqa: F811
                                   make_adb_device) -> None:
    dev = make_adb_device(adb_server, standin, connect_timeout_s=2.0)
    ADBTransport(dev).connect()
    standin.mode = "mute"            # adbd hangs: the server reconnects but gets no handshake
    standin.go_offline()
    standin.go_online()
    deadline = time.monotonic() + 10
    while adb_server.devices().get(standin.serial) != "offline" and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(TransportError) as ei:
        ADBTransport(dev).connect()
    msg = str(ei.value)
    assert f"phone {standin.serial} is offline" in msg and "replug" in msg and "USB debugging" in msg


def test_adb_not_installed_says_how_to_get_it(monkeypatch, standin: AdbdStandin, tmp_path: Path) -> None:  # noqa: F811
    from edge_bench.config import Device
    dev = Device(name="phone", transport="adb", serial=standin.serial, adb_path=str(tmp_path / "no-adb"))
    with pytest.raises(TransportError) as ei:
        ADBTransport(dev).connect()
    assert "does not exist" in str(ei.value) and "apt-get install adb" in str(ei.value)
    # nothing on PATH and no adbutils: the message names both ways to get adb
    import edge_bench.transports.adb.tool as adbmod
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(adbmod, "bundled_adb", lambda: None)
    dev2 = Device(name="phone", transport="adb", serial=standin.serial)
    with pytest.raises(TransportError) as ei:
        find_adb(dev2)
    assert "not installed" in str(ei.value)
    assert "apt-get install adb" in str(ei.value) and "pip install adbutils" in str(ei.value)


def test_adb_path_falls_back_to_path_then_adbutils() -> None:
    from edge_bench.config import Device
    dev = Device(name="p", transport="adb", serial="X")
    assert find_adb(dev) == (shutil.which("adb") or adb_binaries()[-1][1])


# --- commands ---------------------------------------------------------------------------------
NASTY = ["a b", "$(touch {pwn})", "`touch {pwn}`", "x; touch {pwn}", "'single'", '"double"',
         "back\\slash", "*", "~", "$HOME", "tab\there", "new\nline", "", "-n", "&& touch {pwn}",
         "ünïcødé", "|", ">{pwn}"]


def test_every_argument_is_quoted_no_injection(phone: ADBTransport, tmp_path: Path) -> None:
    pwn = tmp_path / "PWNED"
    args = [a.format(pwn=pwn) for a in NASTY]
    r = phone.run(["printf", "%s\\0"] + args)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split("\0")[:-1] == args
    assert not pwn.exists()


def test_script_shape() -> None:
    s = build_script(["python3", "a b.py"], "n0", env={"X": "1 2"}, taskset="f0")
    assert "export X='1 2'" in s and "taskset f0 python3 'a b.py'" in s
    assert s.startswith("echo __edge_bench_pid_n0=$$ >&2")
    with pytest.raises(ValueError):
        build_script(["x"], "n", env={"A;rm": "1"})


def test_env_and_stdin_reach_the_command(phone: ADBTransport) -> None:
    payload = os.urandom(400_000).hex()  # 800 KB of text through shell v2 stdin
    proc = phone.start(["sh", "-c", 'echo "$EB_TEST"; cat | wc -c'], stdin=payload.encode(),
                       env={"EB_TEST": "it's here"})
    lines = list(proc.lines(idle_timeout=30))
    assert proc.wait(30) == 0
    assert lines == ["it's here", str(len(payload))]


def test_marker_lines_are_hidden_from_stderr(phone: ADBTransport) -> None:
    r = phone.run(["sh", "-c", "echo problem >&2; exit 1"])
    assert r.exit_code == 1 and r.stderr == "problem\n"


def test_lines_stream_as_they_are_printed(phone: ADBTransport) -> None:
    proc = phone.start(["sh", "-c", "echo one; sleep 1.5; echo two"])
    seen = []
    t0 = time.monotonic()
    for line in proc.lines(idle_timeout=30):
        seen.append((line, time.monotonic() - t0))
    assert [s[0] for s in seen] == ["one", "two"]
    assert seen[0][1] < 1.2 and seen[1][1] >= 1.4, seen
    assert proc.wait(10) == 0


def test_cancel_kills_the_remote_process_tree(phone: ADBTransport) -> None:
    proc = phone.start(["sh", "-c", "echo $$; sleep 300 & echo $!; sleep 301; wait"])
    it = proc.lines(idle_timeout=30)
    shell_pid, child_pid = int(next(it)), int(next(it))
    deadline = time.monotonic() + 5
    while proc.remote_pid is None and time.monotonic() < deadline:   # stderr marker: own thread
        time.sleep(0.01)
    assert proc.remote_pid and alive(proc.remote_pid) and alive(shell_pid) and alive(child_pid)
    proc.cancel()
    assert wait_dead([proc.remote_pid, shell_pid, child_pid]), "remote processes survived cancel()"
    assert proc.wait(10) == -signal.SIGKILL
    assert list(it) == []          # a cancelled command ends quietly, no TransportError
    proc.cancel()                  # twice is fine


def test_idle_timeout_kills_a_stalled_command(phone: ADBTransport) -> None:
    proc = phone.start(["sh", "-c", "echo $$; exec sleep 300"])
    it = proc.lines(idle_timeout=1.0)
    pid = int(next(it))
    with pytest.raises(TransportError) as ei:
        next(it)
    assert "stalled" in str(ei.value)
    assert wait_dead([pid])


def test_taskset_prefix_pins_the_command(adb_server: AdbServer, standin: AdbdStandin,  # noqa: F811
                                        make_adb_device) -> None:
    if not shutil.which("taskset"):
        missing_system("taskset is not installed (apt-get install -y util-linux)")
    dev = make_adb_device(adb_server, standin, taskset="1")
    with open_transport(dev) as tr:
        r = tr.run(["grep", "Cpus_allowed_list", "/proc/self/status"])
    assert r.exit_code == 0 and r.stdout.split()[-1] == "0", r


def test_push_failure_is_a_clear_error(phone: ADBTransport, tmp_path: Path, standin: AdbdStandin) -> None:  # noqa: F811
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 10)
    blocker = Path(standin.workdir) / "file-not-dir"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("I am a file")
    with pytest.raises((RemoteCommandError, TransportError)) as ei:
        phone.put(src, str(blocker / "f.bin"))
    assert "f.bin" in str(ei.value)
    assert phone.bytes_pushed == 0


def test_content_addressed_deploy_pushes_once(phone: ADBTransport, tmp_path: Path) -> None:
    src = tmp_path / "model.tflite"
    src.write_bytes(os.urandom(50_000))
    wd = phone.resolve_workdir(phone.device.workdir)
    rep1 = ensure_blobs(phone, wd, [Blob.for_file(src)])
    rep2 = ensure_blobs(phone, wd, [Blob.for_file(src)])
    assert rep1.bytes_pushed == 50_000 and rep2.bytes_pushed == 0


def test_resolve_workdir(phone: ADBTransport, standin: AdbdStandin) -> None:  # noqa: F811
    assert phone.resolve_workdir("/data/local/tmp/edge-bench/") == "/data/local/tmp/edge-bench"
    assert phone.resolve_workdir("eb") == "/data/local/tmp/eb"
    assert phone.resolve_workdir("~/eb") == str(standin.root / "eb")   # the shell's $HOME


def test_phone_facts_from_getprop_and_sys(phone: ADBTransport) -> None:
    f = phone.facts()
    assert f["model"] == "EdgeBenchStandin" and f["board"] == "standin64"
    assert f["android"] == "14" and f["sdk"] == 34 and f["os"] == "Android 14"
    assert f["abilist"][0] == "arm64-v8a"
    assert isinstance(f["thermal_zones"], dict)


# --- the real agent over adb ------------------------------------------------------------------
def _needs_agent(model: Path = DIGITS) -> None:
    """The agent artifact is built from the package and the models are in the repo: a missing
    one is a broken checkout, a failure (not a skip)."""
    assert AGENT.is_file(), f"the agent artifact {AGENT} was not built"
    assert model.is_file(), f"{model.relative_to(REPO)} is missing from the repo"


# a long-running job: mobilenet (ms per invoke, not us) for --min-seconds, with --max-runs high
# enough that the sample cap does not end it early
LONG = ["--model", "builtin:mobilenet", "--variants", "fp32", "--runs", "10", "--warmup", "1",
        "--max-runs", "1000000"]


def edge_bench(args: List[str], tmp_path: Path, **popen) -> subprocess.Popen:
    e = dict(os.environ)
    e["EDGE_BENCH_CACHE"] = str(tmp_path / "cache")
    e.pop("EDGE_BENCH_CONFIG", None)
    return subprocess.Popen([sys.executable, "-m", "edge_bench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e, cwd=str(tmp_path), **popen)


def write_config(tmp_path: Path, server: AdbServer, phone: AdbdStandin, with_local: bool = False) -> Path:
    cfg = tmp_path / "devices.yaml"
    text = ("version: 1\ndevices:\n  phone:\n    transport: adb\n"
            f"    serial: '{phone.serial}'\n    adb_path: {server.path}\n    adb_port: {server.port}\n"
            f"    workdir: {phone.workdir}\n    python: {sys.executable}\n    runner: python\n"
            "    retries: 0\n    connect_timeout_s: 5\n    tags: [android]\n")
    if with_local:
        text += f"  local:\n    transport: local\n    workdir: {tmp_path / 'localwd'}\n"
    cfg.write_text(text)
    return cfg


def test_agent_runs_on_the_phone_end_to_end(adb_server: AdbServer, standin: AdbdStandin,  # noqa: F811
                                            tmp_path: Path) -> None:
    _needs_agent()
    cfg = write_config(tmp_path, adb_server, standin)
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--config", str(cfg), "--devices", "phone", "--model", "builtin:digits",
                    "--variants", "fp32", "--runs", "20", "--warmup", "2", "--min-seconds", "0",
                    "--json", str(out), "--no-store"], tmp_path)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr + stdout
    doc = json.loads(out.read_text())
    (r,) = doc["results"]
    assert r["device"] == "phone" and r["status"] == "ok", r
    assert r["runs"] >= 20 and len(r["samples_ms"]) == r["runs"]
    assert r["latency_ms"]["median"] > 0
    assert r["accuracy"] and r["accuracy"]["top1"] > 0.8
    assert doc["devices"]["phone"]["connect_attempts"] == 1  # counted like ssh's (was null)
    # the agent and the model really went through adb push into the phone's workdir
    wd = Path(standin.workdir)
    assert list(wd.glob("agent-*.pyz")) and list(wd.glob("blobs/*.tflite"))
    assert any(s.startswith("sync:") for s in standin.services_opened)
    assert any("agent-" in s and s.startswith("shell,v2") for s in standin.services_opened)


def _wait_for_agent(standin: AdbdStandin, p: subprocess.Popen, timeout: float = 120) -> List[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = pids_with(standin.workdir + "/agent-")
        if pids:
            return pids
        if p.poll() is not None:
            raise AssertionError("edge-bench ended before the agent started: " + p.stderr.read())
        time.sleep(0.1)
    raise AssertionError("agent never started on the phone")


def _wait_for_worker(standin: AdbdStandin, p: subprocess.Popen, timeout: float = 120) -> None:
    """Until the agent's worker process (`... --worker`) runs on the phone: the event itself."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(pid in pids_with(" --worker") for pid in pids_with(standin.workdir)):
            return
        if p.poll() is not None:
            raise AssertionError("edge-bench ended before the worker started: " + p.stderr.read())
        time.sleep(0.1)
    raise AssertionError("the agent's worker never started on the phone")


def test_phone_going_offline_mid_run_fails_it_and_keeps_the_rest(adb_server: AdbServer,  # noqa: F811
                                                                 standin: AdbdStandin,
                                                                 tmp_path: Path) -> None:
    _needs_agent(MOBILENET)
    cfg = write_config(tmp_path, adb_server, standin, with_local=True)
    out = tmp_path / "o.json"
    p = edge_bench(["run", "--config", str(cfg), "--devices", "phone,local", *LONG,
                    "--min-seconds", "6", "--max-seconds", "20", "--json", str(out), "--no-store"],
                   tmp_path)
    agent_pids = _wait_for_agent(standin, p)
    _wait_for_worker(standin, p)  # the phone is timing: now it goes away
    standin.go_offline()
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 3, stderr + stdout
    by_dev = {r["device"]: r for r in json.loads(out.read_text())["results"]}
    assert by_dev["phone"]["status"] == "error"
    assert "lost" in by_dev["phone"]["error"] or "offline" in by_dev["phone"]["error"], by_dev["phone"]
    assert by_dev["local"]["status"] == "ok"
    # the stand-in does not kill orphaned commands (nor may a real adbd): clean up ours
    kill_all(agent_pids + pids_with(standin.workdir))


def test_interrupting_a_run_kills_the_agent_on_the_phone(adb_server: AdbServer,  # noqa: F811
                                                         standin: AdbdStandin, tmp_path: Path) -> None:
    _needs_agent(MOBILENET)
    cfg = write_config(tmp_path, adb_server, standin)
    p = edge_bench(["run", "--config", str(cfg), "--devices", "phone", *LONG, "--min-seconds", "60",
                    "--max-seconds", "120", "--no-store"], tmp_path)
    _wait_for_agent(standin, p)
    _wait_for_worker(standin, p)
    before = pids_with(standin.workdir)
    assert before
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=120)
    assert wait_dead(before, timeout=15), f"left running on the phone: {pids_with(standin.workdir)}"


def test_kill_9_of_the_controller_stops_the_job_on_the_phone(adb_server: AdbServer,  # noqa: F811
                                                             standin: AdbdStandin,
                                                             tmp_path: Path) -> None:
    """The controller dies (kill -9) while the phone is timing: its `adb shell` client (own
    session) sees EOF on its stdin and sends close-stdin, the job on the phone stops its worker
    and frees the device lock within seconds (tests/test_orphan.py does local and ssh)."""
    from test_orphan import GONE_WITHIN_S, lock_free
    _needs_agent(MOBILENET)
    cfg = write_config(tmp_path, adb_server, standin)
    p = edge_bench(["run", "--config", str(cfg), "--devices", "phone", *LONG, "--min-seconds", "60",
                    "--max-seconds", "120", "--no-store"], tmp_path)
    try:
        _wait_for_agent(standin, p)
        _wait_for_worker(standin, p)
        lock = Path(standin.workdir) / "lock"
        assert not lock_free(lock)
        p.kill()
        t_kill = time.monotonic()
        p.communicate(timeout=60)
        while (pids_with(standin.workdir) or not lock_free(lock)) \
                and time.monotonic() < t_kill + GONE_WITHIN_S:
            time.sleep(0.05)
        assert pids_with(standin.workdir) == [], "the job still runs on the phone"
        assert lock_free(lock)
        print(f"adb: job and worker gone, lock free {time.monotonic() - t_kill:.2f} s after kill -9")
    finally:
        kill_all(pids_with(standin.workdir))   # only this test's phone processes
    nxt = edge_bench(["run", "--config", str(cfg), "--devices", "phone", "--model", "builtin:digits",
                      "--variants", "fp32", "--runs", "3", "--min-seconds", "0", "--no-store"],
                     tmp_path)
    out, err = nxt.communicate(timeout=300)
    assert nxt.returncode == 0, err + out


def test_interrupt_stops_a_push_and_removes_its_temp_file(phone: ADBTransport, tmp_path: Path,
                                                          standin: AdbdStandin) -> None:  # noqa: F811
    """Ctrl-C during `adb push` (Transport.interrupt from the run's cancel): the push client is
    killed as soon as its temp file is on the phone, the temp file is removed, nothing arrives
    under the final name and PushCancelled names the file."""
    from edge_bench.errors import PushCancelled
    big = tmp_path / "big.tflite"
    with open(big, "wb") as f:                 # big enough that the push is still going
        for _ in range(256):
            f.write(os.urandom(1 << 20))
    wd = Path(standin.workdir) / "blobs"
    phone.makedirs(str(wd))
    dest = wd / "m.tflite"

    seen: List[int] = []

    def interrupt_when_started() -> None:
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline:
            seen.extend(p.stat().st_size for p in wd.glob("m.tflite.tmp-*"))
            time.sleep(0.01)
        phone.interrupt()
    th = threading.Thread(target=interrupt_when_started)
    th.start()
    t0 = time.monotonic()
    with pytest.raises(PushCancelled) as ei:
        phone.put(big, str(dest))
    took = time.monotonic() - t0
    th.join()
    assert seen and seen[0] < big.stat().st_size             # interrupted mid-push (a whole
    assert "big.tflite" in str(ei.value)                      # push takes about 2 s here)
    assert list(wd.iterdir()) == [], list(wd.iterdir())      # no temp file, no model
    assert phone.bytes_pushed == 0
    print(f"adb push interrupted and cleaned up {took:.2f} s after it began")
