"""A stand-in for an Android phone's adbd: the DEVICE side of the adb transport protocol over TCP.

No Android device or emulator can run in CI, and Debian has no adbd. This daemon speaks enough of
the protocol (AOSP adb/protocol.txt, SYNC.TXT, shell_protocol.h) that the REAL adb client and
server (Debian's /usr/bin/adb, or the one adbutils bundles) can `adb connect` it and run
`adb shell`, `adb push` and `adb pull` against it:

* transport messages CNXN, OPEN, OKAY, WRTE, CLSE (24-byte header, data checksum, magic), with
  flow control (one WRTE in flight per stream until the peer's OKAY) and the negotiated max
  payload; AUTH is skipped (CNXN is answered directly, like a phone with ro.adb.secure=0) unless
  `mode="unauthorized"`, which never accepts the host key (the server then shows `unauthorized`);
  `mode="mute"` accepts TCP but never answers (the server shows `offline`/`connecting`).
* services `shell,v2,...:CMD` (shell protocol v2 packets: stdin 0, stdout 1, stderr 2, exit 3,
  close-stdin 4, window-size 5), the legacy `shell:CMD` and `exec:CMD` (raw byte streams,
  stderr merged into stdout, no PTY is allocated: this is the one difference from a real adbd),
  and `sync:` with STAT, STA2, LST2, LIST, LIS2, SEND, RECV, QUIT (DATA/DONE/OKAY/FAIL).
* the CNXN banner advertises exactly what is implemented:
  `features=shell_v2,stat_v2,ls_v2,fixed_push_mkdir`.

Commands run on THIS machine under /bin/sh, in their own session (as adbd does), with the
process's cwd at `root` and `root/bin` first on PATH. `root/bin/getprop` is a fake getprop that
answers ro.product.model, ro.board.platform, ro.build.version.release/sdk and
ro.product.cpu.abi/abilist from `props`.

Paths are NOT rewritten: a device path is a path on this machine. That is the robust option
(commands, sha256sum output, the agent's own paths and sync all agree without a translation
layer that would have to parse shell commands); tests point the device's `workdir` at
`standin.workdir` (= ROOT/data/local/tmp/edge-bench), a real temp directory laid out like a
phone's. Only the path prefix differs from a real phone's /data/local/tmp.

A closed stream does NOT kill its process (the process only sees its pipes close), the
worst case of a real adbd, so a cancellation test proves that the host kills the remote process.

    d = AdbdStandin(tmp_path / "phone").start()   # listens on 127.0.0.1, a port >= 5600
    d.serial        # "127.0.0.1:PORT" for `adb connect`
    d.go_offline()  # drop every connection, stop listening (a phone unplugged / wifi gone)
    d.go_online()   # listen again on the same port
    d.stop()
"""
from __future__ import annotations

import errno
import os
import socket
import stat
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

# --- transport protocol constants (adb.h) ---------------------------------------------------
A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_AUTH = 0x48545541
A_STLS = 0x534C5453

A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
MAX_PAYLOAD = 256 * 1024
ADB_AUTH_TOKEN = 1
ADB_AUTH_SIGNATURE = 2
ADB_AUTH_RSAPUBLICKEY = 3

NAMES = {A_SYNC: "SYNC", A_CNXN: "CNXN", A_OPEN: "OPEN", A_OKAY: "OKAY", A_CLSE: "CLSE",
         A_WRTE: "WRTE", A_AUTH: "AUTH", A_STLS: "STLS"}

# --- shell protocol v2 (shell_protocol.h) ---------------------------------------------------
ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW_SIZE = 0, 1, 2, 3, 4, 5

SYNC_DATA_MAX = 64 * 1024
FEATURES = ("shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir")

DEFAULT_PROPS = {
    "ro.product.model": "EdgeBenchStandin",
    "ro.product.name": "edgebench_standin",
    "ro.product.device": "standin",
    "ro.product.manufacturer": "edge-bench",
    "ro.board.platform": "standin64",
    "ro.hardware": "standin",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    "ro.serialno": "EBSTANDIN01",
}


def _checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


def pack_message(cmd: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    return struct.pack("<6I", cmd, arg0 & 0xFFFFFFFF, arg1 & 0xFFFFFFFF, len(data),
                       _checksum(data), cmd ^ 0xFFFFFFFF) + data


def free_port_at_least(minimum: int = 5600, host: str = "127.0.0.1") -> int:
    """A free TCP port >= minimum (the adb server probes 5555-5585 for emulators)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port >= minimum:
            return port
    raise RuntimeError("no free port >= %d" % minimum)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return bytes(buf)


class _StreamClosed(Exception):
    pass


class _Stream:
    """One adb socket (OPEN ... CLSE) on the device side."""

    def __init__(self, conn: "_Conn", local_id: int, remote_id: int) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self._buf = bytearray()
        self._cv = threading.Condition()
        self._acked = threading.Event()
        self._acked.set()
        self._wlock = threading.Lock()
        self.closed = False          # either side closed
        self.remote_closed = False

    # incoming ------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        with self._cv:
            self._buf += data
            self._cv.notify_all()

    def on_okay(self) -> None:
        self._acked.set()

    def on_remote_close(self) -> None:
        with self._cv:
            self.remote_closed = True
            self.closed = True
            self._cv.notify_all()
        self._acked.set()

    def read_some(self, n: int = 65536) -> bytes:
        """Up to n bytes; b"" once the stream is closed and drained."""
        with self._cv:
            while not self._buf and not self.closed:
                self._cv.wait(1.0)
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data

    def read_exact(self, n: int) -> bytes:
        with self._cv:
            while len(self._buf) < n:
                if self.closed:
                    raise _StreamClosed()
                self._cv.wait(1.0)
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data

    # outgoing ------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        with self._wlock:
            view = memoryview(data)
            while view:
                if self.closed:
                    raise _StreamClosed()
                chunk = bytes(view[: self.conn.max_payload])
                view = view[len(chunk):]
                while not self._acked.wait(0.5):
                    if self.closed or self.conn.dead:
                        raise _StreamClosed()
                self._acked.clear()
                if not self.conn.send(A_WRTE, self.local_id, self.remote_id, chunk):
                    raise _StreamClosed()

    def close(self) -> None:
        with self._cv:
            already = self.closed
            self.closed = True
            self._cv.notify_all()
        if not already:
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
        self.conn.forget(self.local_id)


class _Conn:
    """One TCP connection from an adb server (one 'transport')."""

    def __init__(self, daemon: "AdbdStandin", sock: socket.socket) -> None:
        self.daemon = daemon
        self.sock = sock
        self.max_payload = MAX_PAYLOAD
        self.dead = False
        self._send_lock = threading.Lock()
        self._streams: Dict[int, _Stream] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self.online = False
        threading.Thread(target=self._loop, daemon=True, name="adbd-conn").start()

    def send(self, cmd: int, arg0: int, arg1: int, data: bytes = b"") -> bool:
        msg = pack_message(cmd, arg0, arg1, data)
        with self._send_lock:
            if self.dead:
                return False
            try:
                self.sock.sendall(msg)
                return True
            except OSError:
                self.kill()
                return False

    def forget(self, local_id: int) -> None:
        with self._lock:
            self._streams.pop(local_id, None)

    def kill(self) -> None:
        if self.dead:
            return
        self.dead = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for s in streams:
            s.on_remote_close()
        self.daemon._forget_conn(self)

    def _loop(self) -> None:
        try:
            while not self.dead:
                hdr = _recv_exact(self.sock, 24)
                cmd, arg0, arg1, length, check, magic = struct.unpack("<6I", hdr)
                if magic != cmd ^ 0xFFFFFFFF:
                    raise ConnectionError("bad magic")
                data = _recv_exact(self.sock, length) if length else b""
                self.daemon._log(f"<- {NAMES.get(cmd, hex(cmd))} {arg0} {arg1} {data[:60]!r}")
                self._dispatch(cmd, arg0, arg1, data)
        except (ConnectionError, OSError):
            pass
        finally:
            self.kill()

    def _dispatch(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        mode = self.daemon.mode
        if cmd == A_CNXN:
            if mode == "mute":
                return
            if mode == "unauthorized":
                self.send(A_AUTH, ADB_AUTH_TOKEN, 0, os.urandom(20))
                return
            self._answer_cnxn(arg0, arg1)
        elif cmd == A_AUTH:
            if mode == "unauthorized":
                if arg0 == ADB_AUTH_SIGNATURE:
                    # signature "rejected": ask again; the host then offers its public key and
                    # waits for the user to accept the RSA prompt, which never happens here
                    self.send(A_AUTH, ADB_AUTH_TOKEN, 0, os.urandom(20))
                return
            self._answer_cnxn(A_VERSION_SKIP_CHECKSUM, MAX_PAYLOAD)
        elif not self.online:
            return
        elif cmd == A_OPEN:
            service = data.rstrip(b"\0").decode("utf-8", "replace")
            handler = self.daemon._service_handler(service)
            if handler is None:
                self.send(A_CLSE, 0, arg0)
                return
            with self._lock:
                local_id = self._next_id
                self._next_id += 1
                st = _Stream(self, local_id, arg0)
                self._streams[local_id] = st
            self.send(A_OKAY, local_id, arg0)
            threading.Thread(target=self._run_handler, args=(handler, st), daemon=True,
                             name="adbd-" + service.split(":")[0]).start()
        elif cmd == A_OKAY:
            st = self._streams.get(arg1)
            if st is not None:
                if st.remote_id == 0:
                    st.remote_id = arg0
                st.on_okay()
        elif cmd == A_WRTE:
            st = self._streams.get(arg1)
            if st is None:
                self.send(A_CLSE, 0, arg0)
                return
            st.feed(data)
            self.send(A_OKAY, arg1, arg0)
        elif cmd == A_CLSE:
            st = self._streams.get(arg1)
            if st is not None:
                st.on_remote_close()
                self.forget(arg1)

    def _answer_cnxn(self, version: int, maxdata: int) -> None:
        self.max_payload = max(4096, min(maxdata or MAX_PAYLOAD, MAX_PAYLOAD))
        ver = min(version, A_VERSION_SKIP_CHECKSUM) if version >= A_VERSION_MIN else A_VERSION_MIN
        self.online = True
        self.send(A_CNXN, ver, MAX_PAYLOAD, self.daemon.banner().encode())

    def _run_handler(self, handler: Callable[[_Stream], None], st: _Stream) -> None:
        try:
            handler(st)
        except _StreamClosed:
            pass
        except Exception as e:  # noqa: BLE001 - a handler bug must not kill the daemon
            self.daemon._log(f"handler error: {type(e).__name__}: {e}")
        finally:
            st.close()


class AdbdStandin:
    """The device stand-in. See the module docstring."""

    def __init__(self, root: Path, port: Optional[int] = None, host: str = "127.0.0.1",
                 props: Optional[Dict[str, str]] = None, mode: str = "device",
                 extra_env: Optional[Dict[str, str]] = None, log: bool = False) -> None:
        if mode not in ("device", "unauthorized", "mute"):
            raise ValueError(mode)
        self.root = Path(root)
        self.host = host
        self.port = port or free_port_at_least(5600, host)
        if self.port < 5600:
            raise ValueError("use a port >= 5600: the adb server probes 5555-5585 for emulators")
        self.props = dict(DEFAULT_PROPS)
        self.props.update(props or {})
        self.mode = mode
        self.extra_env = dict(extra_env or {})
        self.logging = log
        self.log_lines: List[str] = []
        self._listener: Optional[socket.socket] = None
        self._conns: List[_Conn] = []
        self._lock = threading.Lock()
        self._accepting = False
        self.services_opened: List[str] = []
        self._make_root()

    # --- layout ------------------------------------------------------------------------------
    @property
    def serial(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def tmp(self) -> Path:
        """The phone's /data/local/tmp."""
        return self.root / "data" / "local" / "tmp"

    @property
    def workdir(self) -> str:
        """The default edge-bench workdir on this 'phone' (a real path on this machine)."""
        return str(self.tmp / "edge-bench")

    def _make_root(self) -> None:
        (self.root / "bin").mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.write_getprop()

    def write_getprop(self) -> None:
        """(Re)write ROOT/bin/getprop from self.props (call after changing props)."""
        cases = "".join(f"  {_sh_quote(k)}) echo {_sh_quote(v)} ;;\n" for k, v in sorted(self.props.items()))
        listing = "".join(f"echo {_sh_quote('[' + k + ']: [' + v + ']')}\n" for k, v in sorted(self.props.items()))
        script = (
            "#!/bin/sh\n"
            "# fake getprop of the edge-bench adbd stand-in\n"
            'if [ $# -eq 0 ]; then\n' + listing + "exit 0\nfi\n"
            'case "$1" in\n' + cases + '  *) echo "${2:-}" ;;\nesac\n'
        )
        p = self.root / "bin" / "getprop"
        p.write_text(script)
        p.chmod(0o755)

    def env(self) -> Dict[str, str]:
        path = os.pathsep.join([str(self.root / "bin"), "/usr/local/sbin", "/usr/local/bin",
                                "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        env = {"PATH": path, "HOME": str(self.root), "TMPDIR": str(self.tmp),
               "LANG": "C.UTF-8", "ANDROID_ROOT": str(self.root), "ANDROID_DATA": str(self.root / "data")}
        env.update(self.extra_env)
        return env

    def banner(self) -> str:
        p = self.props
        return ("device::ro.product.name={};ro.product.model={};ro.product.device={};features={}"
                .format(p["ro.product.name"], p["ro.product.model"], p["ro.product.device"],
                        ",".join(FEATURES)))

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "AdbdStandin":
        self.go_online()
        return self

    def go_online(self) -> None:
        if self._listener is not None:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        self._listener = s
        self._accepting = True
        threading.Thread(target=self._accept_loop, args=(s,), daemon=True, name="adbd-accept").start()

    def go_offline(self) -> None:
        """Close every connection and stop accepting: the phone vanished."""
        self._accepting = False
        lst, self._listener = self._listener, None
        if lst is not None:
            try:
                lst.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            lst.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.kill()

    def stop(self) -> None:
        self.go_offline()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def _accept_loop(self, lst: socket.socket) -> None:
        while self._accepting:
            try:
                sock, _ = lst.accept()
            except OSError:
                return
            if not self._accepting:
                sock.close()
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.append(_Conn(self, sock))

    def _forget_conn(self, c: _Conn) -> None:
        with self._lock:
            if c in self._conns:
                self._conns.remove(c)

    def _log(self, text: str) -> None:
        if self.logging:
            self.log_lines.append(f"{time.monotonic():.3f} {text}")

    # --- services ------------------------------------------------------------------------------
    def _service_handler(self, service: str) -> Optional[Callable[[_Stream], None]]:
        self.services_opened.append(service)
        if service.startswith("shell"):
            head, sep, command = service.partition(":")
            if not sep:
                return None
            args = head.split(",")[1:]
            if args and any(a == "v2" for a in args):
                return lambda st: self._shell_v2(st, command)
            return lambda st: self._raw_exec(st, command)
        if service.startswith("exec:"):
            return lambda st: self._raw_exec(st, service[5:])
        if service == "sync:":
            return self._sync
        return None

    def _popen(self, command: str, merge_stderr: bool) -> subprocess.Popen:
        argv = ["/bin/sh", "-c", command] if command.strip() else ["/bin/sh"]
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                                cwd=str(self.root), env=self.env(), start_new_session=True,
                                bufsize=0)

    def _shell_v2(self, st: _Stream, command: str) -> None:
        proc = self._popen(command, merge_stderr=False)
        wlock = threading.Lock()

        def packet(pid: int, data: bytes) -> None:
            with wlock:
                st.write(struct.pack("<BI", pid, len(data)) + data)

        def pump(fobj, pid: int) -> None:
            try:
                while True:
                    chunk = os.read(fobj.fileno(), 65536)
                    if not chunk:
                        break
                    packet(pid, chunk)
            except (_StreamClosed, OSError):
                pass
            finally:
                fobj.close()   # a closed stream closes the pipe: the process sees EPIPE, not a kill

        pumps = [threading.Thread(target=pump, args=(proc.stdout, ID_STDOUT), daemon=True),
                 threading.Thread(target=pump, args=(proc.stderr, ID_STDERR), daemon=True)]
        for t in pumps:
            t.start()
        threading.Thread(target=self._shell_v2_input, args=(st, proc), daemon=True).start()
        for t in pumps:
            t.join()
        rc = proc.wait()
        code = rc if rc >= 0 else 128 + (-rc)
        if not st.closed:
            try:
                packet(ID_EXIT, bytes([code & 0xFF]))
            except _StreamClosed:
                pass

    @staticmethod
    def _shell_v2_input(st: _Stream, proc: subprocess.Popen) -> None:
        stdin = proc.stdin
        try:
            while True:
                hdr = st.read_exact(5)
                pid, length = struct.unpack("<BI", hdr)
                data = st.read_exact(length) if length else b""
                if pid == ID_STDIN and stdin is not None:
                    try:
                        stdin.write(data)
                    except OSError:
                        pass
                elif pid == ID_CLOSE_STDIN and stdin is not None:
                    try:
                        stdin.close()
                    except OSError:
                        pass
                    stdin = None
        except _StreamClosed:
            pass
        finally:
            if stdin is not None:
                try:
                    stdin.close()
                except OSError:
                    pass

    def _raw_exec(self, st: _Stream, command: str) -> None:
        proc = self._popen(command, merge_stderr=True)

        def feed_stdin() -> None:
            try:
                while True:
                    data = st.read_some()
                    if not data:
                        break
                    proc.stdin.write(data)  # type: ignore[union-attr]
            except OSError:
                pass
            finally:
                try:
                    proc.stdin.close()  # type: ignore[union-attr]
                except OSError:
                    pass

        threading.Thread(target=feed_stdin, daemon=True).start()
        try:
            while True:
                chunk = os.read(proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
                if not chunk:
                    break
                st.write(chunk)
        except (_StreamClosed, OSError):
            pass
        finally:
            proc.stdout.close()  # type: ignore[union-attr]
        proc.wait()

    # --- sync ----------------------------------------------------------------------------------
    def _sync(self, st: _Stream) -> None:
        while True:
            hdr = st.read_exact(8)
            rid, length = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if rid == b"QUIT":
                return
            if length > 1024 * 1024:
                self._sync_fail(st, "request too long")
                return
            arg = st.read_exact(length) if length else b""
            if rid == b"STAT":
                st.write(self._stat_v1(arg))
            elif rid in (b"STA2", b"LST2"):
                st.write(self._stat_v2(rid, arg, follow=(rid == b"STA2")))
            elif rid == b"LIST":
                self._list(st, arg, v2=False)
            elif rid == b"LIS2":
                self._list(st, arg, v2=True)
            elif rid == b"SEND":
                self._send(st, arg)
            elif rid == b"RECV":
                self._recv(st, arg)
            else:
                self._sync_fail(st, "unknown sync command %r" % rid)
                return

    @staticmethod
    def _sync_fail(st: _Stream, msg: str) -> None:
        data = msg.encode()
        st.write(b"FAIL" + struct.pack("<I", len(data)) + data)

    @staticmethod
    def _stat_v1(path: bytes) -> bytes:
        try:
            s = os.lstat(path)
            return b"STAT" + struct.pack("<III", s.st_mode & 0xFFFFFFFF, s.st_size & 0xFFFFFFFF,
                                         int(s.st_mtime) & 0xFFFFFFFF)
        except OSError:
            return b"STAT" + struct.pack("<III", 0, 0, 0)

    @staticmethod
    def _v2_fields(s: Optional[os.stat_result], err: int) -> bytes:
        if s is None:
            return struct.pack("<IQQIIIIQqqq", err, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return struct.pack("<IQQIIIIQqqq", 0, s.st_dev, s.st_ino, s.st_mode, s.st_nlink,
                           s.st_uid, s.st_gid, s.st_size, int(s.st_atime), int(s.st_mtime),
                           int(s.st_ctime))

    def _stat_v2(self, rid: bytes, path: bytes, follow: bool) -> bytes:
        try:
            s = os.stat(path) if follow else os.lstat(path)
            return rid + self._v2_fields(s, 0)
        except OSError as e:
            return rid + self._v2_fields(None, e.errno or errno.EIO)

    def _list(self, st: _Stream, path: bytes, v2: bool) -> None:
        try:
            names = sorted(os.listdir(path))
        except OSError:
            names = []
        for name in [b".", b".."] + [os.fsencode(n) for n in names]:
            full = os.path.join(path, name)
            try:
                s = os.lstat(full)
            except OSError:
                continue
            if v2:
                st.write(b"DNT2" + self._v2_fields(s, 0) + struct.pack("<I", len(name)) + name)
            else:
                st.write(b"DENT" + struct.pack("<IIII", s.st_mode & 0xFFFFFFFF, s.st_size & 0xFFFFFFFF,
                                               int(s.st_mtime) & 0xFFFFFFFF, len(name)) + name)
        if v2:
            st.write(b"DONE" + self._v2_fields(None, 0) + struct.pack("<I", 0))
        else:
            st.write(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))

    def _send(self, st: _Stream, spec: bytes) -> None:
        path_b, _, mode_b = spec.rpartition(b",")
        if not path_b:
            path_b, mode_b = spec, b"33188"
        try:
            mode = int(mode_b)
        except ValueError:
            mode = 0o100644
        error: Optional[str] = None
        f = None
        try:
            parent = os.path.dirname(path_b)
            if parent:
                os.makedirs(parent, exist_ok=True)  # fixed_push_mkdir
            if stat.S_ISLNK(mode):
                f = None
            else:
                fd = os.open(path_b, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o777)
                f = os.fdopen(fd, "wb")
        except OSError as e:
            error = f"couldn't create file: {e.strerror}"
        link_target = b""
        while True:
            hdr = st.read_exact(8)
            rid, length = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if rid == b"DATA":
                if length > SYNC_DATA_MAX:
                    error = error or "data chunk too large"
                data = st.read_exact(length)
                if error is None:
                    if f is not None:
                        try:
                            f.write(data)
                        except OSError as e:
                            error = f"write failed: {e.strerror}"
                    else:
                        link_target += data
            elif rid == b"DONE":
                mtime = length
                if f is not None:
                    f.close()
                    if error is None:
                        try:
                            os.utime(path_b, (mtime, mtime))
                        except OSError:
                            pass
                elif error is None and stat.S_ISLNK(mode):
                    try:
                        if os.path.lexists(path_b):
                            os.unlink(path_b)
                        os.symlink(link_target.rstrip(b"\0"), path_b)
                    except OSError as e:
                        error = f"symlink failed: {e.strerror}"
                break
            else:
                error = error or "unexpected %r in SEND" % rid
                if f is not None:
                    f.close()
                self._sync_fail(st, error)
                raise _StreamClosed()
        if error is not None:
            self._sync_fail(st, error)
        else:
            st.write(b"OKAY" + struct.pack("<I", 0))

    def _recv(self, st: _Stream, path: bytes) -> None:
        try:
            f = open(path, "rb")
        except OSError as e:
            self._sync_fail(st, e.strerror or "open failed")
            return
        with f:
            while True:
                chunk = f.read(SYNC_DATA_MAX)
                if not chunk:
                    break
                st.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        st.write(b"DONE" + struct.pack("<I", 0))


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


if __name__ == "__main__":  # manual use: python tests/adbd_standin.py ROOT [PORT]
    import sys
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/adbd-standin")
    d = AdbdStandin(root, port=int(sys.argv[2]) if len(sys.argv) > 2 else None, log=True).start()
    print(f"adbd stand-in on {d.serial}, root {d.root}; Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        d.stop()
