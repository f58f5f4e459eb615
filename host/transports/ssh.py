"""SSH devices (Raspberry Pi, Jetson, any Linux board) through paramiko.

- Settings: devices.yaml fields win, then ~/.ssh/config (or `ssh_config:`) for the Host alias
  (HostName, Port, User, IdentityFile, UserKnownHostsFile, ProxyCommand), then OpenSSH defaults.
- Host keys are always verified, never auto-accepted: against the pinned `host_key:` (a public
  key line or a `SHA256:` fingerprint) or known_hosts (`[host]:port` entries for ports other
  than 22, hashed entries too). An unknown or changed key raises HostKeyError with the
  presented key's SHA256 fingerprint and what to do.
- Connection-level failures (refused, timeout, reset) are retried with exponential backoff;
  auth and host key failures are not.
- Commands: argv is quoted word by word (shlex.quote), so nothing in an argument reaches a
  shell. The remote shell first reports its pid (= its process group, since sshd starts each
  session with setsid) on stderr, then execs the command; cancel() kills that whole process
  group over a separate channel (TERM, then KILL), because OpenSSH ignores signals requested
  over the SSH protocol.
- put(): SFTP upload to `remote.part-<random>`, then posix-rename over `remote` (atomic).
- The device's login shell must be POSIX-like (sh, bash, dash, ash, zsh): the command line is
  `exec sh -c '<pid report; exec "$@">' edge-bench <quoted words>`.
"""
from __future__ import annotations

import base64
import errno
import getpass
import logging
import os
import posixpath
import re
import secrets
import shlex
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import paramiko
from paramiko.ssh_exception import (AuthenticationException, BadHostKeyException,
                                    NoValidConnectionsError, PasswordRequiredException,
                                    SSHException)

from ..config import Device
from ..errors import ConfigError, DeviceError, HostKeyError, TransportError
from .base import RemoteProcess, Transport
from .streams import LineQueue, TailBuffer

#: seconds between SSH keepalive packets (dead links are caught by the idle timeout, not these)
KEEPALIVE_S = 15
#: seconds cancel() waits after SIGTERM before SIGKILL
KILL_GRACE_S = 2.0
_PID_MARK = "__edge_bench_pid_"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

# paramiko logs handshake failures at ERROR level with tracebacks; with no handler configured,
# Python's last-resort handler would print them on the terminal next to our own clear message.
if not logging.getLogger("paramiko").handlers:
    logging.getLogger("paramiko").addHandler(logging.NullHandler())


# ---------------------------------------------------------------------------- settings
@dataclass
class SSHTarget:
    """Where and how to connect, after devices.yaml and ~/.ssh/config are merged."""

    alias: str                       # device.host as written
    hostname: str                    # what we connect to
    port: int
    user: str
    key_filenames: List[str]         # explicit keys (device.key or IdentityFile)
    allow_agent: bool
    look_for_keys: bool
    known_hosts: List[str]           # files consulted (when no host_key pin)
    pinned_keys: List[paramiko.PKey] = field(default_factory=list)
    pinned_fingerprint: Optional[str] = None
    proxy_command: Optional[str] = None

    @property
    def host_key_name(self) -> str:
        """How this host is named in known_hosts."""
        return known_hosts_name(self.hostname, self.port)

    @property
    def where(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def known_hosts_name(hostname: str, port: int) -> str:
    """`host` for port 22, `[host]:port` otherwise (the OpenSSH known_hosts convention)."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def known_hosts_line(name: str, key: paramiko.PKey) -> str:
    """A known_hosts line for `name` (see known_hosts_name) and `key`."""
    return f"{name} {key.get_name()} {key.get_base64()}"


def parse_pinned_key(text: str) -> paramiko.PKey:
    """'ssh-ed25519 AAAA... [comment]' -> PKey. Raises ValueError."""
    parts = text.split()
    if len(parts) < 2:
        raise ValueError("expected '<type> <base64>' like 'ssh-ed25519 AAAA...'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        return paramiko.PKey.from_type_string(parts[0], blob)
    except Exception as e:  # noqa: BLE001 - binascii.Error, SSHException, UnknownKeyType...
        raise ValueError(f"not a valid {parts[0]} public key ({e})") from None


def resolve_target(device: Device) -> SSHTarget:
    """Merge the device's fields with its ~/.ssh/config (or device.ssh_config) entry."""
    if not device.host:
        raise ConfigError(f"{device.source}: device {device.name!r} has no host",
                          hint="set host: to a hostname, IP or ~/.ssh/config alias")
    cfg: Dict[str, Any] = {}
    cfg_path = Path(device.ssh_config).expanduser() if device.ssh_config else Path("~/.ssh/config").expanduser()
    if device.ssh_config and not cfg_path.is_file():
        raise ConfigError(f"{device.source}: ssh_config {cfg_path} of device {device.name!r} does not exist")
    if cfg_path.is_file():
        try:
            cfg = dict(paramiko.SSHConfig.from_path(str(cfg_path)).lookup(device.host))
        except Exception as e:  # noqa: BLE001 - paramiko raises several types for a bad file
            raise ConfigError(f"{cfg_path}: cannot read SSH config for host {device.host!r}: {e}")
    hostname = cfg.get("hostname") or device.host
    port = device.port or int(cfg.get("port") or 22)
    user = device.user or cfg.get("user") or getpass.getuser()
    if device.key:
        keys = [str(Path(device.key).expanduser())]
        allow_agent = look_for_keys = False
    else:
        keys = [str(Path(k).expanduser()) for k in (cfg.get("identityfile") or [])
                if Path(k).expanduser().is_file()]
        allow_agent = look_for_keys = True
    if device.known_hosts:
        known = [str(Path(device.known_hosts).expanduser())]
    else:
        files = (cfg.get("userknownhostsfile") or "~/.ssh/known_hosts").split()
        known = [str(Path(f).expanduser()) for f in files]
        for g in (cfg.get("globalknownhostsfile") or "/etc/ssh/ssh_known_hosts").split():
            known.append(str(Path(g).expanduser()))
    pinned: List[paramiko.PKey] = []
    pinned_fp: Optional[str] = None
    if device.host_key:
        hk = device.host_key.strip()
        if hk.startswith("SHA256:"):
            pinned_fp = hk
        else:
            try:
                pinned = [parse_pinned_key(hk)]
            except ValueError as e:
                raise ConfigError(f"{device.source}: field devices.{device.name}.host_key: {e}",
                                  hint="copy the line from the device's /etc/ssh/ssh_host_ed25519_key.pub"
                                       " or use its SHA256:... fingerprint") from None
    proxy = cfg.get("proxycommand")
    if cfg.get("proxyjump") and not proxy:
        j = cfg["proxyjump"]
        proxy = f"ssh -W {shlex.quote(hostname)}:{port} {shlex.quote(j)}"
    return SSHTarget(alias=device.host, hostname=hostname, port=port, user=user,
                     key_filenames=keys, allow_agent=allow_agent, look_for_keys=look_for_keys,
                     known_hosts=known, pinned_keys=pinned, pinned_fingerprint=pinned_fp,
                     proxy_command=proxy)


# ---------------------------------------------------------------------------- host keys
def _unknown_key_error(device: Device, target: SSHTarget, key: paramiko.PKey) -> HostKeyError:
    fp = key.fingerprint
    if target.pinned_fingerprint:
        err = HostKeyError(
            device.name, f"host key of {target.host_key_name} does not match the pinned host_key:"
            f" devices.yaml pins {target.pinned_fingerprint}, the server presented {key.get_name()} {fp}",
            hint="this may be a man-in-the-middle attack or a reinstalled device; if the device was"
                 f" reinstalled, put the new fingerprint in devices.{device.name}.host_key")
        err.changed = True
    else:
        files = [f for f in target.known_hosts if os.path.isfile(f)]
        where = ", ".join(files) if files else f"{target.known_hosts[0]} (which does not exist)"
        err = HostKeyError(
            device.name, f"unknown host key for {target.host_key_name}: the server presented"
            f" {key.get_name()} {fp}, which is not in {where}; refusing to connect",
            hint=f"check that fingerprint on the device (`ssh-keygen -lf /etc/ssh/ssh_host_{_short(key)}_key.pub`),"
                 f" then run `edge-bench devices trust {device.name}` or add it to"
                 f" {target.known_hosts[0]} (`ssh-keyscan -p {target.port} {target.hostname} >> {target.known_hosts[0]}`)")
        err.changed = False
    err.fingerprint = fp
    err.key = key
    err.known_hosts_name = target.host_key_name
    err.known_hosts = target.known_hosts[0] if target.known_hosts else None
    return err


def _changed_key_error(device: Device, target: SSHTarget, key: paramiko.PKey,
                       expected: paramiko.PKey) -> HostKeyError:
    fp = key.fingerprint
    if target.pinned_keys:
        src = f"devices.{device.name}.host_key pins"
        hint = ("this may be a man-in-the-middle attack or a reinstalled device; if the device was"
                f" reinstalled, update devices.{device.name}.host_key (or run"
                f" `edge-bench devices trust {device.name}`)")
    else:
        files = [f for f in target.known_hosts if os.path.isfile(f)]
        src = (", ".join(files) or "known_hosts") + " has"
        kh = files[0] if files else "~/.ssh/known_hosts"
        hint = ("this may be a man-in-the-middle attack, or the device was reinstalled; only if you are"
                f" sure it was reinstalled: `ssh-keygen -R '{target.host_key_name}' -f {kh}`, then"
                f" `edge-bench devices trust {device.name}`")
    err = HostKeyError(
        device.name, f"HOST KEY CHANGED for {target.host_key_name}: {src} {expected.get_name()}"
        f" {expected.fingerprint}, the server presented {key.get_name()} {fp}; refusing to connect",
        hint=hint)
    err.changed = True
    err.fingerprint = fp
    err.key = key
    err.known_hosts_name = target.host_key_name
    err.known_hosts = target.known_hosts[0] if target.known_hosts else None
    return err


def _short(key: paramiko.PKey) -> str:
    name = key.get_name()
    if "ed25519" in name:
        return "ed25519"
    if "ecdsa" in name:
        return "ecdsa"
    return "rsa"


class _RejectUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Never accept a key that is not known, except one matching a pinned SHA256 fingerprint."""

    def __init__(self, device: Device, target: SSHTarget) -> None:
        self.device = device
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.target.pinned_fingerprint and key.fingerprint == self.target.pinned_fingerprint:
            return
        raise _unknown_key_error(self.device, self.target, key)


def scan_host_key(device: Device, timeout: Optional[float] = None) -> Tuple[str, paramiko.PKey]:
    """The host key the device presents (no authentication, nothing verified): returns
    (known_hosts name, key). For `edge-bench devices trust`, which shows the fingerprint and
    appends known_hosts_line(name, key) to the device's known_hosts."""
    target = resolve_target(device)
    timeout = timeout or device.connect_timeout_s
    sock = _open_socket(device, target, timeout)
    t = paramiko.Transport(sock)
    try:
        t.banner_timeout = timeout
        t.start_client(timeout=timeout)
        return target.host_key_name, t.get_remote_server_key()
    except Exception as e:  # noqa: BLE001
        raise _map_connect_error(device, target, e) from None
    finally:
        t.close()


# ---------------------------------------------------------------------------- errors
def _err(device: Device, msg: str, retryable: bool, hint: Optional[str] = None) -> TransportError:
    e = TransportError(device.name, msg, hint=hint)
    e.retryable = retryable
    return e


def _auth_error(device: Device, target: SSHTarget, detail: str = "") -> TransportError:
    if target.key_filenames and not target.allow_agent:
        key = target.key_filenames[0]
        what = f"with key {key}"
        pub = f"{key}.pub"
    elif target.key_filenames:
        what = f"with keys {', '.join(target.key_filenames)} (IdentityFile), ssh-agent and ~/.ssh/id_*"
        pub = f"{target.key_filenames[0]}.pub"
    else:
        what = "with ssh-agent keys and the default keys ~/.ssh/id_*"
        pub = "your public key"
    hint = (f"check the user name, and that {pub} is in ~{target.user}/.ssh/authorized_keys on the"
            f" device (`ssh-copy-id -i {pub} -p {target.port} {target.user}@{target.hostname}`);"
            f" test with `ssh -p {target.port}"
            f"{' -i ' + target.key_filenames[0] if target.key_filenames else ''}"
            f" {target.user}@{target.hostname} true`; or set user:/key: in devices.yaml")
    return _err(device, f"authentication failed for {target.where} {what}{': ' + detail if detail else ''}",
                retryable=False, hint=hint)


def _map_connect_error(device: Device, target: SSHTarget, e: BaseException) -> TransportError:
    hp = f"{target.hostname}:{target.port}"
    if isinstance(e, TransportError):
        return e
    if isinstance(e, BadHostKeyException):
        return _changed_key_error(device, target, e.key, e.expected_key)
    if isinstance(e, PasswordRequiredException):
        return _err(device, f"key {', '.join(target.key_filenames) or ''} is encrypted and no passphrase"
                    " is available", retryable=False,
                    hint="load it into ssh-agent (`ssh-add KEY`) and remove key: from devices.yaml,"
                         " or use a key without a passphrase")
    if isinstance(e, AuthenticationException):
        return _auth_error(device, target, str(e) if str(e) not in ("", "Authentication failed.") else "")
    if isinstance(e, NoValidConnectionsError):
        codes = {getattr(x, "errno", None) for x in e.errors.values()}
        if codes <= {errno.ECONNREFUSED}:
            return _err(device, f"connection refused by {hp}", retryable=True,
                        hint="is the device on and sshd running? check host: and port:")
        return _err(device, f"cannot reach {hp}: {e}", retryable=True,
                    hint="check the network route to the device")
    if isinstance(e, socket.gaierror):
        again = e.errno in (getattr(socket, "EAI_AGAIN", -3),)
        return _err(device, f"cannot resolve host name {target.hostname!r}: {e.strerror}",
                    retryable=again,
                    hint="check host: in devices.yaml (or HostName in ~/.ssh/config) and DNS")
    if isinstance(e, (socket.timeout, TimeoutError)):
        return _err(device, f"timed out connecting to {hp} after {device.connect_timeout_s:g} s",
                    retryable=True, hint="is the device on this network? raise connect_timeout_s if it is slow")
    if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, EOFError)):
        return _err(device, f"connection to {hp} was closed during the SSH handshake", retryable=True,
                    hint="sshd may be overloaded (MaxStartups) or a firewall drops the connection")
    if isinstance(e, SSHException):
        text = str(e)
        low = text.lower()
        if "no authentication methods" in low:
            return _auth_error(device, target, "no key to offer (no key: given, no ssh-agent, no ~/.ssh/id_*)")
        if "no existing session" in low or "negotiation failed" in low:
            # the transport thread died or start_client() timed out before the handshake finished
            return _err(device, f"SSH handshake with {hp} did not complete within"
                        f" {device.connect_timeout_s:g} s", retryable=True,
                        hint="is that port an SSH server? is the device overloaded?")
        if "banner" in low or "timeout" in low or "timed out" in low:
            return _err(device, f"no SSH greeting from {hp} within {device.connect_timeout_s:g} s ({text})",
                        retryable=True, hint="is that port an SSH server? is the device overloaded?")
        if "reset" in low or "eof" in low or "closed" in low:
            return _err(device, f"connection to {hp} was closed during the SSH handshake ({text})",
                        retryable=True)
        if "not a valid" in low or "private key" in low or "key" in low and "file" in low:
            return _err(device, f"cannot use key {', '.join(target.key_filenames)}: {text}", retryable=False,
                        hint="key: must be an OpenSSH private key file")
        return _err(device, f"SSH error with {hp}: {text}", retryable=False)
    if isinstance(e, OSError):
        if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ECONNREFUSED):
            return _err(device, f"cannot reach {hp}: {e.strerror}", retryable=True)
        return _err(device, f"cannot connect to {hp}: {e.strerror or e}", retryable=True)
    return _err(device, f"cannot connect to {hp}: {type(e).__name__}: {e}", retryable=False)


def _open_socket(device: Device, target: SSHTarget, timeout: float) -> Any:
    if target.proxy_command:
        return paramiko.ProxyCommand(target.proxy_command)
    try:
        infos = socket.getaddrinfo(target.hostname, target.port, 0, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise _map_connect_error(device, target, e) from None
    last: Optional[BaseException] = None
    for af, st, proto, _cn, addr in infos:
        s = socket.socket(af, st, proto)
        s.settimeout(timeout)
        try:
            s.connect(addr)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            return s
        except OSError as e:
            s.close()
            last = e
    if isinstance(last, ConnectionRefusedError):
        raise _err(device, f"connection refused by {target.hostname}:{target.port}", retryable=True,
                   hint="is the device on and sshd running? check host: and port:")
    raise _map_connect_error(device, target, last or OSError("no address"))


# ---------------------------------------------------------------------------- exit-signal
def _install_exit_signal_handler(t: paramiko.Transport) -> None:
    """paramiko ignores the `exit-signal` channel request OpenSSH sends when a command dies of a
    signal; record it so wait() can return -SIGNUM (e.g. -11 for a segfaulting benchmark_model)."""
    try:
        from paramiko.common import MSG_CHANNEL_REQUEST
        table = dict(t._channel_handler_table)
        orig = table[MSG_CHANNEL_REQUEST]
    except Exception:  # noqa: BLE001 - private API changed: keep paramiko's behaviour
        return

    def handle(chan: paramiko.Channel, m: paramiko.Message) -> None:
        start = m.packet.tell()
        try:
            if m.get_text() == "exit-signal":
                m.get_boolean()                 # want_reply (always false)
                name = m.get_text()             # "SEGV", "KILL", ...
                num = getattr(signal, "SIG" + name, None)
                chan._eb_exit_signal = (name, int(num) if num is not None else None)  # type: ignore[attr-defined]
                chan.status_event.set()
                return
        except Exception:  # noqa: BLE001 - malformed: let paramiko deal with it
            pass
        m.packet.seek(start)
        orig(chan, m)

    table[MSG_CHANNEL_REQUEST] = handle
    t._channel_handler_table = table


# ---------------------------------------------------------------------------- process
class SSHProcess(RemoteProcess):
    """One command on the device, on its own SSH channel."""

    def __init__(self, owner: "SSHTransport", chan: paramiko.Channel, argv: Sequence[str],
                 token: str, stdin: Optional[bytes]) -> None:
        self.owner = owner
        self.device = owner.device.name
        self.chan = chan
        self.argv = list(argv)
        self._token = token
        self._stderr = TailBuffer()
        self._lines = LineQueue()
        self._pid: Optional[int] = None
        self._pid_event = threading.Event()
        self._cancel_lock = threading.Lock()
        self._cancelled = False
        self._killed = False
        self._out = threading.Thread(target=self._lines.feed_bytes_stream, args=(chan.recv,),
                                     daemon=True, name=f"ssh-out-{self.device}")
        self._err = threading.Thread(target=self._pump_stderr, daemon=True, name=f"ssh-err-{self.device}")
        self._in = threading.Thread(target=self._write_stdin, args=(stdin,), daemon=True,
                                    name=f"ssh-in-{self.device}")
        self._out.start()
        self._err.start()
        self._in.start()

    # -- pumps
    def _write_stdin(self, data: Optional[bytes]) -> None:
        try:
            if data:
                self.chan.sendall(data)
            self.chan.shutdown_write()
        except (OSError, EOFError, SSHException):
            pass

    def _pump_stderr(self) -> None:
        mark = f"{_PID_MARK}{self._token}=".encode()
        pending = b""
        try:
            while True:
                chunk = self.chan.recv_stderr(65536)
                if not chunk:
                    break
                if self._pid_event.is_set():
                    self._stderr.write(chunk.decode("utf-8", "replace"))
                    continue
                pending += chunk
                i = pending.find(mark)
                if i >= 0:
                    j = pending.find(b"\n", i)
                    if j < 0:
                        continue
                    try:
                        self._pid = int(pending[i + len(mark):j])
                    except ValueError:
                        pass
                    self._pid_event.set()
                    rest = pending[:i] + pending[j + 1:]
                    pending = b""
                    if rest:
                        self._stderr.write(rest.decode("utf-8", "replace"))
                elif len(pending) > 65536:  # noise before the mark (shell rc files): keep a tail
                    self._stderr.write(pending[:-256].decode("utf-8", "replace"))
                    pending = pending[-256:]
        except (OSError, EOFError, SSHException):
            pass
        finally:
            if pending:
                self._stderr.write(pending.decode("utf-8", "replace"))
            self._pid_event.set()  # no pid will come any more

    # -- state
    @property
    def pid(self) -> Optional[int]:
        """The remote pid (= process group id) once the device reported it."""
        return self._pid

    def _exit_signal(self) -> Optional[Tuple[str, Optional[int]]]:
        return getattr(self.chan, "_eb_exit_signal", None)

    def _has_status(self) -> bool:
        return self.chan.exit_status != -1 or self._exit_signal() is not None

    def finished(self) -> bool:
        return self.chan.status_event.is_set()

    def _link_alive(self) -> bool:
        t = self.chan.get_transport()
        return bool(t is not None and t.is_active())

    def _lost(self, what: str) -> TransportError:
        return _err(self.owner.device, f"connection to {self.owner.where} lost {what}", retryable=True,
                    hint="the device may have rebooted or the network dropped")

    # -- RemoteProcess
    def lines(self, idle_timeout: Optional[float] = None) -> Iterator[str]:
        def idle(seconds: float) -> None:
            self.cancel()
            raise TransportError(self.device, f"stalled: no output for {seconds:.0f} s from"
                                 f" `{self.argv[0]}` on {self.owner.where}; remote process killed",
                                 hint="the device may be overloaded or the link dead; raise"
                                      " idle_timeout_s if the job is legitimately quiet that long")
        yield from self._lines.iter(idle_timeout, idle)
        if self._cancelled:
            return
        if self._lines.error is not None:
            raise self._lost(f"while reading output ({self._lines.error})")
        if not self._has_status():
            # stdout ended; give the exit status a moment, then decide whether the link died
            self.chan.status_event.wait(1.0)
            if not self._has_status() and not self._link_alive():
                raise self._lost(f"while `{self.argv[0]}` was running")

    def wait(self, timeout: Optional[float] = None) -> int:
        if not self.chan.status_event.wait(timeout):
            self.cancel()
            raise TransportError(self.device, f"`{self.argv[0]}` did not exit within {timeout} s;"
                                 " remote process killed")
        for th in (self._out, self._err):
            th.join(5)
        sig = self._exit_signal()
        if sig is not None:
            return -(sig[1] or 255)
        if self.chan.exit_status != -1:
            return self.chan.exit_status
        if self._cancelled:
            return -signal.SIGKILL if self._killed else -1
        if not self._link_alive():
            raise self._lost(f"before `{self.argv[0]}` exited")
        return -1

    def cancel(self) -> None:
        with self._cancel_lock:
            if self._cancelled:
                return
            self._cancelled = True
            try:
                if not self._pid_event.is_set() and not self.finished():
                    self._pid_event.wait(min(10.0, self.owner.device.connect_timeout_s))
                if self._pid is not None and self._link_alive():
                    self._killed = self.owner._kill_group(self._pid)
            finally:
                try:
                    self.chan.close()
                except Exception:  # noqa: BLE001
                    pass

    def stderr_tail(self, max_chars: int = 2000) -> str:
        return self._stderr.tail(max_chars)


# ---------------------------------------------------------------------------- transport
class SSHTransport(Transport):
    def __init__(self, device: Device) -> None:
        super().__init__(device)
        self.client: Optional[paramiko.SSHClient] = None
        self.target: Optional[SSHTarget] = None
        self._sftp: Optional[paramiko.SFTPClient] = None
        self._procs: List[SSHProcess] = []
        #: connection attempts made by connect() (tests and diagnostics)
        self.attempts = 0
        #: SHA256 fingerprint of the host key of the open connection
        self.host_key_fingerprint: Optional[str] = None

    @property
    def where(self) -> str:
        t = self.target
        return t.where if t else f"{self.device.host}"

    # -- connection
    def connect(self) -> None:
        if self.client is not None:
            return
        self.target = target = resolve_target(self.device)
        for k in target.key_filenames if not target.allow_agent else ():
            if not os.path.isfile(k):
                raise _err(self.device, f"key file {k} does not exist", retryable=False,
                           hint=f"fix devices.{self.device.name}.key, or remove it to use ssh-agent")
        tries = 1 + max(0, int(self.device.retries))
        delay = max(0.0, float(self.device.retry_backoff_s))
        for i in range(tries):
            self.attempts += 1
            try:
                self._connect_once(target)
                return
            except TransportError as e:
                if not e.retryable:
                    raise
                if i == tries - 1:
                    if tries > 1:
                        final = _err(self.device, f"{e.args[0].split(': ', 1)[-1]} (gave up after"
                                     f" {tries} attempts)", retryable=True, hint=e.hint)
                        raise final from e
                    raise
                time.sleep(delay)
                delay *= 2

    def _connect_once(self, target: SSHTarget) -> None:
        dev = self.device
        timeout = float(dev.connect_timeout_s)
        client = paramiko.SSHClient()
        if target.pinned_keys:
            for k in target.pinned_keys:
                client.get_host_keys().add(target.host_key_name, k.get_name(), k)
        elif not target.pinned_fingerprint:
            for f in target.known_hosts:
                if os.path.isfile(f):
                    try:
                        client.load_system_host_keys(f)
                    except OSError as e:
                        raise _err(dev, f"cannot read known_hosts {f}: {e.strerror}", retryable=False)
        client.set_missing_host_key_policy(_RejectUnknownHostKey(dev, target))
        try:
            sock = _open_socket(dev, target, timeout)
            client.connect(target.hostname, port=target.port, username=target.user,
                           key_filename=target.key_filenames or None,
                           allow_agent=target.allow_agent, look_for_keys=target.look_for_keys,
                           timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                           channel_timeout=timeout, sock=sock)
        except Exception as e:  # noqa: BLE001 - mapped to TransportError / HostKeyError
            client.close()
            raise _map_connect_error(dev, target, e) from None
        t = client.get_transport()
        assert t is not None
        t.set_keepalive(KEEPALIVE_S)
        _install_exit_signal_handler(t)
        key = t.get_remote_server_key()
        self.host_key_fingerprint = key.fingerprint if key is not None else None
        self.client = client

    def close(self) -> None:
        for p in self._procs:
            if not p.finished():
                try:
                    p.cancel()
                except Exception:  # noqa: BLE001
                    pass
        self._procs.clear()
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # noqa: BLE001
                pass
            self._sftp = None
        if self.client is not None:
            self.client.close()
            self.client = None

    def _transport(self) -> paramiko.Transport:
        t = self.client.get_transport() if self.client is not None else None
        if t is None or not t.is_active():
            if self.client is None:
                raise _err(self.device, "not connected (call connect() first)", retryable=False)
            raise _err(self.device, f"connection to {self.where} lost", retryable=True,
                       hint="the device may have rebooted or the network dropped")
        return t

    def _open_channel(self) -> paramiko.Channel:
        t = self._transport()
        try:
            return t.open_session(timeout=self.device.connect_timeout_s)
        except paramiko.ChannelException as e:
            raise _err(self.device, f"{self.where} refused a new session: {e.text}", retryable=True,
                       hint="sshd MaxSessions may be too low")
        except (SSHException, EOFError, OSError) as e:
            raise _err(self.device, f"connection to {self.where} lost: {e}", retryable=True)

    # -- commands
    @staticmethod
    def command_line(argv: Sequence[str], env: Optional[Dict[str, str]] = None, token: str = "") -> str:
        """The exact string sent to the remote login shell: every word shell-quoted; the shell
        reports its pid on stderr (when `token` is given) and execs the command."""
        if not argv:
            raise ValueError("empty argv")
        words: List[str] = []
        if env:
            words.append("env")
            for k, v in env.items():
                if not _ENV_NAME.match(str(k)):
                    raise ValueError(f"invalid environment variable name {k!r}")
                words.append(f"{k}={v}")
        words.extend(str(a) for a in argv)
        quoted = " ".join(shlex.quote(w) for w in words)
        if not token:
            return quoted
        script = f'echo "{_PID_MARK}{token}=$$" >&2 && exec "$@"'
        return f"exec sh -c {shlex.quote(script)} edge-bench {quoted}"

    def start(self, argv: Sequence[str], stdin: Optional[bytes] = None,
              env: Optional[dict] = None) -> SSHProcess:
        token = secrets.token_hex(8)
        command = self.command_line(argv, env, token)
        chan = self._open_channel()
        try:
            chan.exec_command(command)
        except (SSHException, EOFError, OSError) as e:
            chan.close()
            raise _err(self.device, f"cannot start `{argv[0]}` on {self.where}: {e}", retryable=True)
        proc = SSHProcess(self, chan, argv, token, stdin)
        self._procs = [p for p in self._procs if not p.finished()]
        self._procs.append(proc)
        return proc

    def _exec_simple(self, command: str, timeout: float) -> Tuple[int, bytes]:
        """Run a raw command line on a new channel; (exit status, output). For internal use."""
        chan = self._open_channel()
        try:
            chan.settimeout(timeout)
            chan.set_combine_stderr(True)
            chan.exec_command(command)
            chan.shutdown_write()
            out = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = chan.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                out += chunk
            if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                return -1, out
            return chan.exit_status, out
        finally:
            chan.close()

    def _kill_group(self, pid: int) -> bool:
        """TERM the remote process group `pid` (and the pid itself), KILL what is left after
        KILL_GRACE_S. Returns True if the kill command ran."""
        steps = int(KILL_GRACE_S / 0.1)
        # `kill -SIG -PGID` (dash rejects `--`), then `kill -SIG -- -PGID` (shells that need it)
        script = (f"p={int(pid)};"
                  " g() { kill -$1 -$p 2>/dev/null || kill -$1 -- -$p 2>/dev/null; };"
                  " g TERM || kill -TERM $p 2>/dev/null; i=0;"
                  f" while [ $i -lt {steps} ] && g 0; do sleep 0.1; i=$((i+1)); done;"
                  " g KILL; kill -KILL $p 2>/dev/null; exit 0")
        try:
            code, _ = self._exec_simple("exec sh -c " + shlex.quote(script), timeout=KILL_GRACE_S + 15)
            return code == 0
        except TransportError:
            return False

    # -- files
    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            t = self._transport()
            try:
                self._sftp = paramiko.SFTPClient.from_transport(t)
            except (SSHException, EOFError, OSError) as e:
                raise _err(self.device, f"cannot open SFTP on {self.where}: {e}", retryable=True,
                           hint="the device's sshd needs the sftp subsystem (Subsystem sftp ...)")
            if self._sftp is None:
                raise _err(self.device, f"cannot open SFTP on {self.where}", retryable=False)
        return self._sftp

    def _sftp_makedirs(self, sftp: paramiko.SFTPClient, path: str) -> None:
        import stat as _stat
        parts = [p for p in path.split("/") if p and p != "."]
        cur = "/" if path.startswith("/") else ""
        for p in parts:
            cur = posixpath.join(cur, p) if cur else p
            try:
                st = sftp.stat(cur)
                if st.st_mode is not None and not _stat.S_ISDIR(st.st_mode):
                    raise DeviceError(self.device.name, f"cannot create directory {path}: {cur} is a file")
                continue
            except FileNotFoundError:
                pass
            try:
                sftp.mkdir(cur)
            except OSError as e:
                try:  # made concurrently by someone else?
                    if _stat.S_ISDIR(sftp.stat(cur).st_mode or 0):
                        continue
                except OSError:
                    pass
                raise DeviceError(self.device.name, f"cannot create directory {cur}:"
                                  f" {e.strerror or e}", hint="check the device's workdir setting,"
                                  " permissions and free disk")

    def put(self, local: Path, remote: str) -> None:
        local = Path(local)
        size = local.stat().st_size
        sftp = self._sftp_client()
        parent = posixpath.dirname(remote)
        tmp = f"{remote}.part-{secrets.token_hex(6)}"
        try:
            if parent:
                self._sftp_makedirs(sftp, parent)
            sftp.put(str(local), tmp, confirm=True)
            try:
                sftp.posix_rename(tmp, remote)
            except OSError as e:
                if "unsupported" not in str(e).lower():
                    raise
                try:  # server without posix-rename@openssh.com: not atomic, but works
                    sftp.remove(remote)
                except OSError:
                    pass
                sftp.rename(tmp, remote)
        except (DeviceError, OSError, EOFError, SSHException) as e:
            t = self.client.get_transport() if self.client is not None else None
            alive = t is not None and t.is_active()
            if alive:
                try:
                    sftp.remove(tmp)
                except Exception:  # noqa: BLE001
                    pass
            if isinstance(e, DeviceError):
                raise
            if not alive or not isinstance(e, OSError):
                self._sftp = None
                raise _err(self.device, f"connection to {self.where} lost while uploading"
                           f" {local.name}: {e}", retryable=True) from None
            # SFTP reports a full disk as a generic "Failure" (or, with pipelined writes, as a
            # short file): ask the device how much room there is to say what really happened
            free = self._free_kb(parent or ".")
            if free is not None and (free[0] * 1024 < size or e.errno == errno.ENOSPC
                                     or "no space" in str(e).lower()):
                raise DeviceError(self.device.name, f"no space left on the device: {free[0]} KB free"
                                  f" on {free[1]} (workdir {parent or '.'}), {local.name} needs"
                                  f" {(size + 1023) // 1024} KB",
                                  hint="free some space there or point workdir: at a bigger"
                                       " filesystem") from None
            raise DeviceError(self.device.name, f"cannot upload {local} to {remote}:"
                              f" {e.strerror or e}",
                              hint="check the device's workdir setting, permissions and free disk") from None
        self.bytes_pushed += size

    def _free_kb(self, path: str) -> Optional[Tuple[int, str]]:
        """(KB available, mount point) of the filesystem holding `path` on the device (POSIX
        `df -Pk`), or None when that cannot be found out."""
        try:
            code, out = self._exec_simple(self.command_line(["df", "-Pk", "--", path]),
                                          timeout=self.device.connect_timeout_s + 10)
        except TransportError:
            return None
        lines = out.decode("utf-8", "replace").strip().splitlines()
        if code != 0 or len(lines) < 2:
            return None
        parts = lines[-1].split()
        try:
            return int(parts[3]), parts[5] if len(parts) > 5 else path
        except (IndexError, ValueError):
            return None

    # -- paths
    def resolve_workdir(self, workdir: str) -> str:
        """`~/x` -> `x` (relative paths resolve against the login directory for both commands
        and SFTP), `~` -> `.`, `~user/x` -> that user's home + /x, anything else unchanged."""
        w = workdir.strip()
        if w == "~":
            return "."
        if w.startswith("~/"):
            rest = w[2:].lstrip("/")
            return rest.rstrip("/") or "."
        if w.startswith("~"):
            user, _, rest = w[1:].partition("/")
            if not _USER_NAME.match(user):
                raise ConfigError(f"{self.device.source}: workdir {workdir!r}: bad user name after ~")
            res = self.run(["sh", "-c", f"cd ~{user} && pwd"], timeout=self.device.connect_timeout_s + 10)
            home = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
            if res.exit_code != 0 or not home.startswith("/"):
                raise DeviceError(self.device.name, f"cannot resolve workdir {workdir!r}: no home"
                                  f" directory for user {user!r}")
            return posixpath.join(home, rest) if rest else home
        return w
