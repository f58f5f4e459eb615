"""A command on the phone: the quoted one-line shell script, the streaming `adb shell` client,
and the kill of the remote process tree (see the package docstring for the protocol)."""
from __future__ import annotations

import secrets
import shlex
import signal
import subprocess
import threading
from typing import Any, Dict, Iterator, Optional, Sequence

from ...errors import TransportError
from ..base import RemoteProcess
from ..streams import LineQueue, StdinPipe, TailBuffer, kill_local_group
from .tool import _ENV_NAME, _PID_MARK, _RC_MARK, INSTALL_HINT

def build_script(argv: Sequence[str], nonce: str, env: Optional[Dict[str, str]] = None,
                 taskset: Optional[str] = None) -> str:
    """The one-line remote shell script for argv (every argument quoted; see module doc)."""
    if not argv:
        raise ValueError("empty argv")
    parts = [f"echo {_PID_MARK}{nonce}=$$ >&2"]
    for k, v in (env or {}).items():
        if not _ENV_NAME.match(k):
            raise ValueError(f"bad environment variable name {k!r}")
        parts.append(f"export {k}={shlex.quote(str(v))}")
    cmd = " ".join(shlex.quote(str(a)) for a in argv)
    if taskset:
        cmd = f"taskset {shlex.quote(taskset)} {cmd}"
    parts.append(cmd)
    parts.append(f"r=$?; echo {_RC_MARK}{nonce}=$r >&2; exit $r")
    return "; ".join(parts)


def kill_tree_script(pid: int) -> str:
    """POSIX sh: SIGKILL pid and all its descendants (found through /proc/*/stat ppids)."""
    return (
        f"p={pid}; [ -d /proc/$p ] || exit 0; all=$p; new=$p; "
        "while [ -n \"$new\" ]; do next=; "
        "for f in /proc/[0-9]*/stat; do "
        "read -r l < \"$f\" 2>/dev/null || continue; c=${l%% *}; r=${l##*) }; set -- $r; "
        "for q in $new; do [ \"$2\" = \"$q\" ] && next=\"$next $c\"; done; done; "
        "all=\"$all $next\"; new=$next; done; "
        "kill -9 $all 2>/dev/null; exit 0"
    )


class ADBProcess(RemoteProcess):
    """A command running on the phone, driven by a local `adb shell` client process."""

    def __init__(self, owner: Any, argv: Sequence[str], stdin: Optional[bytes],
                 env: Optional[Dict[str, str]], keep_stdin_open: bool = False) -> None:
        self.owner = owner
        self.device = owner.device
        self.argv = list(argv)
        self.nonce = secrets.token_hex(6)
        script = build_script(self.argv, self.nonce, env, owner.device.taskset)
        cmd = owner.adb_cmd("-s", owner.serial, "shell", script)
        self.remote_pid: Optional[int] = None
        self.remote_rc: Optional[int] = None
        self.cancelled = False
        self._pid_seen = threading.Event()
        self._stderr = TailBuffer()
        self._lines = LineQueue(owner.device.name)
        self._lost: Optional[TransportError] = None
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise TransportError(self.device.name, f"cannot start {owner.adb}: {e.strerror}", hint=INSTALL_HINT)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._t_out = threading.Thread(target=self._lines.feed_bytes_stream,
                                       args=(self.proc.stdout.read1,), daemon=True)
        self._t_err = threading.Thread(target=self._pump_stderr, daemon=True)
        self._t_out.start()
        self._t_err.start()
        # adb forwards stdin as it comes and sends shell v2 close-stdin at its EOF; a killed
        # adb client closes the stream, which closes the command's stdin on the phone too
        self._stdin = StdinPipe(self.proc.stdin, stdin, keep_stdin_open)

    def close_stdin(self) -> None:
        self._stdin.close()

    # --- pumps ---------------------------------------------------------------------------------
    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        pid_tag = f"{_PID_MARK}{self.nonce}="
        rc_tag = f"{_RC_MARK}{self.nonce}="
        buf = b""
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):  # type: ignore[union-attr]
            buf += chunk
            *whole, buf = buf.split(b"\n")
            for raw in whole:
                self._stderr_line(raw.decode("utf-8", "replace").rstrip("\r"), pid_tag, rc_tag, True)
        if buf:
            self._stderr_line(buf.decode("utf-8", "replace"), pid_tag, rc_tag, False)

    def _stderr_line(self, line: str, pid_tag: str, rc_tag: str, newline: bool) -> None:
        if line.startswith(pid_tag) and line[len(pid_tag):].isdigit():
            self.remote_pid = int(line[len(pid_tag):])
            self._pid_seen.set()
            return
        if line.startswith(rc_tag) and line[len(rc_tag):].isdigit():
            self.remote_rc = int(line[len(rc_tag):])
            return
        self._stderr.write(line + ("\n" if newline else ""))

    # --- RemoteProcess -------------------------------------------------------------------------
    def lines(self, idle_timeout: Optional[float] = None) -> Iterator[str]:
        def idle(seconds: float) -> None:
            self.cancel()
            raise TransportError(self.device.name, f"no output from `{self.argv[0]}` for {seconds:.0f} s"
                       " (stalled); remote process killed", retryable=False)
        yield from self._lines.iter(idle_timeout, idle, self.cancel)
        self._settle(30.0)
        if not self.cancelled and self.remote_rc is None:
            raise self._lost_error()

    def wait(self, timeout: Optional[float] = None) -> int:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise TransportError(self.device.name, f"`{self.argv[0]}` did not exit within {timeout} s; killed")
        self.close_stdin()
        self._settle(10.0)
        if self.remote_rc is not None:
            return self.remote_rc
        if self.cancelled:
            return -signal.SIGKILL
        raise self._lost_error()

    def cancel(self) -> None:
        """Kill the remote command (and its children) from a second adb shell, then the client."""
        if self.cancelled:
            return
        self.cancelled = True
        self.close_stdin()   # a job watching its stdin stops on its own, too
        if self.proc.poll() is None or self.remote_rc is None:
            if self.remote_pid is None:
                self._pid_seen.wait(2.0)
            if self.remote_pid is not None and self.remote_rc is None:
                try:
                    self.owner.adb_run(["-s", self.owner.serial, "shell",
                                        kill_tree_script(self.remote_pid)], timeout=15)
                except (TransportError, OSError):
                    pass   # the phone is gone: nothing left to kill over adb
        kill_local_group(self.proc)

    def stderr_tail(self, max_chars: int = 2000) -> str:
        return self._stderr.tail(max_chars)

    # --- helpers -------------------------------------------------------------------------------
    def _settle(self, timeout: float) -> None:
        """After stdout EOF: let the client exit and the stderr pump drain (rc marker)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self._t_err.join(timeout)

    def _lost_error(self) -> TransportError:
        if self._lost is None:
            state = self.owner.state()
            tail = " | ".join(self._stderr.tail(600).strip().splitlines()[-2:])
            msg = (f"connection to the phone was lost while `{self.argv[0]}` was running"
                   f" (adb exited {self.proc.returncode} without the command's exit status;"
                   f" device state now: {state or 'gone'})")
            if tail:
                msg += f": {tail}"
            self._lost = TransportError(self.device.name, msg, retryable=True,
                              hint="check the USB cable / wifi and `adb devices`; the run on this"
                                   " device is marked failed, other devices go on")
        return self._lost
