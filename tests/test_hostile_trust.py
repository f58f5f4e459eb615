"""`devices trust` against a real sshd when known_hosts has a key of ANOTHER type for the host
(issue 16): it used to say a plain "trust this key?" (and append silently with --yes)."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from test_trust import _trust, _yaml


def _ecdsa_key(tmp_path: Path) -> tuple:
    path = tmp_path / "old_ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(path)], check=True)
    typ, b64 = path.with_suffix(".pub").read_text().split()[:2]
    fp = subprocess.run(["ssh-keygen", "-lf", str(path) + ".pub"], capture_output=True, text=True,
                        check=True).stdout.split()[1]
    return typ, b64, fp


def test_key_of_another_type_is_host_key_changed(tmp_path: Path, sshd_server: Any) -> None:
    typ, b64, old_fp = _ecdsa_key(tmp_path)
    assert typ.startswith("ecdsa-") and not sshd_server.host_key_line.startswith("ecdsa")
    kh = tmp_path / "known_hosts"
    kh.write_text(f"{sshd_server.known_hosts_name} {typ} {b64}\n")
    before = kh.read_text()
    cfg = _yaml(tmp_path, sshd_server, kh)
    p = _trust(tmp_path, cfg, "box", "--yes")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "HOST KEY CHANGED" in p.stderr and "line 1" in p.stderr and "--replace" in p.stderr
    assert old_fp in p.stderr and sshd_server.host_key_fingerprint in p.stderr   # both shown
    assert kh.read_text() == before
    p = _trust(tmp_path, cfg, "box", stdin="y\n")            # answering yes is not enough either
    assert p.returncode == 1 and kh.read_text() == before
    p = _trust(tmp_path, cfg, "box", "--yes", "--replace")
    assert p.returncode == 0, p.stdout + p.stderr
    assert kh.read_text() == f"{sshd_server.known_hosts_name} {sshd_server.host_key_line}\n"


def test_run_and_check_call_a_key_of_another_type_changed(tmp_path: Path, sshd_server: Any) -> None:
    """Already true before issue 16 (paramiko compares against the known key of any type);
    kept so that `run`, `devices --check` and `devices trust` stay in agreement."""
    from edge_bench.errors import HostKeyError
    from edge_bench.transports.ssh import SSHTransport
    from test_run_local import edge_bench
    typ, b64, old_fp = _ecdsa_key(tmp_path)
    kh = tmp_path / "known_hosts"
    kh.write_text(f"{sshd_server.known_hosts_name} {typ} {b64}\n")
    t = SSHTransport(sshd_server.device("box", known_hosts=str(kh), retries=0))
    try:
        t.connect()
        raise AssertionError("a host key of another type was accepted")
    except HostKeyError as e:
        assert "HOST KEY CHANGED" in str(e) and old_fp in str(e)
        assert sshd_server.host_key_fingerprint in str(e)
    finally:
        t.close()
    cfg = _yaml(tmp_path, sshd_server, kh)
    p = edge_bench(["devices", "--config", str(cfg), "--check"], tmp_path)
    assert p.returncode == 3 and "HOST KEY CHANGED" in p.stdout + p.stderr, p.stdout + p.stderr
    assert kh.read_text() == f"{sshd_server.known_hosts_name} {typ} {b64}\n"
