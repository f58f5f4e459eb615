"""Where and how to connect to an SSH device: devices.yaml fields merged with ~/.ssh/config.

devices.yaml fields win, then ~/.ssh/config (or `ssh_config:`) for the Host alias (HostName,
Port, User, IdentityFile, UserKnownHostsFile, ProxyCommand, ProxyJump), then OpenSSH defaults.
ProxyJump is done in paramiko (connect.py), the jump host's key verified like the device's.
"""
from __future__ import annotations

import base64
import getpass
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import paramiko

from ...config import Device
from ...errors import ConfigError

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
    #: ProxyJump `[user@]host[:port]`: reached through a direct-tcpip channel (connect.py)
    proxy_jump: Optional[str] = None

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


_JUMP = re.compile(r"^\[([^\]]+)\](?::(\d{1,5}))?$|^([^:\[\]]+)(?::(\d{1,5}))?$")


def parse_proxy_jump(device: Device, spec: str) -> Tuple[Optional[str], str, Optional[int]]:
    """ProxyJump `[user@]host[:port]` -> (user, host, port); ConfigError for anything else
    (a chain, or a word that starts with `-` and would be read as an option)."""
    user, _, hostport = spec.strip().rpartition("@")
    m = _JUMP.match(hostport)
    if "," in spec or not m or hostport.startswith("-") or user.startswith("-"):
        raise ConfigError(f"{device.source}: device {device.name!r}: ProxyJump {spec!r} is not"
                          " one [user@]host[:port]",
                          hint="for a chain, give the first jump host its own ProxyJump entry in"
                               " the ssh config")
    port = m.group(2) or m.group(4)
    return user or None, m.group(1) or m.group(3), int(port) if port else None


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
    if proxy and proxy.strip().lower() == "none":
        proxy = None
    jump = cfg.get("proxyjump")
    if proxy or (jump and jump.strip().lower() == "none"):
        jump = None
    if jump:
        parse_proxy_jump(device, jump)
    return SSHTarget(alias=device.host, hostname=hostname, port=port, user=user,
                     key_filenames=keys, allow_agent=allow_agent, look_for_keys=look_for_keys,
                     known_hosts=known, pinned_keys=pinned, pinned_fingerprint=pinned_fp,
                     proxy_command=proxy, proxy_jump=jump.strip() if jump else None)


