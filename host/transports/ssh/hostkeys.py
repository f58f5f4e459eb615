"""The host-key policy: every SSH host key is verified, never auto-accepted.

A device's key must match its pinned `host_key:` (a public key line or a `SHA256:`
fingerprint) or an entry of its known_hosts files (`[host]:port` for ports other than 22,
hashed entries too). An unknown or changed key is a HostKeyError carrying the presented key's
SHA256 fingerprint as a field, with what to do in its hint; it is never retried.
"""
from __future__ import annotations

import os

import paramiko

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


class RejectUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Never accept a key that is not known, except one matching a pinned SHA256 fingerprint."""

    def __init__(self, device: Device, target: SSHTarget) -> None:
        self.device = device
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.target.pinned_fingerprint and key.fingerprint == self.target.pinned_fingerprint:
            return
        raise unknown_key_error(self.device, self.target, key)


def apply_policy(client: paramiko.SSHClient, device: Device, target: SSHTarget) -> None:
    """Load the keys `client` may accept (the pin, else the known_hosts files) and install the
    policy that rejects every other key."""
    if target.pinned_keys:
        for k in target.pinned_keys:
            client.get_host_keys().add(target.host_key_name, k.get_name(), k)
    elif not target.pinned_fingerprint:
        for f in target.known_hosts:
            if os.path.isfile(f):
                try:
                    client.load_system_host_keys(f)
                except OSError as e:
                    raise TransportError(device.name, f"cannot read known_hosts {f}: {e.strerror}",
                                         retryable=False)
    client.set_missing_host_key_policy(RejectUnknownHostKey(device, target))
