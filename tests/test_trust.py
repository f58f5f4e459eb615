"""`edge-bench devices trust NAME` against a real OpenSSH sshd (tests/sshd.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from test_run_local import edge_bench


def _yaml(tmp_path: Path, srv: Any, known_hosts: Path, name: str = "box") -> Path:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("\n".join([
        "version: 1", "devices:", f"  {name}:", "    transport: ssh", f"    host: {srv.host}",
        f"    port: {srv.port}", f"    user: {srv.user}", f"    key: {srv.client_key}",
        f"    known_hosts: {known_hosts}", "    retries: 0", "    connect_timeout_s: 5"]) + "\n")
    return cfg


def _trust(tmp_path: Path, cfg: Path, *extra: str, stdin: Optional[str] = None) -> subprocess.CompletedProcess:
    if stdin is None:
        return edge_bench(["devices", "--config", str(cfg), "trust", *extra], tmp_path)
    env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", "devices", "trust", *extra,
                           "--config", str(cfg)], input=stdin, capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=120)


def _connects(srv: Any, known_hosts: Path) -> None:
    from edge_bench.transports.ssh import SSHTransport
    t = SSHTransport(srv.device("box", known_hosts=str(known_hosts)))
    try:
        t.connect()
        assert t.host_key_fingerprint == srv.host_key_fingerprint
    finally:
        t.close()


def test_trust_yes_creates_known_hosts_and_then_connects(tmp_path: Path, sshd_server: Any) -> None:
    kh = tmp_path / "new-dir" / "known_hosts"          # neither the file nor its dir exist
    cfg = _yaml(tmp_path, sshd_server, kh)
    # before: refused, with the fingerprint and the way to trust it
    from edge_bench.errors import HostKeyError
    from edge_bench.transports.ssh import SSHTransport
    t = SSHTransport(sshd_server.device("box", known_hosts=str(kh)))
    try:
        t.connect()
        raise AssertionError("unknown host key was accepted")
    except HostKeyError as e:
        assert e.fingerprint == sshd_server.host_key_fingerprint
        assert "edge-bench devices trust box" in str(e)
    finally:
        t.close()
    p = _trust(tmp_path, cfg, "box", "--yes")
    assert p.returncode == 0, p.stdout + p.stderr
    assert sshd_server.host_key_fingerprint in p.stdout and "ssh-ed25519" in p.stdout
    assert kh.read_text() == f"{sshd_server.known_hosts_name} {sshd_server.host_key_line}\n"
    assert oct(kh.stat().st_mode & 0o777) == "0o600"
    _connects(sshd_server, kh)
    # a second trust changes nothing
    p = _trust(tmp_path, cfg, "box", "--yes")
    assert p.returncode == 0 and "already trusted" in p.stdout, p.stdout + p.stderr
    assert kh.read_text().count("\n") == 1


def test_trust_asks_and_declining_writes_nothing(tmp_path: Path, sshd_server: Any) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("# my hosts\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEx8vQdXzLQvTXk3"
                  "r1qY0i1dJ3yq9nqK8i8jQ1y7N7yK")        # no final newline
    before = kh.read_text()
    cfg = _yaml(tmp_path, sshd_server, kh)
    p = _trust(tmp_path, cfg, "box", stdin="n\n")
    assert p.returncode == 1 and "not trusted" in p.stderr, p.stdout + p.stderr
    assert sshd_server.host_key_fingerprint in p.stdout
    assert kh.read_text() == before
    p = _trust(tmp_path, cfg, "box", stdin="")              # no answer at all: no
    assert p.returncode == 1 and kh.read_text() == before
    p = _trust(tmp_path, cfg, "box", stdin="yes\n")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = kh.read_text().splitlines()
    assert lines[:2] == before.splitlines()                 # kept, newline added before ours
    assert lines[2] == f"{sshd_server.known_hosts_name} {sshd_server.host_key_line}"
    _connects(sshd_server, kh)


def test_changed_key_is_refused_unless_replace(tmp_path: Path, sshd_server: Any) -> None:
    import paramiko
    from sshd import make_keypair, public_key_line
    old = public_key_line(make_keypair(tmp_path / "oldhostkey"))
    name = sshd_server.known_hosts_name
    hashed = paramiko.HostKeys.hash_host(name)               # OpenSSH's HashKnownHosts form
    kh = tmp_path / "known_hosts"
    kh.write_text(f"keep.example {old}\n{hashed} {old}\n")
    before = kh.read_text()
    cfg = _yaml(tmp_path, sshd_server, kh)
    p = _trust(tmp_path, cfg, "box", "--yes")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "HOST KEY CHANGED" in p.stderr and "line 2" in p.stderr and str(kh) in p.stderr
    assert "ssh-keygen -R" in p.stderr and "--replace" in p.stderr
    assert kh.read_text() == before                          # --yes alone never replaces
    p = _trust(tmp_path, cfg, "box", "--yes", "--replace")
    assert p.returncode == 0, p.stdout + p.stderr
    assert kh.read_text() == f"keep.example {old}\n{name} {sshd_server.host_key_line}\n"
    _connects(sshd_server, kh)


def test_trust_errors(tmp_path: Path, sshd_server: Any) -> None:
    from sshd import free_port
    kh = tmp_path / "known_hosts"
    cfg = _yaml(tmp_path, sshd_server, kh)
    p = _trust(tmp_path, cfg, "local", "--yes")
    assert p.returncode == 2 and "only ssh devices" in p.stderr
    p = _trust(tmp_path, cfg, "nosuch", "--yes")
    assert p.returncode == 2 and "unknown device 'nosuch'" in p.stderr
    cfg.write_text(cfg.read_text().replace(f"port: {sshd_server.port}", f"port: {free_port()}"))
    p = _trust(tmp_path, cfg, "box", "--yes")
    assert p.returncode == 3 and "refused" in p.stderr and "Traceback" not in p.stderr
    assert not kh.exists()
    # the listing still works next to the new action
    p = edge_bench(["devices", "--config", str(cfg), "--json"], tmp_path)
    assert p.returncode == 0 and '"box"' in p.stdout
