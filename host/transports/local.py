"""The host itself as a device: the agent runs in a subprocess."""
from __future__ import annotations

import contextlib
import os
import tempfile
import subprocess
import threading
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

from ..errors import TransportError
from .base import PutProgress, RemoteProcess, Transport
from .streams import LineQueue, StdinPipe, TailBuffer, kill_local_group


class LocalProcess(RemoteProcess):
    def __init__(self, device: str, argv: Sequence[str], stdin: Optional[bytes],
                 env: Optional[dict], keep_stdin_open: bool = False) -> None:
        self.device = device
        self.argv = list(argv)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True, env=full_env)
        except OSError as e:
            raise TransportError(device, f"cannot start {self.argv[0]}: {e.strerror}")
        self._stderr = TailBuffer()
        self._lines = LineQueue(device)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._lines.feed_bytes_stream, args=(self.proc.stdout.read1,),
                         daemon=True).start()
        self._t_err = threading.Thread(target=self._pump_stderr, daemon=True)
        self._t_err.start()
        self._stdin = StdinPipe(self.proc.stdin, stdin, keep_stdin_open)

    def close_stdin(self) -> None:
        self._stdin.close()

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):  # type: ignore[union-attr]
            self._stderr.write(chunk.decode("utf-8", "replace"))

    def lines(self, idle_timeout: Optional[float] = None) -> Iterator[str]:
        def idle(seconds: float) -> None:
            self.cancel()
            raise TransportError(self.device, f"no output from `{self.argv[0]}` for {seconds:.0f} s"
                                 " (stalled); process killed")
        return self._lines.iter(idle_timeout, idle, self.cancel)

    def wait(self, timeout: Optional[float] = None) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise TransportError(self.device, f"`{self.argv[0]}` did not exit within {timeout} s")
        self.close_stdin()
        # the process is gone, its last stderr may still be in the pipe: read it before anyone
        # asks for stderr_tail (a failed bootstrap's "exited 7" lost its reason that way).
        # Bounded: a child it left behind may hold the pipe open (as the SSH and adb ones do)
        self._t_err.join(5.0)
        return code

    def cancel(self) -> None:
        self.close_stdin()   # a job watching its stdin stops at once on its own, too
        kill_local_group(self.proc)

    def stderr_tail(self, max_chars: int = 2000) -> str:
        return self._stderr.tail(max_chars)


class LocalTransport(Transport):
    def connect(self) -> None:
        self.connect_with_retries(lambda: None)  # nothing to open; counts the one attempt

    def close(self) -> None:
        pass

    def start(self, argv: Sequence[str], stdin: Optional[bytes] = None,
              env: Optional[dict] = None, keep_stdin_open: bool = False) -> LocalProcess:
        return LocalProcess(self.device.name, argv, stdin, env, keep_stdin_open)

    def put(self, local: Path, remote: str, progress: Optional[PutProgress] = None) -> None:
        """Copy to a temp file in the destination's directory (in 1 MiB pieces, telling
        `progress` how far it got), then rename it into place: the rename replaces whatever is
        at `remote` (a planted symlink included) and never writes through it; a reader never
        sees half a file."""
        dest = Path(remote)
        self.check_stop(Path(local).name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=str(dest.parent))
        try:
            total, done = Path(local).stat().st_size, 0
            with os.fdopen(fd, "wb") as out, open(local, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    self.check_stop(Path(local).name)   # interrupt(): the partial file goes
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            if progress is not None and not total:
                progress(0, 0)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.bytes_pushed += dest.stat().st_size

    def sha256_many(self, paths: Sequence[str], timeout: Optional[float] = 300) -> Dict[str, str]:
        from ..hashing import sha256_file
        return {p: sha256_file(Path(p)) for p in paths if Path(p).is_file()}

    def makedirs(self, path: str) -> None:
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TransportError(self.device.name, f"cannot create {path}: {e.strerror}")

    def resolve_workdir(self, workdir: str) -> str:
        return str(Path(workdir).expanduser())
