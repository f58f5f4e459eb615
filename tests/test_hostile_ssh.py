"""Hostile workdirs and paths over a real OpenSSH sshd (issue 16): no remote argument starts
with `-` (a workdir `~/-c<code>#` used to run <code> in the device's python), and sha256sum's
escaped output for a path with a backslash is still understood."""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_run_local import edge_bench


def _yaml(tmp_path: Path, sshd: Any, workdir: str) -> Path:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("\n".join([
        "version: 1", "devices:", "  box:", "    transport: ssh",
        f"    host: {sshd.host}", f"    port: {sshd.port}", f"    user: {sshd.user}",
        f"    key: {sshd.client_key}", f"    known_hosts: {sshd.known_hosts}",
        f"    python: {sys.executable}", f"    workdir: {json.dumps(workdir)}", "    retries: 0"]) + "\n")
    return cfg


def test_workdir_that_looks_like_an_option_is_not_one(tmp_path: Path, sshd_server: Any) -> None:
    marker = Path("/tmp") / f"edge-bench-pwned-{secrets.token_hex(6)}"
    name = f"-cimport os;os.system('touch {marker}')#{secrets.token_hex(3)}"
    home = Path(pwd.getpwnam(sshd_server.user).pw_dir)
    cfg = _yaml(tmp_path, sshd_server, f"~/{name}")
    try:
        out = tmp_path / "out.json"
        p = edge_bench(["run", "--config", str(cfg), "--devices", "box", "--no-store",
                        "--model", "builtin:digits", "--variants", "fp32", "--runs", "3",
                        "--warmup", "0", "--min-seconds", "0", "--processes", "1",
                        "--json", str(out)], tmp_path)
        assert not marker.exists(), "the workdir's text ran as python code on the device"
        assert p.returncode == 0, p.stdout + p.stderr
        (r,) = json.loads(out.read_text())["results"]
        assert r["status"] == "ok"
        assert (home / name).is_dir()                    # the workdir is that odd directory
    finally:
        subprocess.run(["rm", "-rf", "--", str(home / name)])
        if marker.exists():
            marker.unlink()


def test_sha256_of_a_path_with_a_backslash(tmp_path: Path, sshd_server: Any) -> None:
    from edge_bench.transports.ssh import SSHTransport
    d = tmp_path / "odd"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o777)
    f = d / "a\\b.bin"
    f.write_bytes(b"payload\n")
    os.chmod(f, 0o644)
    t = SSHTransport(sshd_server.device("box"))
    try:
        t.connect()
        got = t.sha256_many([str(f), str(d / "missing")])
    finally:
        t.close()
    assert got == {str(f): hashlib.sha256(b"payload\n").hexdigest()}
