"""Transports: local (subprocess), ssh (paramiko), adb (adb client)."""
from __future__ import annotations

from ..config import Device
from .base import Completed, RemoteProcess, Transport


def open_transport(device: Device) -> Transport:
    """The transport for a device (not yet connected)."""
    if device.transport == "local":
        from .local import LocalTransport
        return LocalTransport(device)
    if device.transport == "ssh":
        from .ssh import SSHTransport
        return SSHTransport(device)
    if device.transport == "adb":
        from .adb import ADBTransport
        return ADBTransport(device)
    raise ValueError(f"unknown transport {device.transport!r}")


__all__ = ["Completed", "RemoteProcess", "Transport", "open_transport"]
