"""SSHTransport against a real OpenSSH sshd on loopback (tests/sshd.py). No mocks."""
from __future__ import annotations

import hashlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from procs import alive, wait_dead  # noqa: F401

import sshd as sshd_mod
from edge_bench.errors import ConfigError, DeviceError, HostKeyError, TransportError
from edge_bench.transports import open_transport
from edge_bench.transports.ssh import SSHTransport, known_hosts_name, scan_host_key

pytestmark = pytest.mark.timeout(120)


def wait_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} did not appear")


@pytest.fixture
def tr(sshd_device):
    t = SSHTransport(sshd_device)
    t.connect()
    yield t
    t.close()


# ------------------------------------------------------------------------------ commands
def test_open_transport_picks_ssh(sshd_device):
    assert isinstance(open_transport(sshd_device), SSHTransport)


def test_lines_stream_as_they_arrive(tr, tmp_path):
    """The command prints "one", then waits until we have seen it (a file we create on the
    device, which is this machine): "one" can only reach us while the command still runs."""
    go = tmp_path / "go"
    proc = tr.start(["sh", "-c", "echo one; i=0; while [ ! -e " + str(go) + " ] && [ $i -lt 1200 ];"
                     " do sleep 0.05; i=$((i+1)); done; [ -e " + str(go) + " ] && echo two; echo three"])
    seen = []
    for line in proc.lines(idle_timeout=120):
        seen.append(line)
        if line == "one":
            go.touch()
    assert seen == ["one", "two", "three"], "first line must arrive before the command finishes"
    assert proc.wait(30) == 0


def test_exit_codes_and_stderr(tr):
    assert tr.run(["true"]).exit_code == 0
    res = tr.run(["sh", "-c", "echo out; echo oops >&2; exit 7"], timeout=10)
    assert (res.exit_code, res.stdout, res.stderr.strip()) == (7, "out", "oops")
    # the pid marker the wrapper prints on stderr never shows up in the tail
    assert "edge_bench_pid" not in res.stderr
    # death by signal comes back as -SIGNUM (OpenSSH sends exit-signal)
    assert tr.run(["sh", "-c", "kill -KILL $$"], timeout=10).exit_code == -9
    assert tr.run(["sh", "-c", "ulimit -c 0; kill -SEGV $$"], timeout=10).exit_code == -11


def test_missing_command_exit_127(tr):
    res = tr.run(["no-such-command-edge-bench"], timeout=10)
    assert res.exit_code == 127
    assert "not found" in res.stderr


def test_stdin_delivered(tr):
    data = os.urandom(3 * 1024 * 1024)
    res = tr.run(["sha256sum"], stdin=data, timeout=30)
    assert res.exit_code == 0
    assert res.stdout.split()[0] == hashlib.sha256(data).hexdigest()
    res = tr.run(["cat"], stdin=b'{"proto": 1}\nsecond line', timeout=10)
    assert res.stdout.splitlines() == ['{"proto": 1}', "second line"]
    # no stdin: EOF right away (cat must not hang)
    assert tr.run(["cat"], timeout=10).stdout == ""


def test_device_python_runs_with_numpy_and_litert(tr, sshd_device):
    res = tr.run([*sshd_device.python, "-c",
                  "import numpy, ai_edge_litert.interpreter, sys; print(sys.version_info[0])"],
                 timeout=60)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == "3"


HOSTILE = ["a b", "it's", '"double"', "$(touch {m})", "; touch {m}", "`touch {m}`", "&& touch {m}",
           "| touch {m}", "$HOME", "*", "~", "\\n", "", "-e", "x\ny", "$((1+1))", "'; touch {m}; '",
           "\"; touch {m}; \"", "${IFS}touch${IFS}{m}", ">{m}"]


def test_arguments_are_passed_literally(tr, tmp_path):
    marker = tmp_path / "INJECTED"
    args = [a.replace("{m}", str(marker)) for a in HOSTILE]
    # printf '%s\0' keeps each argument intact, newlines included
    res = tr.run(["printf", "%s\\0", *args], timeout=10)
    assert res.exit_code == 0, res.stderr
    proc = tr.start([sys.executable, "-c", "import sys; print(repr(sys.argv[1:]))", *args])
    out = list(proc.lines(10))
    assert proc.wait(10) == 0
    assert out == [repr(args)]
    assert not marker.exists(), "an argument was interpreted by a shell"


def test_env_values_are_literal(tr, tmp_path):
    marker = tmp_path / "INJECTED_ENV"
    value = f"a b $(touch {marker}) `touch {marker}` '; touch {marker}"
    proc = tr.start(["printenv", "EB_TEST"], env={"EB_TEST": value, "EB_OTHER": "1"})
    assert list(proc.lines(10)) == [value]
    assert proc.wait(10) == 0
    assert not marker.exists()
    with pytest.raises(ValueError):
        tr.start(["true"], env={"BAD NAME; touch x": "1"})


def test_command_line_quotes_every_word():
    line = SSHTransport.command_line(["echo", "$(id)", "a b"], env={"K": "v w"})
    assert line == "env 'K=v w' echo '$(id)' 'a b'"


# ------------------------------------------------------------------------------ put
def test_put_creates_parents_and_counts_bytes(tr, tmp_path, sshd_device):
    src = tmp_path / "model.tflite"
    src.write_bytes(os.urandom(200_000))
    dest = f"{sshd_device.workdir}/a/b/c/model.tflite"
    tr.put(src, dest)
    assert Path(dest).read_bytes() == src.read_bytes()
    assert tr.bytes_pushed == 200_000
    tr.put(src, dest)  # overwrite
    assert tr.bytes_pushed == 400_000
    leftovers = [p.name for p in Path(dest).parent.iterdir() if ".part-" in p.name]
    assert leftovers == []


def test_put_is_atomic(tr, tmp_path, sshd_device):
    old = tmp_path / "old.bin"
    new = tmp_path / "new.bin"
    old.write_bytes(b"A" * 1_000_000)
    new.write_bytes(b"B" * 16_000_000)
    dest = Path(sshd_device.workdir) / "blob.bin"
    tr.put(old, str(dest))
    seen = set()
    bad = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            data = dest.read_bytes()
            if data == old.read_bytes():
                seen.add("old")
            elif len(data) == 16_000_000 and data.count(b"B") == len(data):
                seen.add("new")
            else:
                bad.append(len(data))

    th = threading.Thread(target=watch)
    th.start()
    try:
        tr.put(new, str(dest))
        time.sleep(0.05)
    finally:
        stop.set()
        th.join()
    assert not bad, f"a reader saw a partial file ({bad[:3]} bytes)"
    assert "old" in seen and "new" in seen
    assert [p.name for p in dest.parent.iterdir() if ".part-" in p.name] == []


def test_put_failure_is_clear_and_leaves_nothing(tr, tmp_path, sshd_device):
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 10)
    blocker = Path(sshd_device.workdir) / "afile"
    blocker.write_text("i am a file")
    with pytest.raises(DeviceError, match="afile"):
        tr.put(src, str(blocker / "sub" / "f.bin"))
    assert tr.bytes_pushed == 0
    # the connection is still usable afterwards
    assert tr.run(["true"]).exit_code == 0


# ------------------------------------------------------------------------------ workdir
def test_resolve_workdir(tr):
    import pwd
    home = pwd.getpwnam(tr.target.user).pw_dir
    # always absolute: a relative `-c...` would reach a program as an option
    assert tr.resolve_workdir("~/x/y") == os.path.join(home, "x/y")
    assert tr.resolve_workdir("~/.cache/edge-bench/") == os.path.join(home, ".cache/edge-bench")
    assert tr.resolve_workdir("~") == home
    assert tr.resolve_workdir("rel/dir") == os.path.join(home, "rel/dir")
    assert tr.resolve_workdir("~/-cimport os") == os.path.join(home, "-cimport os")
    assert tr.resolve_workdir("/abs/path") == "/abs/path"
    assert tr.resolve_workdir("~root/x") == os.path.join(pwd.getpwnam("root").pw_dir, "x")
    assert home


def test_tilde_workdir_is_the_same_place_for_exec_and_sftp(tr, tmp_path):
    import pwd
    home = Path(pwd.getpwnam(tr.target.user).pw_dir)
    name = f".cache/edge-bench-test-{secrets.token_hex(4)}"
    try:
        wd = tr.resolve_workdir(f"~/{name}")
        assert wd == str(home / name)
        src = tmp_path / "f.txt"
        src.write_text("hello\n")
        tr.put(src, f"{wd}/sub/f.txt")
        assert (home / name / "sub" / "f.txt").read_text() == "hello\n"
        assert tr.run(["cat", f"{wd}/sub/f.txt"]).stdout == "hello"
        assert tr.sha256_many([f"{wd}/sub/f.txt", f"{wd}/missing"]) == {
            f"{wd}/sub/f.txt": hashlib.sha256(b"hello\n").hexdigest()}
    finally:
        subprocess.run(["rm", "-rf", str(home / name)])


# ------------------------------------------------------------------------------ host keys
def test_unknown_host_key_is_refused_with_fingerprint(sshd_server, make_sshd_device, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    dev = make_sshd_device("pi9", known_hosts=str(empty), retries=3, retry_backoff_s=0.01)
    t = SSHTransport(dev)
    with pytest.raises(HostKeyError) as ei:
        t.connect()
    e = ei.value
    fp = sshd_server.host_key_fingerprint   # as ssh-keygen -lf prints it
    assert fp.startswith("SHA256:") and fp in str(e)
    assert "edge-bench devices trust pi9" in str(e)
    assert str(empty) in str(e)
    assert e.retryable is False and t.attempts == 1
    assert e.fingerprint == fp and e.changed is False
    assert e.known_hosts_name == f"[127.0.0.1]:{sshd_server.port}"
    assert t.client is None


def test_missing_known_hosts_file_is_refused(make_sshd_device, tmp_path):
    dev = make_sshd_device(known_hosts=str(tmp_path / "nope"))
    with pytest.raises(HostKeyError, match="does not exist"):
        SSHTransport(dev).connect()


def test_port_22_entry_does_not_match_other_port(sshd_server, make_sshd_device, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(f"127.0.0.1 {sshd_server.host_key_line}\n")   # no [host]:port
    with pytest.raises(HostKeyError, match="unknown host key"):
        SSHTransport(make_sshd_device(known_hosts=str(kh))).connect()


def test_hashed_known_hosts_entry_accepted(sshd_server, make_sshd_device, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(sshd_server.known_hosts.read_text())
    subprocess.run(["ssh-keygen", "-H", "-f", str(kh)], check=True, capture_output=True)
    assert "|1|" in kh.read_text()
    with SSHTransport(make_sshd_device(known_hosts=str(kh))) as t:
        assert t.run(["true"]).exit_code == 0


def test_changed_host_key_is_refused(sshd_server, make_sshd_device, tmp_path):
    other = sshd_mod.make_keypair(tmp_path / "other_host_key")
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd_server.port} {sshd_mod.public_key_line(other)}\n")
    t = SSHTransport(make_sshd_device("jetson", known_hosts=str(kh), retries=2))
    with pytest.raises(HostKeyError) as ei:
        t.connect()
    msg = str(ei.value)
    assert "CHANGED" in msg
    assert sshd_server.host_key_fingerprint in msg          # presented
    assert sshd_mod.fingerprint(other) in msg               # expected
    assert "ssh-keygen -R" in msg and "edge-bench devices trust jetson" in msg
    assert ei.value.changed is True and t.attempts == 1


def test_pinned_host_key_accepted(sshd_server, make_sshd_device, tmp_path):
    dev = make_sshd_device(known_hosts=str(tmp_path / "does-not-exist"),
                           host_key=sshd_server.host_key_line + " root@board")
    with SSHTransport(dev) as t:
        assert t.run(["echo", "ok"]).stdout == "ok"
        assert t.host_key_fingerprint == sshd_server.host_key_fingerprint
    # a pinned SHA256 fingerprint works too
    dev = make_sshd_device(known_hosts=str(tmp_path / "does-not-exist"),
                           host_key=sshd_server.host_key_fingerprint)
    with SSHTransport(dev) as t:
        assert t.run(["echo", "ok"]).stdout == "ok"


def test_wrong_pinned_host_key_refused(sshd_server, make_sshd_device, tmp_path):
    other = sshd_mod.make_keypair(tmp_path / "other")
    with pytest.raises(HostKeyError, match="CHANGED") as ei:
        SSHTransport(make_sshd_device(host_key=sshd_mod.public_key_line(other))).connect()
    assert sshd_server.host_key_fingerprint in str(ei.value)
    with pytest.raises(HostKeyError, match="pinned") as ei:
        SSHTransport(make_sshd_device(host_key=sshd_mod.fingerprint(other))).connect()
    assert sshd_server.host_key_fingerprint in str(ei.value)


def test_scan_host_key_for_trust(sshd_server, make_sshd_device):
    name, key = scan_host_key(make_sshd_device())
    assert name == known_hosts_name("127.0.0.1", sshd_server.port)
    assert key.fingerprint == sshd_server.host_key_fingerprint


# ------------------------------------------------------------------------------ connect errors
def test_wrong_client_key_is_auth_error_not_retried(make_sshd_device, tmp_path):
    bad = sshd_mod.make_keypair(tmp_path / "wrong_key")
    t = SSHTransport(make_sshd_device(key=str(bad), retries=3, retry_backoff_s=0.01))
    with pytest.raises(TransportError) as ei:
        t.connect()
    e = ei.value
    assert not isinstance(e, HostKeyError)
    assert e.retryable is False
    assert t.attempts == 1
    assert "authentication failed" in str(e)
    assert "root@127.0.0.1" in str(e) and str(bad) in str(e)
    assert "authorized_keys" in str(e)


def test_missing_key_file(make_sshd_device, tmp_path):
    t = SSHTransport(make_sshd_device(key=str(tmp_path / "nokey"), retries=3))
    with pytest.raises(TransportError, match="does not exist") as ei:
        t.connect()
    assert ei.value.retryable is False


def test_connection_refused_retried_with_backoff(make_sshd_device):
    port = sshd_mod.free_port()   # nothing listens there
    t = SSHTransport(make_sshd_device(port=port, retries=2, retry_backoff_s=0.1))
    t0 = time.monotonic()
    with pytest.raises(TransportError) as ei:
        t.connect()
    elapsed = time.monotonic() - t0
    assert t.attempts == 3
    assert ei.value.retryable is True
    assert f"127.0.0.1:{port}" in str(ei.value) and "refused" in str(ei.value)
    assert "3 attempts" in str(ei.value)
    assert elapsed >= 0.1 + 0.2 - 0.02   # backoff 0.1 then 0.2


class _SilentServer:
    """Accepts TCP connections and never says anything (an SSH port that hangs)."""

    def __init__(self, close_at_once: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns = []
        self.close_at_once = close_at_once
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.close_at_once:
                c.close()
            else:
                self.conns.append(c)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_timeout_is_retryable_and_retried(make_sshd_device):
    srv = _SilentServer()
    try:
        t = SSHTransport(make_sshd_device(port=srv.port, connect_timeout_s=0.5, retries=1,
                                          retry_backoff_s=0.01))
        t0 = time.monotonic()
        with pytest.raises(TransportError) as ei:
            t.connect()
        assert time.monotonic() - t0 < 10
        assert ei.value.retryable is True
        assert t.attempts == 2 and srv.accepted == 2
        assert f"127.0.0.1:{srv.port}" in str(ei.value)
        assert "0.5 s" in str(ei.value)
    finally:
        srv.close()


def test_reset_during_handshake_is_retryable(make_sshd_device):
    srv = _SilentServer(close_at_once=True)
    try:
        t = SSHTransport(make_sshd_device(port=srv.port, connect_timeout_s=2, retries=2,
                                          retry_backoff_s=0.01))
        with pytest.raises(TransportError) as ei:
            t.connect()
        assert ei.value.retryable is True
        assert t.attempts == 3 and srv.accepted == 3
    finally:
        srv.close()


def test_dns_failure(make_sshd_device):
    t = SSHTransport(make_sshd_device(host="no-such-board.invalid", retries=0))
    with pytest.raises(TransportError, match="cannot resolve host name 'no-such-board.invalid'"):
        t.connect()


def test_ssh_config_alias(sshd_server, make_sshd_device, tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host lab-pi\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n"
                   f"  User {sshd_server.user}\n  IdentityFile {sshd_server.client_key}\n"
                   f"  UserKnownHostsFile {sshd_server.known_hosts}\n")
    dev = make_sshd_device(host="lab-pi", port=None, user=None, key=None, known_hosts=None,
                           ssh_config=str(cfg))
    with SSHTransport(dev) as t:
        assert (t.target.hostname, t.target.port, t.target.user) == ("127.0.0.1", sshd_server.port, "root")
        assert t.run(["id", "-un"]).stdout == "root"


def test_proxyjump_goes_through_the_jump_host_and_verifies_both_keys(sshd_server, sshd_factory,
                                                                    make_sshd_device, tmp_path):
    """ProxyJump from the ssh config, done in paramiko: a verified connection to the jump host
    (a real sshd that allows forwarding), then a direct-tcpip channel to the device."""
    # one key for both hops (the device's key: is used for its jump host too)
    jump = sshd_factory(extra_config=["AllowTcpForwarding yes"], name="jumphost",
                        client_key=sshd_server.client_key)
    known = tmp_path / "known_hosts"
    known.write_text(sshd_server.known_hosts.read_text() + jump.known_hosts.read_text())
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host bastion\n  HostName 127.0.0.1\n  Port {jump.port}\n  User root\n"
                   f"Host lab-pi\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n"
                   f"  ProxyJump bastion\n")
    dev = make_sshd_device(host="lab-pi", port=None, known_hosts=str(known), ssh_config=str(cfg))
    with SSHTransport(dev) as t:
        assert t.target.proxy_jump == "bastion"
        assert t.run(["echo", "through"]).stdout == "through"
        assert t._jump is not None and t._jump.get_transport().is_active()
    assert t._jump is None   # closed with the transport

    # the jump host down: the device (still up) is unreachable, so the jump really was used
    jump.stop()
    with pytest.raises(TransportError, match="connection refused") as ei:
        SSHTransport(dev).connect()
    assert ei.value.retryable

    # the jump host's key is verified like any other: unknown -> refused, not accepted
    jump.restart()
    known.write_text(sshd_server.known_hosts.read_text())
    with pytest.raises(HostKeyError) as hk:
        SSHTransport(dev).connect()
    assert hk.value.fingerprint == jump.host_key_fingerprint and hk.value.changed is False


def test_proxyjump_that_looks_like_an_option_is_refused(make_sshd_device, tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host lab-pi\n  HostName 127.0.0.1\n  ProxyJump -oProxyCommand=touch\n")
    dev = make_sshd_device(host="lab-pi", port=None, ssh_config=str(cfg))
    with pytest.raises(ConfigError, match="ProxyJump"):
        SSHTransport(dev).connect()


# ------------------------------------------------------------------------------ idle / cancel
def test_idle_timeout_fires_and_kills(tr, tmp_path):
    pidf = tmp_path / "pid"
    proc = tr.start(["sh", "-c", f"echo $$ > {pidf}; echo started; sleep 60"])
    t0 = time.monotonic()
    got = []
    with pytest.raises(TransportError, match=r"stalled: no output for 1 s"):
        for line in proc.lines(idle_timeout=1.0):
            got.append(line)
    assert got == ["started"]
    assert time.monotonic() - t0 < 6
    assert wait_dead([int(wait_file(pidf))]), "the stalled remote process was left running"


def _start_tree(tr, tmp_path, trap_term: bool = False):
    d = tmp_path
    trap = "trap '' TERM; " if trap_term else ""
    script = (f"{trap}sleep 300 & echo $! > {d}/child.pid; "
              f"sh -c '{trap}sleep 301 & echo $! > {d}/grandchild.pid; wait' & "
              f"echo $$ > {d}/parent.pid; echo ready; wait")
    proc = tr.start(["sh", "-c", script])
    it = proc.lines(idle_timeout=10)
    assert next(it) == "ready"
    pids = [int(wait_file(d / n)) for n in ("parent.pid", "child.pid", "grandchild.pid")]
    assert all(alive(p) for p in pids)
    return proc, pids


def test_cancel_kills_remote_process_tree(tr, tmp_path):
    proc, pids = _start_tree(tr, tmp_path)
    deadline = time.monotonic() + 5
    while proc.pid is None and time.monotonic() < deadline:   # reported on stderr, maybe later
        time.sleep(0.01)
    assert proc.pid == pids[0]
    t0 = time.monotonic()
    proc.cancel()
    assert wait_dead(pids, 5), f"orphans left: {[p for p in pids if alive(p)]}"
    assert time.monotonic() - t0 < 5
    proc.cancel()          # twice is fine
    proc.wait(5)
    assert tr.run(["echo", "still usable"]).stdout == "still usable"


def test_cancel_kills_processes_that_ignore_term(tr, tmp_path):
    proc, pids = _start_tree(tr, tmp_path, trap_term=True)
    proc.cancel()
    assert wait_dead(pids, 10), f"orphans left: {[p for p in pids if alive(p)]}"


def test_cancel_after_exit_is_harmless(tr):
    proc = tr.start(["echo", "x"])
    assert list(proc.lines(5)) == ["x"]
    assert proc.wait(5) == 0
    proc.cancel()
    assert proc.stderr_tail() == ""


def test_wait_timeout_kills(tr, tmp_path):
    pidf = tmp_path / "pid"
    proc = tr.start(["sh", "-c", f"echo $$ > {pidf}; exec sleep 60"])
    pid = int(wait_file(pidf))
    with pytest.raises(TransportError, match="did not exit within"):
        proc.wait(0.5)
    assert wait_dead([pid])


def test_close_kills_running_commands(sshd_device, tmp_path):
    pidf = tmp_path / "pid"
    t = SSHTransport(sshd_device)
    t.connect()
    t.start(["sh", "-c", f"echo $$ > {pidf}; sleep 60"])
    pid = int(wait_file(pidf))
    t.close()
    assert wait_dead([pid])
    assert t.client is None


def test_connection_drop_is_reported(tr, tmp_path):
    pidf = tmp_path / "pid"
    proc = tr.start(["sh", "-c", f"echo $$ > {pidf}; echo hi; sleep 30"])
    it = proc.lines(idle_timeout=20)
    assert next(it) == "hi"
    shell = int(wait_file(pidf))
    # the parent of the remote shell is this connection's sshd session process: kill it
    ppid = int(open(f"/proc/{shell}/stat").read().rsplit(")", 1)[1].split()[1])
    os.kill(ppid, 9)
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="lost") as ei:
        next(it)
    assert ei.value.retryable is True
    assert time.monotonic() - t0 < 10
    # nothing on the device was told: the command runs on (the reason cancel() exists); clean up
    os.killpg(shell, 9)
    assert wait_dead([shell])


# ------------------------------------------------------------------------------ parallel
def test_parallel_devices(sshd_factory, tmp_path):
    servers = [sshd_factory(), sshd_factory()]
    results = {}

    def work(i, s):
        dev = s.device(f"board{i}", workdir=str(tmp_path / f"w{i}"))
        with SSHTransport(dev) as t:
            src = tmp_path / f"in{i}"
            src.write_text(f"payload {i}\n")
            t.put(src, f"{dev.workdir}/p.txt")
            # a rendezvous: each command marks its start and waits (up to 60 s) for the other's;
            # run one after the other, the first would give up and print nothing
            mine, other = tmp_path / f"started{i}", tmp_path / f"started{1 - i}"
            results[i] = t.run(["sh", "-c", f"touch {mine}; i=0; while [ ! -e {other} ] && "
                                f"[ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; "
                                f"[ -e {other} ] && cat {dev.workdir}/p.txt"]).stdout

    ths = [threading.Thread(target=work, args=(i, s)) for i, s in enumerate(servers)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    assert results == {0: "payload 0", 1: "payload 1"}, "the two devices did not run in parallel"
    assert servers[0].port != servers[1].port
    assert servers[0].host_key_fingerprint != servers[1].host_key_fingerprint


def test_non_root_user_home_workdir(sshd_factory, tmp_path):
    """A second sshd logging in as an ordinary user (created with useradd, unlocked for keys):
    `~/...` lands in that user's home for both SFTP and commands."""
    srv = sshd_factory(user="edgebench")
    dev = srv.device("pi-user", workdir="~/.cache/edge-bench-test")
    import pwd
    home = Path(pwd.getpwnam("edgebench").pw_dir)
    try:
        with SSHTransport(dev) as t:
            assert t.run(["id", "-un"]).stdout == "edgebench"
            wd = t.resolve_workdir(dev.workdir)
            src = tmp_path / "f.txt"
            src.write_text("hi\n")
            t.put(src, f"{wd}/f.txt")
            assert (home / ".cache/edge-bench-test/f.txt").stat().st_uid == pwd.getpwnam("edgebench").pw_uid
            assert t.run(["sh", "-c", 'cat "$HOME/.cache/edge-bench-test/f.txt"']).stdout == "hi"
    finally:
        subprocess.run(["rm", "-rf", str(home / ".cache/edge-bench-test")])
