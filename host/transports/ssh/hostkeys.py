"""The host-key policy: every SSH host key is verified, never auto-accepted.

A device's key must match its pinned `host_key:` (a public key line or a `SHA256:`
fingerprint) or an entry of its known_hosts files (`[host]:port` for ports other than 22,
hashed entries too). An unknown or changed key is a HostKeyError carrying the presented key's
SHA256 fingerprint as a field, with what to do in its hint; it is never retried.

known_hosts files are read here, line by line as OpenSSH does (not by paramiko's loader, which
fails on the whole file for one line it cannot parse): `@cert-authority` lines are skipped
(host certificates are not used: a device needs its own key line), a key on a `@revoked` line is
refused for every host even when another line lists it, and a malformed line is skipped.
"""
from __future__ import annotations

import base64
import binascii
import os
from typing import List, NamedTuple, Optional, Set

import paramiko
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

from ...config import Device
from ...errors import HostKeyError, TransportError
from .target import SSHTarget


def _key_error(device: Device, target: SSHTarget, key: paramiko.PKey, message: str, *,
               changed: bool, hint: str) -> HostKeyError:
    return HostKeyError(device.name, message, changed=changed, fingerprint=key.fingerprint,
                        key=key, known_hosts_name=target.host_key_name,
                        known_hosts=target.known_hosts[0] if target.known_hosts else None,
                        hint=hint)


def unknown_key_error(device: Device, target: SSHTarget, key: paramiko.PKey) -> HostKeyError:
    """The server's key is in no known_hosts file (or does not match the pinned fingerprint)."""
    fp = key.fingerprint
    if target.pinned_fingerprint:
        return _key_error(
            device, target, key,
            f"host key of {target.host_key_name} does not match the pinned host_key:"
            f" devices.yaml pins {target.pinned_fingerprint}, the server presented {key.get_name()} {fp}",
            changed=True,
            hint="this may be a man-in-the-middle attack or a reinstalled device; if the device was"
                 f" reinstalled, put the new fingerprint in devices.{device.name}.host_key")
    files = [f for f in target.known_hosts if os.path.isfile(f)]
    where = ", ".join(files) if files else f"{target.known_hosts[0]} (which does not exist)"
    return _key_error(
        device, target, key,
        f"unknown host key for {target.host_key_name}: the server presented"
        f" {key.get_name()} {fp}, which is not in {where}; refusing to connect",
        changed=False,
        hint=f"check that fingerprint on the device (`ssh-keygen -lf /etc/ssh/ssh_host_{_short(key)}_key.pub`),"
             f" then run `edge-bench devices trust {device.name}` or add it to"
             f" {target.known_hosts[0]} (`ssh-keyscan -p {target.port} {target.hostname} >> {target.known_hosts[0]}`)")


def changed_key_error(device: Device, target: SSHTarget, key: paramiko.PKey,
                      expected: paramiko.PKey) -> HostKeyError:
    """The server's key differs from the one known_hosts (or the pin) has for it."""
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
    return _key_error(
        device, target, key,
        f"HOST KEY CHANGED for {target.host_key_name}: {src} {expected.get_name()}"
        f" {expected.fingerprint}, the server presented {key.get_name()} {key.fingerprint};"
        " refusing to connect", changed=True, hint=hint)


def _short(key: paramiko.PKey) -> str:
    name = key.get_name()
    if "ed25519" in name:
        return "ed25519"
    if "ecdsa" in name:
        return "ecdsa"
    return "rsa"


class KnownHostLine(NamedTuple):
    number: int          # 1-based line number
    marker: str          # "" or "@cert-authority" / "@revoked" (any other @word: skipped)
    names: List[str]     # host patterns / [host]:port / |1| hashes
    keytype: str
    key_b64: str


def known_hosts_lines(path: str) -> List[KnownHostLine]:
    """The entry lines of a known_hosts file (comments, blank and short lines left out)."""
    out: List[KnownHostLine] = []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            marker = parts.pop(0) if parts[0].startswith("@") else ""
            if len(parts) >= 3:
                out.append(KnownHostLine(i, marker, parts[0].split(","), parts[1], parts[2]))
    return out


def _key_of(line: KnownHostLine) -> Optional[paramiko.PKey]:
    try:
        entry = HostKeyEntry.from_line(f"{','.join(line.names)} {line.keytype} {line.key_b64}")
    except (paramiko.SSHException, InvalidHostKey, binascii.Error, ValueError, TypeError,
            IndexError):
        return None  # OpenSSH skips a line it cannot parse; so does edge-bench
    return entry.key if entry is not None else None


def add_known_keys(client: paramiko.SSHClient, lines: List[KnownHostLine]) -> None:
    """Add the plain key lines to the client's accepted keys (@cert-authority lines, markers
    OpenSSH does not know either and unparsable lines are skipped)."""
    keys = client.get_host_keys()
    for line in lines:
        key = None if line.marker else _key_of(line)
        if key is not None:
            for name in line.names:
                keys.add(name, key.get_name(), key)


def revoked_keys(lines: List[KnownHostLine]) -> Set[bytes]:
    """The key blobs of the `@revoked` lines."""
    out: Set[bytes] = set()
    for line in lines:
        if line.marker == "@revoked":
            try:
                out.add(base64.b64decode(line.key_b64, validate=True))
            except (binascii.Error, ValueError):
                pass
    return out


def is_revoked(files: List[str], key: paramiko.PKey) -> bool:
    """Whether any of the known_hosts files marks `key` @revoked."""
    for f in files:
        try:
            if key.asbytes() in revoked_keys(known_hosts_lines(f)):
                return True
        except OSError:
            continue
    return False


def revoked_key_error(device: Device, target: SSHTarget, key: paramiko.PKey) -> HostKeyError:
    return _key_error(device, target, key,
                      f"the host key of {target.host_key_name} ({key.get_name()} {key.fingerprint})"
                      " is marked @revoked in known_hosts; refusing to connect", changed=True,
                      hint="the device's key was revoked: ask its owner for the new one")


class RejectUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Never accept a key that is not known, except one matching a pinned SHA256 fingerprint;
    never one that known_hosts marks @revoked."""

    def __init__(self, device: Device, target: SSHTarget) -> None:
        self.device = device
        self.target = target
        self.revoked: Set[bytes] = set()

    def check_revoked(self, key: paramiko.PKey) -> None:
        if key.asbytes() in self.revoked:
            raise revoked_key_error(self.device, self.target, key)

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.check_revoked(key)
        if self.target.pinned_fingerprint and key.fingerprint == self.target.pinned_fingerprint:
            return
        raise unknown_key_error(self.device, self.target, key)


def apply_policy(client: paramiko.SSHClient, device: Device,
                 target: SSHTarget) -> RejectUnknownHostKey:
    """Load the keys `client` may accept (the pin, else the known_hosts files) and install the
    policy that rejects every other key. After the handshake, call the returned policy's
    `check_revoked` with the server's key (a known key may also be @revoked)."""
    policy = RejectUnknownHostKey(device, target)
    for k in target.pinned_keys or []:
        client.get_host_keys().add(target.host_key_name, k.get_name(), k)
    for f in target.known_hosts:
        if not os.path.isfile(f):
            continue
        try:
            lines = known_hosts_lines(f)
        except OSError as e:
            if target.pinned_keys or target.pinned_fingerprint:
                continue
            raise TransportError(device.name, f"cannot read known_hosts {f}: {e.strerror}",
                                 retryable=False)
        policy.revoked |= revoked_keys(lines)  # @revoked holds even for a pinned key
        if not target.pinned_keys and not target.pinned_fingerprint:
            add_known_keys(client, lines)
    client.set_missing_host_key_policy(policy)
    return policy
