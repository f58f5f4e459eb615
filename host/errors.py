"""The exception tree. The CLI turns any EdgeBenchError into one line and an exit code.

Every error takes its facts as constructor fields and builds its text only when printed
(`str(e)`), the way invoke's and fabric's errors do: code that handles an error reads the
fields (`e.device`, `e.retryable`, `e.exit_code_remote` ...), never parses the message.
`describe()` is the text without the device name and hint; `str()` adds both.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from edge_bench_agent.protocol import DEVICE_BUSY


class EdgeBenchError(Exception):
    """Root of every error edge-bench raises on purpose. `exit_code` is what the CLI returns."""

    exit_code = 2

    def __init__(self, message: str = "", *, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def describe(self) -> str:
        """What went wrong, without context (device name) and hint."""
        return self.message

    def detail(self) -> str:
        """describe() plus the hint: the text for a place that already names the device."""
        base = self.describe()
        return f"{base} ({self.hint})" if self.hint else base

    def __str__(self) -> str:
        return self.detail()


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
        super().__init__(reason, hint=hint)
        self.variant = variant
        self.reason = reason

    def __str__(self) -> str:
        """`variant int8 skipped: REASON (HINT)`; detail() (a result's error, whose row already
        says the variant and `skipped`) is the reason and hint alone."""
        return f"variant {self.variant} skipped: {self.detail()}"


class DeviceError(EdgeBenchError):
    """A device failed: unreachable, refused the key, dropped, timed out, lacks python/runtime.
    `device` is a field; str() prefixes it, describe()/detail() leave it out."""

    exit_code = 3

    def __init__(self, device: str, message: str = "", *, hint: Optional[str] = None) -> None:
        super().__init__(message, hint=hint)
        self.device = device

    def __str__(self) -> str:
        return f"{self.device}: {self.detail()}"


class TransportError(DeviceError):
    """The connection itself failed (connect, auth, host key, stream dropped, stalled).
    `retryable`: a connection-level error that may go away when tried again with backoff."""

    def __init__(self, device: str, message: str = "", *, retryable: bool = False,
                 attempts: Optional[int] = None, hint: Optional[str] = None) -> None:
        super().__init__(device, message, hint=hint)
        self.retryable = retryable
        #: how many connection attempts were made when connect-with-retries gave up
        self.attempts = attempts

    def describe(self) -> str:
        if self.attempts and self.attempts > 1:
            return f"{self.message} (gave up after {self.attempts} attempts)"
        return self.message


class DeviceTimeout(TransportError):
    """The device's job went past its timeout_s (and the agent did not report a Timeout itself)."""

    error_type = "Timeout"


class HostKeyError(TransportError):
    """Unknown or changed SSH host key. Never auto-accepted (and never retried)."""

    def __init__(self, device: str, message: str, *, changed: bool, fingerprint: str,
                 key: Any = None, known_hosts_name: Optional[str] = None,
                 known_hosts: Optional[str] = None, hint: Optional[str] = None) -> None:
        super().__init__(device, message, retryable=False, hint=hint)
        self.changed = changed
        self.fingerprint = fingerprint
        self.key = key
        self.known_hosts_name = known_hosts_name
        self.known_hosts = known_hosts


class RemoteCommandError(DeviceError):
    """A command on the device exited non-zero. Shows the command, exit code and last output."""

    def __init__(self, device: str, command: str, exit_code: int, output_tail: str,
                 *, hint: Optional[str] = None) -> None:
        super().__init__(device, "", hint=hint)
        self.command = command
        self.remote_exit_code = exit_code
        self.output_tail = output_tail

    def describe(self) -> str:
        msg = f"command `{self.command}` exited {self.remote_exit_code}"
        tail = self.output_tail.strip()
        if tail:
            msg += ": " + " | ".join(tail.splitlines()[-5:])
        return msg


class AgentError(DeviceError):
    """The agent (or the process running it) failed: an `error` event of the protocol, or the
    agent exiting before it finished. The protocol's details are fields, see `fields()`."""

    def __init__(self, device: str, error_type: str, message: str, traceback: str = "",
                 *, exit_code: Optional[int] = None, signal: Optional[int] = None,
                 signal_name: Optional[str] = None, stderr_tail: Optional[str] = None,
                 process: Optional[int] = None, hint: Optional[str] = None) -> None:
        super().__init__(device, message, hint=hint)
        self.error_type = error_type
        self.remote_traceback = traceback
        self.remote_exit_code = exit_code
        self.signal = signal
        self.signal_name = signal_name
        self.stderr_tail = stderr_tail
        self.process = process

    def describe(self) -> str:
        return f"{self.error_type}: {self.message}"

    def fields(self) -> Dict[str, Any]:
        """The structured part, as a failed result's `error_detail` carries it."""
        return error_detail(self.error_type, self.message, exit_code=self.remote_exit_code,
                            signal=self.signal, signal_name=self.signal_name,
                            stderr_tail=self.stderr_tail, process=self.process)


class DeviceBusy(DeviceError):
    """Another benchmark holds the device lock (the agent's `DeviceBusy`, or benchmark_model's)."""

    error_type = DEVICE_BUSY


#: error_detail type of a task that the run's interruption stopped before it finished
CANCELLED = "Cancelled"

#: error_detail type of a `partial` result: the run was interrupted after some of the task's
#: worker processes (their samples are kept, the others never ran)
PARTIAL = "Partial"

#: error_detail type of a task whose eval outputs cannot be compared with the fp32 reference
BAD_EVAL = "BadEval"

#: error_detail type of a result whose latency samples are missing or impossible (<= 0, NaN)
BAD_SAMPLES = "BadSamples"


class PushCancelled(DeviceError):
    """A push stopped half-way because the run was interrupted (Ctrl-C, SIGTERM); the partial
    file was removed from the device."""

    error_type = CANCELLED

    def __init__(self, device: str, file: str) -> None:
        super().__init__(device, f"push of {file} cancelled: the run was interrupted")
        self.file = file


class ProtocolError(DeviceError):
    """The agent printed something that is not protocol (garbage, wrong proto version)."""


class StoreError(EdgeBenchError):
    """The results store or a results file cannot be read or written."""


def error_detail(error_type: str, message: str, *, exit_code: Optional[int] = None,
                 signal: Optional[int] = None, signal_name: Optional[str] = None,
                 stderr_tail: Optional[str] = None, process: Optional[int] = None
                 ) -> Dict[str, Any]:
    """A failed result's `error_detail` object (schema edge-bench/run/1, docs/results.md)."""
    return {"type": error_type, "message": message, "exit_code": exit_code, "signal": signal,
            "signal_name": signal_name, "stderr_tail": stderr_tail or None, "process": process}


def detail_of(err: BaseException) -> Dict[str, Any]:
    """`error_detail` for any exception that failed a device's tasks."""
    if isinstance(err, AgentError):
        return err.fields()
    if isinstance(err, RemoteCommandError):
        code = err.remote_exit_code
        sig = -code if code < 0 else None
        return error_detail(type(err).__name__, err.describe(), exit_code=None if sig else code,
                            signal=sig, stderr_tail=err.output_tail)
    if isinstance(err, EdgeBenchError):
        return error_detail(getattr(err, "error_type", type(err).__name__), err.describe())
    return error_detail("InternalError", f"{type(err).__name__}: {err}")
