"""SSH devices (Raspberry Pi, Jetson, any Linux board) through paramiko.

Split along its seams:
- target.py    where and how to connect: devices.yaml merged with ~/.ssh/config (ProxyJump too)
- hostkeys.py  the host-key policy: verified against host_key pins / known_hosts, never auto-accepted
- connect.py   socket + handshake + auth, every failure mapped to one TransportError (retryable or not)
- process.py   the quoted command line, the streaming remote process, the remote process-group kill
- transfer.py  SFTP upload (atomic rename) and workdir resolution
- transport.py SSHTransport, tying them together; retries come from Transport.connect_with_retries
"""
from __future__ import annotations

from .connect import KEEPALIVE_S, scan_host_key
from .process import KILL_GRACE_S, SSHProcess, command_line
from .target import SSHTarget, known_hosts_line, known_hosts_name, parse_pinned_key, resolve_target
from .transport import SSHTransport

__all__ = ["KEEPALIVE_S", "KILL_GRACE_S", "SSHProcess", "SSHTarget", "SSHTransport", "command_line",
           "known_hosts_line", "known_hosts_name", "parse_pinned_key", "resolve_target",
           "scan_host_key"]
