"""The one small interface every transport implements.

A transport runs a command (an argv list, never a shell string: each transport quotes
every argument itself) streaming its stdout lines, puts a file, and can cancel.
"""
from __future__ import annotations

import abc
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

from ..config import Device

#: `progress(bytes_done, total)` of a push
PutProgress = Callable[[int, int], None]
from ..errors import RemoteCommandError, TransportError


@dataclass
class Completed:
    argv: Sequence[str]
    exit_code: int
    stdout: str
    stderr: str


class RemoteProcess(abc.ABC):
    """A command running on the device."""

    @abc.abstractmethod
    def lines(self, idle_timeout: Optional[float] = None) -> Iterator[str]:
        """Yield stdout lines (without the newline) as they arrive.

        Raises TransportError if no line arrives within `idle_timeout` seconds (a stalled
        stream: keepalives do not notice a dead link) or if the connection drops."""

    @abc.abstractmethod
    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for exit; return the exit code (negative signal number where known)."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Kill the remote process (and its children). Safe to call twice or after exit."""

    @abc.abstractmethod
    def stderr_tail(self, max_chars: int = 2000) -> str:
        """The last stderr output seen (for error messages)."""

    @abc.abstractmethod
    def close_stdin(self) -> None:
        """EOF on the command's stdin (idempotent). A command started with keep_stdin_open
        sees it only now: for the agent's job that means "the controller is gone"."""


def parse_sha256sum_line(line: str) -> Optional[Tuple[str, str]]:
    """(hex digest, file name) of one `sha256sum` output line: `HASH  NAME` or `HASH *NAME`;
    GNU prefixes the line with a backslash and escapes `\\` and newlines in NAME when it holds
    either, so a path with a backslash is still recognised."""
    escaped = line.startswith("\\")
    body = line[1:] if escaped else line
    digest, rest = body[:64], body[64:]
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest) \
            or len(rest) < 2 or rest[0] != " " or rest[1] not in " *":
        return None
    name = rest[2:]
    if escaped:
        chars, i = [], 0
        while i < len(name):
            if name[i] == "\\" and i + 1 < len(name):
                chars.append({"n": "\n", "\\": "\\"}.get(name[i + 1], name[i + 1]))
                i += 2
            else:
                chars.append(name[i])
                i += 1
        name = "".join(chars)
    return digest, name


class Transport(abc.ABC):
    """Connection to one device. Use as a context manager."""

    def __init__(self, device: Device) -> None:
        self.device = device
        #: bytes sent by put() since connect, for tests and benchmarks
        self.bytes_pushed = 0
        #: connection attempts made by connect_with_retries() (results' `connect_attempts`)
        self.attempts = 0
        #: set by interrupt(): a put() in progress stops at its next chunk
        self.stop = threading.Event()
        #: told each retry ("connection refused; retrying in 0.5 s (attempt 2 of 6)"), for the
        #: run's progress display; the fleet runner sets it
        self.on_retry: Optional[Callable[[str], None]] = None

    def __enter__(self) -> "Transport":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection. Raises TransportError (or HostKeyError)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def connect_with_retries(self, once: Callable[[], None]) -> None:
        """The one retry policy of every transport: call `once` up to 1 + device.retries times;
        only a TransportError with `retryable` set (refused, timed out, reset, phone offline) is
        tried again, after device.retry_backoff_s seconds, doubled each time. Auth, host key and
        configuration errors are raised at once: retrying cannot fix them. Counts `attempts`;
        the last error after more than one attempt says how many were made. interrupt() ends
        a wait between attempts at once (the last error is raised, saying so)."""
        tries = 1 + max(0, int(self.device.retries))
        delay = max(0.0, float(self.device.retry_backoff_s))
        for i in range(tries):
            self.attempts += 1
            try:
                once()
                return
            except TransportError as e:
                if not e.retryable:
                    raise
                if i == tries - 1:
                    if tries == 1:
                        raise
                    raise TransportError(e.device, e.message, retryable=True, attempts=tries,
                                         hint=e.hint) from e
                if self.on_retry is not None:
                    self.on_retry(f"{e.message}; retrying in {delay:g} s (attempt {i + 2} of {tries})")
                if self.stop.wait(delay):   # interrupt(): no more waiting for the device
                    raise TransportError(e.device, f"{e.message}; not retried: interrupted",
                                         retryable=False, attempts=i + 1, hint=e.hint) from e
                delay *= 2

    @abc.abstractmethod
    def start(self, argv: Sequence[str], stdin: Optional[bytes] = None,
              env: Optional[dict] = None, keep_stdin_open: bool = False) -> RemoteProcess:
        """Start argv on the device; `stdin` is written then closed (the command sees EOF),
        or with keep_stdin_open left open until the process's close_stdin() or cancel()."""

    @abc.abstractmethod
    def put(self, local: Path, remote: str, progress: Optional[PutProgress] = None) -> None:
        """Copy a local file to `remote` (a path on the device). Counts bytes_pushed.
        `progress(bytes_done, total)` is called as the bytes go (at least once, at the end).
        After interrupt() it stops within a chunk, removes its partial file from the device
        and raises PushCancelled."""

    def interrupt(self) -> None:
        """Stop a put() in progress (from another thread: Ctrl-C). Transports whose put runs
        in a child process kill it too."""
        self.stop.set()

    def check_stop(self, file: str) -> None:
        """PushCancelled if interrupt() was called."""
        if self.stop.is_set():
            from ..errors import PushCancelled
            raise PushCancelled(self.device.name, file)

    def run(self, argv: Sequence[str], stdin: Optional[bytes] = None,
            timeout: Optional[float] = None) -> Completed:
        """Run to completion, collecting output."""
        proc = self.start(argv, stdin=stdin)
        out = list(proc.lines(idle_timeout=timeout))
        code = proc.wait(timeout)
        return Completed(argv=list(argv), exit_code=code, stdout="\n".join(out),
                         stderr=proc.stderr_tail(100_000))

    def resolve_workdir(self, workdir: str) -> str:
        """Turn the configured workdir into a path usable in commands on this device."""
        return workdir

    def sha256_many(self, paths: Sequence[str], timeout: Optional[float] = 300) -> Dict[str, str]:
        """sha256 of each existing file among `paths` (computed ON the device); missing ones are
        left out. Uses `sha256sum`, which coreutils (Pi, Jetson) and toybox (Android) provide."""
        if not paths:
            return {}
        res = self.run(["sha256sum", "--", *paths], timeout=timeout)
        out: Dict[str, str] = {}
        for line in res.stdout.splitlines():
            parsed = parse_sha256sum_line(line)
            if parsed is not None:
                out[parsed[1]] = parsed[0]
        if res.exit_code not in (0, 1):
            raise RemoteCommandError(self.device.name, "sha256sum", res.exit_code, res.stderr,
                                     hint="the device needs sha256sum (coreutils or toybox)")
        return out

    def makedirs(self, path: str) -> None:
        res = self.run(["mkdir", "-p", "--", path], timeout=60)
        if res.exit_code != 0:
            raise RemoteCommandError(self.device.name, f"mkdir -p {path}", res.exit_code,
                                     res.stderr, hint="check the device's workdir setting and free disk")
