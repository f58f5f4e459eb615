"""SSHTransport: one paramiko connection per device; commands on channels, files over SFTP."""
from __future__ import annotations

import os
import secrets
import socket
import time
from typing import List, Optional, Sequence, Tuple

import paramiko
from paramiko.ssh_exception import SSHException

from ...config import Device
from ...errors import TransportError
from ..base import Transport
from .connect import connect_client
from .process import KILL_GRACE_S, SSHProcess, command_line, kill_group_command
from .target import SSHTarget, resolve_target
from .transfer import SSHFiles


class SSHTransport(SSHFiles, Transport):
    """See the package docstring."""

    def __init__(self, device: Device) -> None:
        super().__init__(device)
        self.client: Optional[paramiko.SSHClient] = None
        self.target: Optional[SSHTarget] = None
        self._sftp: Optional[paramiko.SFTPClient] = None
        self._procs: List[SSHProcess] = []
        self._jump: Optional[paramiko.SSHClient] = None   # the ProxyJump host's connection
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
                raise TransportError(self.device.name, f"key file {k} does not exist", retryable=False,
                                     hint=f"fix devices.{self.device.name}.key, or remove it to use ssh-agent")
        self.connect_with_retries(lambda: self._connect_once(target))

    def _connect_once(self, target: SSHTarget) -> None:
        client, self._jump = connect_client(self.device, target)
        t = client.get_transport()
        key = t.get_remote_server_key() if t is not None else None
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
        if self._jump is not None:
            self._jump.close()
            self._jump = None

    def _transport(self) -> paramiko.Transport:
        t = self.client.get_transport() if self.client is not None else None
        if t is None or not t.is_active():
            if self.client is None:
                raise TransportError(self.device.name, "not connected (call connect() first)", retryable=False)
            raise TransportError(self.device.name, f"connection to {self.where} lost", retryable=True,
                       hint="the device may have rebooted or the network dropped")
        return t

    def _open_channel(self) -> paramiko.Channel:
        t = self._transport()
        try:
            return t.open_session(timeout=self.device.connect_timeout_s)
        except paramiko.ChannelException as e:
            raise TransportError(self.device.name, f"{self.where} refused a new session: {e.text}", retryable=True,
                       hint="sshd MaxSessions may be too low")
        except (SSHException, EOFError, OSError) as e:
            raise TransportError(self.device.name, f"connection to {self.where} lost: {e}", retryable=True)

    # -- commands
    command_line = staticmethod(command_line)

    def start(self, argv: Sequence[str], stdin: Optional[bytes] = None,
              env: Optional[dict] = None, keep_stdin_open: bool = False) -> SSHProcess:
        token = secrets.token_hex(8)
        command = self.command_line(argv, env, token)
        chan = self._open_channel()
        try:
            chan.exec_command(command)
        except (SSHException, EOFError, OSError) as e:
            chan.close()
            raise TransportError(self.device.name, f"cannot start `{argv[0]}` on {self.where}: {e}", retryable=True)
        proc = SSHProcess(self, chan, argv, token, stdin, keep_stdin_open)
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
        try:
            code, _ = self._exec_simple(kill_group_command(pid), timeout=KILL_GRACE_S + 15)
            return code == 0
        except TransportError:
            return False
