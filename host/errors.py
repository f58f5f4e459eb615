"""The exception tree. The CLI turns any EdgeBenchError into one line and an exit code."""
from __future__ import annotations

from typing import Optional


class EdgeBenchError(Exception):
    """Root of every error edge-bench raises on purpose. `exit_code` is what the CLI returns."""

    exit_code = 2

    def __init__(self, message: str, *, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class ConfigError(EdgeBenchError):
    """devices.yaml, flags or environment are wrong. Message names file, line and field."""


class UsageError(EdgeBenchError):
    """A command-line argument is wrong (unknown device, missing model file, bad variant...)."""


class ModelError(EdgeBenchError):
    """A model file is missing, not a TFLite flatbuffer, or cannot be quantized."""


class VariantSkipped(ModelError):
    """A variant deliberately not made (no calibration data, an already-quantized model, a custom
    op the host cannot run for calibration). Shown with its reason; not a failure (exit 0)."""

    def __init__(self, variant: str, reason: str, *, hint: Optional[str] = None) -> None:
        super().__init__(f"variant {variant} skipped: {reason}", hint=hint)
        self.variant = variant
        self.reason = reason


class DeviceError(EdgeBenchError):
    """A device failed: unreachable, refused the key, dropped, timed out, lacks python/runtime."""

    exit_code = 3

    def __init__(self, device: str, message: str, *, hint: Optional[str] = None) -> None:
        super().__init__(f"{device}: {message}", hint=hint)
        self.device = device


class TransportError(DeviceError):
    """The connection itself failed (connect, auth, host key, stream dropped, stalled)."""

    #: connection-level errors may be retried with backoff; others may not.
    retryable = False


class HostKeyError(TransportError):
    """Unknown or changed SSH host key. Never auto-accepted."""


class RemoteCommandError(DeviceError):
    """A command on the device exited non-zero. Shows the command, exit code and last output."""

    def __init__(self, device: str, command: str, exit_code: int, output_tail: str,
                 *, hint: Optional[str] = None) -> None:
        tail = output_tail.strip()
        msg = f"command `{command}` exited {exit_code}"
        if tail:
            msg += ": " + " | ".join(tail.splitlines()[-5:])
        super().__init__(device, msg, hint=hint)
        self.command = command
        self.remote_exit_code = exit_code
        self.output_tail = output_tail


class AgentError(DeviceError):
    """The agent reported an error event (re-raised on the host as a typed error)."""

    def __init__(self, device: str, error_type: str, message: str, traceback: str = "",
                 *, hint: Optional[str] = None) -> None:
        super().__init__(device, f"{error_type}: {message}", hint=hint)
        self.error_type = error_type
        self.remote_traceback = traceback


class ProtocolError(DeviceError):
    """The agent printed something that is not protocol (garbage, wrong proto version)."""


class StoreError(EdgeBenchError):
    """The results store or a results file cannot be read or written."""
