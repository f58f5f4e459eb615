"""Issue 25 item 8: known_hosts is read as OpenSSH reads it. One `@cert-authority` or `@revoked`
line (for an unrelated domain) used to break every SSH device ("internal error: InvalidHostKey
... Incorrect padding"); a malformed line is skipped; a key marked `@revoked` is refused even
when another line lists it. Real sshd, real connections."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_bench.errors import HostKeyError
from edge_bench.transports.ssh import SSHTransport
from test_hostile_trust import _ecdsa_key
from test_run_local import edge_bench
from test_trust import _trust, _yaml


def _connect(sshd_server: Any, kh: Path) -> None:
    t = SSHTransport(sshd_server.device("box", known_hosts=str(kh), retries=0))
    try:
        t.connect()
        assert t.run(["true"]).exit_code == 0
    finally:
        t.close()


def test_marker_and_malformed_lines_do_not_break_other_hosts(tmp_path: Path,
                                                            sshd_server: Any) -> None:
    typ, b64, _ = _ecdsa_key(tmp_path)
    kh = tmp_path / "known_hosts"
    kh.write_text(f"@cert-authority *.corp.example {typ} {b64}\n"
                  f"@revoked old.corp.example {typ} {b64}\n"
                  "broken.example ssh-ed25519 not-base64!!\n"
                  f"{sshd_server.known_hosts_name} {sshd_server.host_key_line}\n")
    _connect(sshd_server, kh)
    cfg = _yaml(tmp_path, sshd_server, kh)
    p = edge_bench(["devices", "--config", str(cfg), "--check"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "internal error" not in p.stdout + p.stderr


def test_a_revoked_key_is_refused_even_when_listed(tmp_path: Path, sshd_server: Any) -> None:
    kh = tmp_path / "known_hosts"
    typ, b64 = sshd_server.host_key_line.split()[:2]
    kh.write_text(f"{sshd_server.known_hosts_name} {typ} {b64}\n@revoked * {typ} {b64}\n")
    with pytest.raises(HostKeyError, match="@revoked"):
        _connect(sshd_server, kh)
    before = kh.read_text()
    cfg = _yaml(tmp_path, sshd_server, kh)
    p = _trust(tmp_path, cfg, "box", "--yes")
    assert p.returncode == 1 and "REVOKED" in p.stderr, p.stdout + p.stderr
    assert kh.read_text() == before
