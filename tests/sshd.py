"""A real OpenSSH sshd for tests: its own config, throwaway host key and client key in a temp dir.

Runs as root (tests run as root in CI) on a free loopback port, in daemon mode with a PidFile.
Login is as root with the generated client key by default: root can run the test interpreter
(`sys.executable`, which may live under a 0700 /root), so an `SSHD.device()` can run the real
agent with numpy + ai-edge-litert. A non-root `user=` is supported (created with useradd,
unlocked with `usermod -p '*'` since UsePAM is off); such a user usually cannot run the test
interpreter, so its devices get `python3` unless told otherwise.

    from sshd import start_sshd
    srv = start_sshd(tmp_dir)            # -> SSHD
    dev = srv.device("box1", workdir="/tmp/x")   # -> edge_bench.config.Device
    srv.stop()

For a fleet in network namespaces pass `host=` (the address to listen on and to connect to) and
`wrapper=["ip", "netns", "exec", "ns1"]` (prefix for the sshd command).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

SSHD_BIN = "/usr/sbin/sshd"


def sshd_missing_reason() -> Optional[str]:
    """Why an sshd cannot be started here, or None when it can."""
    sshd = SSHD_BIN if os.path.exists(SSHD_BIN) else shutil.which("sshd")
    if not sshd:
        return "OpenSSH server not installed (/usr/sbin/sshd missing; apt-get install openssh-server)"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen not installed (apt-get install openssh-client)"
    if os.geteuid() != 0:
        return "the sshd fixture must run as root (it starts sshd with its own host key)"
    return None


def _sshd_bin() -> str:
    return SSHD_BIN if os.path.exists(SSHD_BIN) else (shutil.which("sshd") or SSHD_BIN)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_keypair(path: Path, comment: str = "edge-bench-test") -> Path:
    """An ed25519 key pair at `path` / `path.pub` (no passphrase). Returns `path`."""
    path = Path(path)
    for p in (path, path.with_name(path.name + ".pub")):
        if p.exists():
            p.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return path


def public_key_line(path: Path) -> str:
    """'ssh-ed25519 AAAA...' (type and base64, no comment) of a key pair's public half."""
    text = Path(str(path) + ".pub").read_text().split()
    return f"{text[0]} {text[1]}"


def fingerprint(path: Path) -> str:
    """SHA256:... of a key pair, as `ssh-keygen -lf` prints it."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path) + ".pub"], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _ensure_user(user: str) -> Path:
    """Create `user` if needed (unlocked for key login); return its home directory."""
    import pwd
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        # another test worker (pytest -n) may be creating it at the same moment: then
        # useradd fails with "already exists" and the account is there all the same
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", user], check=False, capture_output=True)
        pw = pwd.getpwnam(user)
    # useradd leaves the account locked ("!"); with UsePAM no sshd refuses locked accounts.
    subprocess.run(["usermod", "-p", "*", user], check=True, capture_output=True)
    return Path(pw.pw_dir)


@dataclass
class SSHD:
    """One running sshd."""

    dir: Path                 # its private directory (config, keys, pid, log)
    host: str                 # address it listens on (and clients connect to)
    port: int
    user: str                 # the login user the client key is authorized for
    client_key: Path          # private key (ed25519, no passphrase); public at + ".pub"
    host_key: Path            # sshd's private host key; public at + ".pub"
    known_hosts: Path         # a known_hosts file with exactly this server's host key
    config: Path
    pidfile: Path
    log: Path
    wrapper: Sequence[str] = ()
    python: Sequence[str] = field(default_factory=lambda: [sys.executable])

    # ------------------------------------------------------------------ facts
    @property
    def pid(self) -> Optional[int]:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def host_key_line(self) -> str:
        """'ssh-ed25519 AAAA...' of the host key: what `Device.host_key` pins."""
        return public_key_line(self.host_key)

    @property
    def host_key_fingerprint(self) -> str:
        return fingerprint(self.host_key)

    @property
    def known_hosts_name(self) -> str:
        return known_hosts_name(self.host, self.port)

    def device(self, name: str = "sshbox", **overrides: Any) -> Any:
        """A Device (transport ssh) that reaches this server: host, port, user, key, known_hosts,
        python (the test interpreter for root), fast connect settings. `overrides` replace any
        field (e.g. workdir=..., host_key=..., known_hosts=None)."""
        from edge_bench.config import Device
        kw: dict = dict(name=name, transport="ssh", host=self.host, port=self.port, user=self.user,
                        key=str(self.client_key), known_hosts=str(self.known_hosts),
                        python=tuple(self.python), workdir=str(self.dir / "workdir"),
                        connect_timeout_s=10.0, retries=0, retry_backoff_s=0.1,
                        idle_timeout_s=60.0, timeout_s=300.0, tags=("ssh", "test"),
                        source=f"{self.config}")
        kw.update(overrides)
        return Device(**kw)

    def is_running(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")   # a zombie is dead (its reaper may be slow)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # --------------------------------------------------------------- control
    def stop(self) -> None:
        """Stop the listener (open sessions end with their clients). Safe to call twice."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.is_running():
            time.sleep(0.02)
        if self.is_running():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.pidfile.unlink()
        except OSError:
            pass

    def restart(self) -> None:
        """Start this sshd again (same port, keys, config) after stop()."""
        self.stop()
        _launch(self, timeout=15)

    def __enter__(self) -> "SSHD":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Options newer or older sshd builds may not know: kept only when `sshd -t` accepts them.
_OPTIONAL_LINES = [
    "PerSourcePenalties no",   # OpenSSH >= 9.8 would throttle 127.0.0.1 after auth-failure tests
    "UsePAM no",
]


def _write_config(s: SSHD, authorized_keys: Path, extra: Sequence[str]) -> None:
    # sshd takes the FIRST value of a keyword: `extra` goes first so that it can override
    # (e.g. "AllowTcpForwarding yes" for a ProxyJump host); no Match blocks in `extra`
    base = [
        *extra,
        f"Port {s.port}",
        f"ListenAddress {s.host}",
        f"HostKey {s.host_key}",
        f"PidFile {s.pidfile}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        f"AuthorizedKeysFile {authorized_keys} .ssh/authorized_keys",
        "StrictModes no",
        "UseDNS no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "PrintMotd no",
        "PrintLastLog no",
        "MaxStartups 200:30:400",
        "MaxSessions 100",
        "MaxAuthTries 20",
        "LoginGraceTime 30",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
    ]
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)   # privilege separation dir
    opt: List[str] = []
    for line in _OPTIONAL_LINES:
        s.config.write_text("\n".join(base + opt + [line]) + "\n")
        r = subprocess.run([_sshd_bin(), "-t", "-f", str(s.config)], capture_output=True, text=True)
        if r.returncode == 0:
            opt.append(line)
    s.config.write_text("\n".join(base + opt) + "\n")
    r = subprocess.run([_sshd_bin(), "-t", "-f", str(s.config)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"sshd rejects its test config {s.config}: {r.stderr.strip()}")


def _launch(s: SSHD, timeout: float) -> None:
    """Start sshd in daemon mode and wait until it accepts TCP connections."""
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)   # privilege separation dir
    try:
        s.pidfile.unlink()
    except OSError:
        pass
    r = subprocess.run([*s.wrapper, _sshd_bin(), "-f", str(s.config), "-E", str(s.log)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"sshd failed to start (exit {r.returncode}): {r.stderr.strip()}"
                           f"\n{s.log_tail()}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if s.pid is not None:
            try:
                with socket.create_connection((s.host, s.port), timeout=1) as c:
                    c.settimeout(2)
                    if c.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                pass
        elif "Cannot bind" in s.log_tail() or "Address already in use" in s.log_tail():
            raise OSError(f"sshd could not bind {s.host}:{s.port}")
        time.sleep(0.03)
    s.stop()
    raise RuntimeError(f"sshd on {s.host}:{s.port} did not come up within {timeout} s:\n{s.log_tail()}")


def start_sshd(base_dir: Path, *, host: str = "127.0.0.1", port: Optional[int] = None,
               user: str = "root", client_key: Optional[Path] = None,
               host_key: Optional[Path] = None, wrapper: Sequence[str] = (),
               extra_config: Sequence[str] = (), python: Optional[Sequence[str]] = None,
               name: Optional[str] = None, timeout: float = 15.0) -> SSHD:
    """Start a real sshd and return its SSHD handle (call .stop() when done).

    base_dir: a directory for this server's files (a subdirectory is made per server).
    port: None picks a free one (retried if another process grabs it first).
    client_key / host_key: reuse existing private keys (e.g. one client key for a whole fleet);
    generated otherwise. user: login user ('root' by default; others are created)."""
    reason = sshd_missing_reason()
    if reason:
        raise RuntimeError(reason)
    base_dir = Path(base_dir)
    last: Optional[BaseException] = None
    for _attempt in range(5):
        p = port if port is not None else free_port(host if not wrapper else "127.0.0.1")
        d = base_dir / (name or f"sshd-{host}-{p}")
        d.mkdir(parents=True, exist_ok=True)
        hk = Path(host_key) if host_key else make_keypair(d / "ssh_host_ed25519_key", f"host-{p}")
        ck = Path(client_key) if client_key else make_keypair(d / "client_key", "edge-bench-client")
        authorized = d / "authorized_keys"
        authorized.write_text(Path(str(ck) + ".pub").read_text())
        if user != "root":
            home = _ensure_user(user)
            ssh_dir = home / ".ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            ak = ssh_dir / "authorized_keys"
            line = Path(str(ck) + ".pub").read_text().strip()
            old = ak.read_text() if ak.exists() else ""
            if line not in old:
                ak.write_text(old + line + "\n")
            shutil.chown(ssh_dir, user, user)
            shutil.chown(ak, user, user)
        s = SSHD(dir=d, host=host, port=p, user=user, client_key=ck, host_key=hk,
                 known_hosts=d / "known_hosts", config=d / "sshd_config", pidfile=d / "sshd.pid",
                 log=d / "sshd.log", wrapper=tuple(wrapper),
                 python=list(python) if python is not None
                 else ([sys.executable] if user == "root" else ["python3"]))
        s.known_hosts.write_text(f"{known_hosts_name(host, p)} {public_key_line(hk)}\n")
        _write_config(s, authorized, extra_config)
        try:
            _launch(s, timeout)
            return s
        except OSError as e:   # port taken between free_port() and bind: try another
            last = e
            if port is not None:
                raise
    raise RuntimeError(f"could not start sshd: {last}")
