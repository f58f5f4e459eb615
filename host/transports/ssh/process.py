"""A command on an SSH device: the command line, the streaming process, the remote kill.

argv is quoted word by word (shlex.quote), so nothing in an argument reaches a shell. The remote
shell first reports its pid (= its process group, since sshd starts each session with setsid)
on stderr, then execs the command; cancel() kills that whole process group over a separate
channel (TERM, then KILL), because OpenSSH ignores signals requested over the SSH protocol.
The device's login shell must be POSIX-like (sh, bash, dash, ash, zsh).
"""
from __future__ import annotations

import re
import shlex
import signal
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import paramiko
from paramiko.ssh_exception import SSHException

from ...errors import TransportError
from ..base import RemoteProcess
from ..streams import LineQueue, TailBuffer

#: seconds cancel() waits after SIGTERM before SIGKILL
KILL_GRACE_S = 2.0
_PID_MARK = "__edge_bench_pid_"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def command_line(argv: Sequence[str], env: Optional[Dict[str, str]] = None, token: str = "") -> str:
    """The exact string sent to the remote login shell: every word shell-quoted; the shell
    reports its pid on stderr (when `token` is given) and execs the command:
    `exec sh -c '<pid report; exec "$@">' edge-bench <quoted words>`."""
    if not argv:
        raise ValueError("empty argv")
    words: List[str] = []
    if env:
        words.append("env")
        for k, v in env.items():
            if not _ENV_NAME.match(str(k)):
                raise ValueError(f"invalid environment variable name {k!r}")
            words.append(f"{k}={v}")
    words.extend(str(a) for a in argv)
    quoted = " ".join(shlex.quote(w) for w in words)
    if not token:
        return quoted
    script = f'echo "{_PID_MARK}{token}=$$" >&2 && exec "$@"'
    return f"exec sh -c {shlex.quote(script)} edge-bench {quoted}"


def kill_group_command(pid: int) -> str:
    """Remote command: TERM the process group `pid` (and the pid itself), KILL what is left
    after KILL_GRACE_S."""
    steps = int(KILL_GRACE_S / 0.1)
    # `kill -SIG -PGID` (dash rejects `--`), then `kill -SIG -- -PGID` (shells that need it)
    script = (f"p={int(pid)};"
              " g() { kill -$1 -$p 2>/dev/null || kill -$1 -- -$p 2>/dev/null; };"
              " g TERM || kill -TERM $p 2>/dev/null; i=0;"
              f" while [ $i -lt {steps} ] && g 0; do sleep 0.1; i=$((i+1)); done;"
              " g KILL; kill -KILL $p 2>/dev/null; exit 0")
    return "exec sh -c " + shlex.quote(script)


class SSHProcess(RemoteProcess):
    """One command on the device, on its own SSH channel."""

    def __init__(self, owner: Any, chan: paramiko.Channel, argv: Sequence[str],
                 token: str, stdin: Optional[bytes], keep_stdin_open: bool = False) -> None:
        self.owner = owner
        self.device = owner.device.name
        self.chan = chan
        self.argv = list(argv)
        self._token = token
        self._stderr = TailBuffer()
        self._lines = LineQueue(self.device)
        self._pid: Optional[int] = None
        self._pid_event = threading.Event()
        self._cancel_lock = threading.Lock()
        self._cancelled = False
        self._killed = False
        self._keep_stdin = keep_stdin_open
        self._stdin_lock = threading.Lock()
        self._stdin_closed = False
        self._out = threading.Thread(target=self._lines.feed_bytes_stream, args=(chan.recv,),
                                     daemon=True, name=f"ssh-out-{self.device}")
        self._err = threading.Thread(target=self._pump_stderr, daemon=True, name=f"ssh-err-{self.device}")
        self._in = threading.Thread(target=self._write_stdin, args=(stdin,), daemon=True,
                                    name=f"ssh-in-{self.device}")
        self._out.start()
        self._err.start()
        self._in.start()

    # -- pumps
    def _write_stdin(self, data: Optional[bytes]) -> None:
        try:
            if data:
                self.chan.sendall(data)
        except (OSError, EOFError, SSHException):
            pass
        if not self._keep_stdin:
            self.close_stdin()

    def close_stdin(self) -> None:
        """EOF on the remote command's stdin (the channel's write side is shut)."""
        with self._stdin_lock:
            if self._stdin_closed:
                return
            self._stdin_closed = True
        if self._keep_stdin:
            self._in.join(1.0)   # the job line goes out first
        try:
            self.chan.shutdown_write()
        except (OSError, EOFError, SSHException):
            pass

    def _pump_stderr(self) -> None:
        mark = f"{_PID_MARK}{self._token}=".encode()
        pending = b""
        try:
            while True:
                chunk = self.chan.recv_stderr(65536)
                if not chunk:
                    break
                if self._pid_event.is_set():
                    self._stderr.write(chunk.decode("utf-8", "replace"))
                    continue
                pending += chunk
                i = pending.find(mark)
                if i >= 0:
                    j = pending.find(b"\n", i)
                    if j < 0:
                        continue
                    try:
                        self._pid = int(pending[i + len(mark):j])
                    except ValueError:
                        pass
                    self._pid_event.set()
                    rest = pending[:i] + pending[j + 1:]
                    pending = b""
                    if rest:
                        self._stderr.write(rest.decode("utf-8", "replace"))
                elif len(pending) > 65536:  # noise before the mark (shell rc files): keep a tail
                    self._stderr.write(pending[:-256].decode("utf-8", "replace"))
                    pending = pending[-256:]
        except (OSError, EOFError, SSHException):
            pass
        finally:
            if pending:
                self._stderr.write(pending.decode("utf-8", "replace"))
            self._pid_event.set()  # no pid will come any more

    # -- state
    @property
    def pid(self) -> Optional[int]:
        """The remote pid (= process group id) once the device reported it."""
        return self._pid

    def _exit_signal(self) -> Optional[Tuple[str, Optional[int]]]:
        return getattr(self.chan, "_eb_exit_signal", None)

    def _has_status(self) -> bool:
        return self.chan.exit_status != -1 or self._exit_signal() is not None

    def finished(self) -> bool:
        return self.chan.status_event.is_set()

    def _link_alive(self) -> bool:
        t = self.chan.get_transport()
        return bool(t is not None and t.is_active())

    def _lost(self, what: str) -> TransportError:
        return TransportError(self.owner.device.name, f"connection to {self.owner.where} lost {what}", retryable=True,
                    hint="the device may have rebooted or the network dropped")

    # -- RemoteProcess
    def lines(self, idle_timeout: Optional[float] = None) -> Iterator[str]:
        def idle(seconds: float) -> None:
            self.cancel()
            raise TransportError(self.device, f"stalled: no output for {seconds:.0f} s from"
                                 f" `{self.argv[0]}` on {self.owner.where}; remote process killed",
                                 hint="the device may be overloaded or the link dead; raise"
                                      " idle_timeout_s if the job is legitimately quiet that long")
        yield from self._lines.iter(idle_timeout, idle, self.cancel)
        if self._cancelled:
            return
        if self._lines.error is not None:
            raise self._lost(f"while reading output ({self._lines.error})")
        if not self._has_status():
            # stdout ended; give the exit status a moment, then decide whether the link died
            self.chan.status_event.wait(1.0)
            if not self._has_status() and not self._link_alive():
                raise self._lost(f"while `{self.argv[0]}` was running")

    def wait(self, timeout: Optional[float] = None) -> int:
        if not self.chan.status_event.wait(timeout):
            self.cancel()
            raise TransportError(self.device, f"`{self.argv[0]}` did not exit within {timeout} s;"
                                 " remote process killed")
        for th in (self._out, self._err):
            th.join(5)
        sig = self._exit_signal()
        if sig is not None:
            return -(sig[1] or 255)
        if self.chan.exit_status != -1:
            return self.chan.exit_status
        if self._cancelled:
            return -signal.SIGKILL if self._killed else -1
        if not self._link_alive():
            raise self._lost(f"before `{self.argv[0]}` exited")
        return -1

    def cancel(self) -> None:
        with self._cancel_lock:
            if self._cancelled:
                return
            self._cancelled = True
            self.close_stdin()   # a job watching its stdin stops on its own, even if the kill
            try:                 # below cannot reach the device
                if not self._pid_event.is_set() and not self.finished():
                    self._pid_event.wait(min(10.0, self.owner.device.connect_timeout_s))
                if self._pid is not None and self._link_alive():
                    self._killed = self.owner._kill_group(self._pid)
            finally:
                try:
                    self.chan.close()
                except Exception:  # noqa: BLE001
                    pass

    def stderr_tail(self, max_chars: int = 2000) -> str:
        return self._stderr.tail(max_chars)
