"""Files on an SSH device: SFTP upload (atomic rename, clear disk-full errors) and the workdir.

put(): SFTP upload to `remote.part-<random>`, then posix-rename over `remote` (atomic). After
interrupt() (Ctrl-C) the upload stops before its next 32 KB write, the connection is reset (what
is queued for a slow link is dropped) and the partial file is removed over a fresh connection.
"""
from __future__ import annotations

import errno
import posixpath
import re
import secrets
import socket
import stat
import struct
from pathlib import Path
from typing import Optional, Tuple

import paramiko
from paramiko.ssh_exception import SSHException

from ...config import Device
from ...errors import ConfigError, DeviceError, PushCancelled, TransportError
from ..base import PutProgress
from .process import command_line

_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class SSHFiles:
    """SFTP and workdir methods of SSHTransport (which provides the attributes declared here)."""

    device: Device
    client: Optional[paramiko.SSHClient]
    _sftp: Optional[paramiko.SFTPClient]
    bytes_pushed: int
    where: str
    # also uses SSHTransport's _transport(), _exec_simple() and Transport.run(), check_stop()

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            t = self._transport()
            try:
                self._sftp = paramiko.SFTPClient.from_transport(t)
            except (SSHException, EOFError, OSError) as e:
                raise TransportError(self.device.name, f"cannot open SFTP on {self.where}: {e}", retryable=True,
                           hint="the device's sshd needs the sftp subsystem (Subsystem sftp ...)")
            if self._sftp is None:
                raise TransportError(self.device.name, f"cannot open SFTP on {self.where}", retryable=False)
        return self._sftp

    def _sftp_makedirs(self, sftp: paramiko.SFTPClient, path: str) -> None:
        parts = [p for p in path.split("/") if p and p != "."]
        cur = "/" if path.startswith("/") else ""
        for p in parts:
            cur = posixpath.join(cur, p) if cur else p
            try:
                st = sftp.stat(cur)
                if st.st_mode is not None and not stat.S_ISDIR(st.st_mode):
                    raise DeviceError(self.device.name, f"cannot create directory {path}: {cur} is a file")
                continue
            except FileNotFoundError:
                pass
            try:
                sftp.mkdir(cur)
            except OSError as e:
                try:  # made concurrently by someone else?
                    if stat.S_ISDIR(sftp.stat(cur).st_mode or 0):
                        continue
                except OSError:
                    pass
                raise DeviceError(self.device.name, f"cannot create directory {cur}:"
                                  f" {e.strerror or e}", hint="check the device's workdir setting,"
                                  " permissions and free disk")

    def put(self, local: Path, remote: str, progress: Optional[PutProgress] = None) -> None:
        local = Path(local)
        size = local.stat().st_size
        self.check_stop(local.name)  # type: ignore[attr-defined]
        sftp = self._sftp_client()
        parent = posixpath.dirname(remote)
        tmp = f"{remote}.part-{secrets.token_hex(6)}"
        try:
            if parent:
                self._sftp_makedirs(sftp, parent)
            self._upload(sftp, local, tmp, size, progress)
            try:
                sftp.posix_rename(tmp, remote)
            except OSError as e:
                if "unsupported" not in str(e).lower():
                    raise
                try:  # server without posix-rename@openssh.com: not atomic, but works
                    sftp.remove(remote)
                except OSError:
                    pass
                sftp.rename(tmp, remote)
        except PushCancelled:
            self._drop_and_remove(tmp)
            raise
        except (DeviceError, OSError, EOFError, SSHException) as e:
            t = self.client.get_transport() if self.client is not None else None
            alive = t is not None and t.is_active()
            if alive:
                try:
                    sftp.remove(tmp)
                except Exception:  # noqa: BLE001
                    pass
            if isinstance(e, DeviceError):
                raise
            if not alive or not isinstance(e, OSError):
                self._sftp = None
                raise TransportError(self.device.name, f"connection to {self.where} lost while uploading"
                           f" {local.name}: {e}", retryable=True) from None
            # SFTP reports a full disk as a generic "Failure" (or, with pipelined writes, as a
            # short file): ask the device how much room there is to say what really happened
            free = self._free_kb(parent or ".")
            if free is not None and (free[0] * 1024 < size or e.errno == errno.ENOSPC
                                     or "no space" in str(e).lower()):
                raise DeviceError(self.device.name, f"no space left on the device: {free[0]} KB free"
                                  f" on {free[1]} (workdir {parent or '.'}), {local.name} needs"
                                  f" {(size + 1023) // 1024} KB",
                                  hint="free some space there or point workdir: at a bigger"
                                       " filesystem") from None
            raise DeviceError(self.device.name, f"cannot upload {local} to {remote}:"
                              f" {e.strerror or e}",
                              hint="check the device's workdir setting, permissions and free disk") from None
        self.bytes_pushed += size

    def _upload(self, sftp: paramiko.SFTPClient, local: Path, tmp: str, size: int,
                progress: Optional[PutProgress]) -> None:
        """Write `local` to `tmp` in 32 KB pipelined SFTP writes (as paramiko's put does),
        checking for interrupt() before each one. On PushCancelled the remote file is left
        open: waiting for the acks of what is in flight would take seconds on a slow link."""
        fr = sftp.open(tmp, "wb")
        fr.set_pipelined(True)
        done = 0
        try:
            with open(local, "rb") as src:
                for data in iter(lambda: src.read(32768), b""):
                    self.check_stop(local.name)  # type: ignore[attr-defined]
                    fr.write(data)
                    done += len(data)
                    if progress is not None:
                        progress(done, size)
        except PushCancelled:
            fr._closed = True   # never close it: that waits for the ack of every pending write
            raise
        except BaseException:
            try:
                fr.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        fr.close()                       # waits for the acks: every byte is on the device
        if progress is not None and not size:
            progress(0, 0)
        got = sftp.stat(tmp).st_size
        if got != size:
            raise OSError(f"size mismatch: {got} of {size} bytes arrived")

    def _drop_and_remove(self, tmp: str) -> None:
        """After an interrupted upload: drop the connection at once (a TCP reset, so the bytes
        still queued for a slow link are discarded instead of sent), then remove the partial
        file over a fresh connection. Best effort: a device that cannot be reached keeps it
        (a later push uses another temp name and never reads it)."""
        t = self.client.get_transport() if self.client is not None else None
        sock = getattr(t, "sock", None)
        if isinstance(sock, socket.socket):    # not for a ProxyCommand / jump channel
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.close()  # type: ignore[attr-defined]
        try:
            self._connect_once(self.target)  # type: ignore[attr-defined]
            self.run(["rm", "-f", "--", tmp],  # type: ignore[attr-defined]
                     timeout=self.device.connect_timeout_s + 10)
        except DeviceError:
            pass

    def _free_kb(self, path: str) -> Optional[Tuple[int, str]]:
        """(KB available, mount point) of the filesystem holding `path` on the device (POSIX
        `df -Pk`), or None when that cannot be found out."""
        try:
            code, out = self._exec_simple(command_line(["df", "-Pk", "--", path]),
                                          timeout=self.device.connect_timeout_s + 10)
        except TransportError:
            return None
        lines = out.decode("utf-8", "replace").strip().splitlines()
        if code != 0 or len(lines) < 2:
            return None
        parts = lines[-1].split()
        try:
            return int(parts[3]), parts[5] if len(parts) > 5 else path
        except (IndexError, ValueError):
            return None

    # -- paths
    def _login_dir(self) -> str:
        """The absolute login directory (what `~` and relative paths mean on the device)."""
        cached = getattr(self, "_home", None)
        if cached:
            return cached
        res = self.run(["pwd"], timeout=self.device.connect_timeout_s + 10)
        home = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
        if res.exit_code != 0 or not home.startswith("/"):
            raise DeviceError(self.device.name, "cannot resolve the workdir: `pwd` in the login"
                              f" directory printed {home!r}")
        self._home = home
        return home

    def resolve_workdir(self, workdir: str) -> str:
        """An absolute path, always: `~/x` and `x` -> login directory + /x, `~` -> the login
        directory, `~user/x` -> that user's home + /x. Never a relative path, which a program
        could read as an option when it starts with `-` (a workdir `~/-c...`)."""
        w = workdir.strip()
        if w == "~" or w.startswith("~/"):
            rest = w[2:].strip("/")
            home = self._login_dir()
            return posixpath.normpath(posixpath.join(home, rest)) if rest else home
        if not w.startswith("/") and not w.startswith("~"):
            return posixpath.normpath(posixpath.join(self._login_dir(), w))
        if w.startswith("~"):
            user, _, rest = w[1:].partition("/")
            if not _USER_NAME.match(user):
                raise ConfigError(f"{self.device.source}: workdir {workdir!r}: bad user name after ~")
            res = self.run(["sh", "-c", f"cd ~{user} && pwd"], timeout=self.device.connect_timeout_s + 10)
            home = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
            if res.exit_code != 0 or not home.startswith("/"):
                raise DeviceError(self.device.name, f"cannot resolve workdir {workdir!r}: no home"
                                  f" directory for user {user!r}")
            return posixpath.join(home, rest) if rest else home
        return w
