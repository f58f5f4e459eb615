"""Helpers shared by transports: a line reader with an idle timeout, a bounded stderr tail."""
from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import threading
import time
from typing import IO, Callable, Deque, Iterator, Optional

_EOF = object()
_TOO_LONG = object()

#: the longest stdout line a device may send (a result with eval outputs of thousands of samples
#: is tens of MB); a longer one is not the agent's protocol, and is not buffered further
MAX_LINE_BYTES = 256 << 20


def kill_local_group(proc: "subprocess.Popen[bytes]", wait_s: float = 5.0) -> None:
    """SIGKILL a local child started with start_new_session=True, and its whole group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            pass


class TailBuffer:
    """Keeps the last `limit` characters written to it (thread-safe)."""

    def __init__(self, limit: int = 64_000) -> None:
        self._chunks: Deque[str] = collections.deque()
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self._chunks.append(text)
            self._size += len(text)
            while self._size > self._limit and len(self._chunks) > 1:
                self._size -= len(self._chunks.popleft())

    def tail(self, max_chars: int) -> str:
        with self._lock:
            return "".join(self._chunks)[-max_chars:]


class LineQueue:
    """Lines pushed by a reader thread, popped with an idle timeout by the consumer."""

    def __init__(self, device: str = "") -> None:
        self._q: "queue.Queue[object]" = queue.Queue()
        self.error: Optional[BaseException] = None
        self.device = device

    def feed_bytes_stream(self, read: Callable[[int], bytes]) -> None:
        """Run in a thread: split a byte stream into lines and queue them. Linear in the bytes
        read (only new data is searched for a newline); a line past MAX_LINE_BYTES is reported
        once and the rest of it dropped, not buffered."""
        buf = bytearray()
        skipping = False
        try:
            while True:
                chunk = read(65536)
                if not chunk:
                    break
                start = 0
                while True:
                    nl = chunk.find(b"\n", start)
                    if nl < 0:
                        if not skipping:
                            buf += chunk[start:]
                            if len(buf) > MAX_LINE_BYTES:
                                self._q.put(_TOO_LONG)
                                buf, skipping = bytearray(), True
                        break
                    if not skipping:
                        buf += chunk[start:nl]
                        self._q.put(buf.decode("utf-8", "replace").rstrip("\r"))
                    buf, skipping, start = bytearray(), False, nl + 1
            if buf:
                self._q.put(buf.decode("utf-8", "replace"))
        except BaseException as e:  # noqa: BLE001 - reported to the consumer
            self.error = e
        finally:
            self._q.put(_EOF)

    def iter(self, idle_timeout: Optional[float], on_idle: Callable[[float], None],
             stop: Optional[Callable[[], None]] = None) -> Iterator[str]:
        """Yield lines; call on_idle(seconds) (which should raise) when nothing arrives in time;
        on a line past MAX_LINE_BYTES, call `stop` (kill the command) and raise TransportError."""
        while True:
            t0 = time.monotonic()
            try:
                item = self._q.get(timeout=idle_timeout)
            except queue.Empty:
                on_idle(time.monotonic() - t0)
                continue
            if item is _EOF:
                return
            if item is _TOO_LONG:
                from ..errors import TransportError
                if stop is not None:
                    stop()
                raise TransportError(self.device, f"the device sent a line of more than"
                                     f" {MAX_LINE_BYTES >> 20} MB without a newline: not the"
                                     " agent's protocol; stopped reading it", retryable=False)
            yield item  # type: ignore[misc]


def write_and_close(stream: Optional[IO[bytes]], data: Optional[bytes]) -> None:
    """Write a child's stdin then close it (the command sees EOF); a child that exited early
    (broken pipe) is not an error here: its exit status says what happened."""
    assert stream is not None
    try:
        if data:
            stream.write(data)
            stream.flush()
    except OSError:
        pass
    close_quietly(stream)


def close_quietly(stream: Optional[IO[bytes]]) -> None:
    try:
        if stream is not None:
            stream.close()
    except (OSError, ValueError):
        pass


class StdinPipe:
    """A local child's stdin, written from a thread (a child that does not read yet must not
    block the caller). Closed after the write, or with `keep_open` held open until close():
    the agent's job reads EOF on its stdin as "the controller is gone" (docs/protocol.md)."""

    def __init__(self, stream: Optional[IO[bytes]], data: Optional[bytes],
                 keep_open: bool = False) -> None:
        self.stream = stream
        self.keep_open = keep_open
        self._writer = threading.Thread(target=self._write, args=(data,), daemon=True)
        self._writer.start()

    def _write(self, data: Optional[bytes]) -> None:
        if self.keep_open:
            try:
                if data and self.stream is not None:
                    self.stream.write(data)
                    self.stream.flush()
            except (OSError, ValueError):
                pass
        else:
            write_and_close(self.stream, data)

    def close(self) -> None:
        """EOF for the child (idempotent): after the write, or at once if it is still stuck."""
        self._writer.join(1.0)
        close_quietly(self.stream)
