"""Android phones over adb (USB serial or `adb connect HOST:PORT`), through the adb CLI.

Why the CLI and not adbutils' client library: the `adb` binary is the one component every
Android lab already trusts and debugs with, it starts and talks to the adb server itself, and it
implements the shell v2 protocol (separate stdout/stderr, exit status, stdin close) and sync
(push with the device-side mkdir) exactly as the device expects. adbutils' library would have us
re-implement shell v2 framing and sync on raw sockets. The binary is found in this order:
`adb_path:` from devices.yaml, `adb` on PATH, then the one adbutils bundles (pip install adbutils).
The server is the one at `adb_host:`/`adb_port:` (flags -H/-P), else adb's default (5037, or
ANDROID_ADB_SERVER_PORT); it is started on demand by the first adb command, as adb always does.

How a command runs: `adb -s SERIAL shell SCRIPT`, where SCRIPT is ONE string built here with every
argument quoted by shlex.quote (Android's shell is mksh, toybox underneath: POSIX single quotes
work; `adb shell` only joins its arguments with spaces, so quoting is ours to do):

    echo __edge_bench_pid_NONCE=$$ >&2; [export K=V;] [taskset MASK] 'argv0' 'argv1' ...;
    r=$?; echo __edge_bench_rc_NONCE=$r >&2; exit $r

* the remote shell's pid comes back on stderr first: cancel() kills that shell and every
  descendant (walked through /proc/*/stat on the device, which toybox and any Linux have) from a
  second `adb shell`, then the local adb client.
* the exit status comes back twice: through shell v2 (adb's own exit code) and as the rc marker.
  The marker is what proves the command FINISHED: when the phone drops off mid-command, adb
  1.0.41 from Debian (29.0.6) exits 0 and newer adb exits 255 -- neither is distinguishable from
  a real exit status. No marker, no cancel => TransportError (the device went offline).
* marker lines are removed from the stderr the caller sees.

put(): `adb push` to `REMOTE.tmp-NONCE`, then `mv -f` onto REMOTE (atomic on one filesystem: a
half-pushed file never carries a content-addressed name). sha256 is verified by the caller with
`sha256sum` on the device (toybox has it), see Transport.sha256_many.

Android 7+ is required (the shell_v2 feature: exit codes and stdin EOF); connect() says so.
"""
from __future__ import annotations

import importlib.util
import os
import posixpath
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from ..config import Device
from ..errors import RemoteCommandError, TransportError
from .base import RemoteProcess, Transport
from .streams import LineQueue, TailBuffer, kill_local_group

_PID_MARK = "__edge_bench_pid_"
_RC_MARK = "__edge_bench_rc_"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$")

INSTALL_HINT = ("install adb: `apt-get install adb` (Debian/Ubuntu), `pip install adbutils` (bundles"
                " an adb binary), or Android SDK platform-tools; or set adb_path: in devices.yaml")


def _err(device: Device, msg: str, *, retryable: bool = False, hint: Optional[str] = None) -> TransportError:
    e = TransportError(device.name, msg, hint=hint)
    e.retryable = retryable
    return e


def bundled_adb() -> Optional[str]:
    """The adb binary that adbutils ships, if adbutils is installed (found without importing it)."""
    try:
        spec = importlib.util.find_spec("adbutils")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        for name in ("adb", "adb.exe"):
            p = Path(loc) / "binaries" / name
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    return None


def find_adb(device: Device) -> str:
    """adb_path from devices.yaml, else `adb` on PATH, else adbutils' bundled binary."""
    if device.adb_path:
        p = Path(device.adb_path).expanduser()
        if not p.is_file():
            raise _err(device, f"adb_path {device.adb_path} does not exist", hint=INSTALL_HINT)
        if not os.access(p, os.X_OK):
            raise _err(device, f"adb_path {device.adb_path} is not executable",
                       hint=f"chmod +x {device.adb_path}")
        return str(p)
    found = shutil.which("adb") or bundled_adb()
    if not found:
        raise _err(device, "adb is not installed (no adb_path, no `adb` on PATH, no adbutils)",
                   hint=INSTALL_HINT)
    return found


def is_tcp_serial(serial: str) -> bool:
    """HOST:PORT (adb over TCP/wifi), as opposed to a USB serial number."""
    m = _HOSTPORT.match(serial)
    return bool(m) and 0 < int(m.group(2)) < 65536


def parse_devices(text: str) -> Dict[str, str]:
    """`adb devices` output -> {serial: state}."""
    out: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) >= 2:
            out[parts[0].strip()] = parts[1].strip().split()[0] if parts[1].strip() else ""
    return out


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

    def __init__(self, owner: "ADBTransport", argv: Sequence[str], stdin: Optional[bytes],
                 env: Optional[Dict[str, str]]) -> None:
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
        self._lines = LineQueue()
        self._lost: Optional[TransportError] = None
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise _err(self.device, f"cannot start {owner.adb}: {e.strerror}", hint=INSTALL_HINT)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._t_out = threading.Thread(target=self._lines.feed_bytes_stream,
                                       args=(self.proc.stdout.read1,), daemon=True)
        self._t_err = threading.Thread(target=self._pump_stderr, daemon=True)
        self._t_out.start()
        self._t_err.start()
        threading.Thread(target=self._write_stdin, args=(stdin,), daemon=True).start()

    # --- pumps ---------------------------------------------------------------------------------
    def _write_stdin(self, data: Optional[bytes]) -> None:
        assert self.proc.stdin is not None
        try:
            if data:
                self.proc.stdin.write(data)
            self.proc.stdin.close()   # adb sends shell v2 close-stdin: the command sees EOF
        except OSError:
            pass

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
            raise _err(self.device, f"no output from `{self.argv[0]}` for {seconds:.0f} s"
                       " (stalled); remote process killed", retryable=False)
        yield from self._lines.iter(idle_timeout, idle)
        self._settle(30.0)
        if not self.cancelled and self.remote_rc is None:
            raise self._lost_error()

    def wait(self, timeout: Optional[float] = None) -> int:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise _err(self.device, f"`{self.argv[0]}` did not exit within {timeout} s; killed")
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
            self._lost = _err(self.device, msg, retryable=True,
                              hint="check the USB cable / wifi and `adb devices`; the run on this"
                                   " device is marked failed, other devices go on")
        return self._lost


class ADBTransport(Transport):
    """See the module docstring."""

    def __init__(self, device: Device) -> None:
        super().__init__(device)
        if not device.serial:
            raise _err(device, "no serial configured", hint="set serial: to the output of `adb devices` or HOST:PORT")
        self.serial: str = device.serial
        self.adb: Optional[str] = None
        self.features: List[str] = []
        self._props: Optional[Dict[str, str]] = None

    # --- adb plumbing --------------------------------------------------------------------------
    def adb_cmd(self, *args: str) -> List[str]:
        if self.adb is None:
            self.adb = find_adb(self.device)
        cmd = [self.adb]
        if self.device.adb_host:
            cmd += ["-H", self.device.adb_host]
        if self.device.adb_port:
            cmd += ["-P", str(self.device.adb_port)]
        return cmd + list(args)

    def adb_run(self, args: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess:
        cmd = self.adb_cmd(*args)
        try:
            return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=timeout, text=True,
                                  errors="replace")
        except subprocess.TimeoutExpired:
            raise _err(self.device, f"`adb {' '.join(args[:3])}` did not answer within {timeout:g} s",
                       retryable=True, hint="is the adb server hung? try `adb kill-server`")
        except OSError as e:
            raise _err(self.device, f"cannot run {cmd[0]}: {e.strerror}", hint=INSTALL_HINT)

    def _server_where(self) -> str:
        return f"{self.device.adb_host or '127.0.0.1'}:{self.device.adb_port or os.environ.get('ANDROID_ADB_SERVER_PORT', 5037)}"

    def devices(self) -> Dict[str, str]:
        """{serial: state} as the adb server sees them (starts the server if needed)."""
        res = self.adb_run(["devices"], timeout=max(30.0, self.device.connect_timeout_s))
        if res.returncode != 0:
            text = (res.stderr or res.stdout).strip().splitlines()
            raise _err(self.device, f"adb server at {self._server_where()} not usable: "
                       + (text[-1] if text else f"exit {res.returncode}"), retryable=True,
                       hint="start it with `adb start-server` (or check adb_host/adb_port)")
        return parse_devices(res.stdout)

    def state(self) -> Optional[str]:
        """The device's state now (device, offline, unauthorized, ...), None if not listed."""
        try:
            return self.devices().get(self.serial)
        except TransportError:
            return None

    # --- Transport -----------------------------------------------------------------------------
    def connect(self) -> None:
        self.adb = find_adb(self.device)
        attempts = 1 + max(0, self.device.retries)
        delay = self.device.retry_backoff_s
        for i in range(attempts):
            try:
                self._connect_once()
                return
            except TransportError as e:
                if not getattr(e, "retryable", False) or i == attempts - 1:
                    raise
                time.sleep(delay)
                delay *= 2

    def _connect_once(self) -> None:
        d = self.device
        tcp = is_tcp_serial(self.serial)
        connect_out = ""
        if tcp and self.state() != "device":
            self._probe_tcp()
            res = self.adb_run(["connect", self.serial], timeout=d.connect_timeout_s + 15)
            connect_out = (res.stdout + res.stderr).strip()
            low = connect_out.lower()
            if any(s in low for s in ("cannot connect", "failed to connect", "unable to connect",
                                      "cannot resolve", "no route", "connection refused")):
                raise _err(d, f"adb connect {self.serial} failed: {connect_out.splitlines()[-1]}"
                           " (the port accepts TCP connections but no adb handshake completed)",
                           retryable=True,
                           hint="is that port really the phone's adbd? toggle wireless debugging on the"
                                " phone (or `adb tcpip 5555` over USB again) and retry")
        deadline = time.monotonic() + d.connect_timeout_s
        grace_missing = time.monotonic() + min(2.0, d.connect_timeout_s)
        while True:
            seen = self.devices()
            st = seen.get(self.serial)
            now = time.monotonic()
            if st == "device":
                break
            if st is None and now >= grace_missing:
                others = ", ".join(f"{s} ({v})" for s, v in sorted(seen.items())) or "no devices"
                hint = ("check `adb devices`; on the phone enable Developer options > USB debugging"
                        " and plug it in; for adb over TCP set serial: HOST:PORT")
                raise _err(d, f"no such serial {self.serial!r}: adb sees {others}"
                           + (f" (adb connect said: {connect_out})" if connect_out else ""),
                           retryable=tcp, hint=hint)
            if now >= deadline:
                raise self._state_error(st or "missing")
            time.sleep(0.2)
        self._check_features()

    def _probe_tcp(self) -> None:
        """For HOST:PORT serials and a local adb server: is anything listening at all?"""
        if self.device.adb_host not in (None, "", "localhost", "127.0.0.1", "::1"):
            return  # the server runs elsewhere; only it can reach the phone
        m = _HOSTPORT.match(self.serial)
        assert m
        host, port = m.group(1).strip("[]"), int(m.group(2))
        try:
            socket.create_connection((host, port), timeout=min(5.0, self.device.connect_timeout_s)).close()
        except ConnectionRefusedError:
            raise _err(self.device, f"nothing listens at {self.serial} (connection refused)", retryable=True,
                       hint="turn on wireless debugging on the phone (or `adb tcpip 5555` over USB"
                            " first) and check the port")
        except OSError as e:
            raise _err(self.device, f"cannot reach {self.serial}: {e.strerror or e}", retryable=True,
                       hint="is the phone on this network? (same wifi, no client isolation)")

    def _state_error(self, st: str) -> TransportError:
        d = self.device
        if st == "unauthorized":
            return _err(d, f"phone {self.serial} is unauthorized: this computer's adb key was not accepted",
                        hint="unlock the phone and accept the 'Allow USB debugging?' RSA key prompt"
                             " (tick 'Always allow from this computer'); if no prompt shows, revoke USB"
                             " debugging authorizations in Developer options and replug")
        if st in ("offline", "connecting", "authorizing"):
            return _err(d, f"phone {self.serial} is {st}", retryable=True,
                        hint="replug the USB cable (or re-run `adb connect`), check that USB debugging"
                             " is still enabled on the phone; `adb kill-server` if it persists")
        if st == "no":  # "no permissions"
            return _err(d, f"no permission to open the USB device {self.serial}",
                        hint="add a udev rule for the phone (Debian: apt-get install android-sdk-platform-tools-common)"
                             " and replug")
        return _err(d, f"phone {self.serial} is in state {st!r}, not a booted Android",
                    hint="reboot the phone into Android (`adb reboot`)")

    def _check_features(self) -> None:
        res = self.adb_run(["-s", self.serial, "features"], timeout=15)
        if res.returncode != 0:
            return  # very old adb client without `adb features`: assume the best
        self.features = [f.strip() for f in res.stdout.split() if f.strip()]
        if self.features and "shell_v2" not in self.features:
            raise _err(self.device, f"phone {self.serial} does not speak the adb shell v2 protocol"
                       " (no exit codes, no stdin EOF)", hint="edge-bench needs Android 7.0 or newer")

    def close(self) -> None:
        pass  # every command is its own adb client process; the adb server stays up

    def start(self, argv: Sequence[str], stdin: Optional[bytes] = None,
              env: Optional[dict] = None) -> ADBProcess:
        if self.adb is None:
            self.connect()
        return ADBProcess(self, argv, stdin, env)

    def put(self, local: Path, remote: str) -> None:
        local = Path(local)
        size = local.stat().st_size
        tmp = f"{remote}.tmp-{secrets.token_hex(4)}"
        res = self.adb_run(["-s", self.serial, "push", str(local), tmp],
                           timeout=max(60.0, self.device.timeout_s))
        if res.returncode != 0:
            tail = " | ".join((res.stderr + res.stdout).strip().splitlines()[-3:])
            st = self.state()
            if st != "device":
                raise _err(self.device, f"push of {local.name} failed, phone is {st or 'gone'}: {tail}",
                           retryable=True, hint="check the cable / wifi and `adb devices`")
            raise RemoteCommandError(self.device.name, f"adb push {local.name} {tmp}", res.returncode,
                                     tail, hint="is the workdir writable and is there free space?"
                                                " (/data/local/tmp is; /sdcard is noexec)")
        done = self.run(["mv", "-f", tmp, remote], timeout=60)
        if done.exit_code != 0:
            self.run(["rm", "-f", tmp], timeout=30)
            raise RemoteCommandError(self.device.name, f"mv -f {tmp} {remote}", done.exit_code,
                                     done.stderr)
        self.bytes_pushed += size

    def resolve_workdir(self, workdir: str) -> str:
        """Absolute POSIX path on the phone: `~` is the shell's $HOME, relative = /data/local/tmp/."""
        w = workdir.strip()
        if w.startswith("~"):
            home = self.run(["sh", "-c", 'echo "$HOME"'], timeout=30).stdout.strip() or "/data/local/tmp"
            w = home.rstrip("/") + w[1:]
        if not w.startswith("/"):
            w = posixpath.join("/data/local/tmp", w)
        return posixpath.normpath(w)

    # --- phone facts ---------------------------------------------------------------------------
    def getprops(self) -> Dict[str, str]:
        """All system properties (`getprop` listing), cached per connection."""
        if self._props is None:
            res = self.run(["getprop"], timeout=30)
            props: Dict[str, str] = {}
            for line in res.stdout.splitlines():
                m = re.match(r"^\[(.*?)\]: \[(.*)\]\s*$", line.strip())
                if m:
                    props[m.group(1)] = m.group(2)
            self._props = props
        return self._props

    def abilist(self) -> List[str]:
        p = self.getprops()
        raw = p.get("ro.product.cpu.abilist") or p.get("ro.product.cpu.abi") or ""
        return [a.strip() for a in raw.split(",") if a.strip()]

    def facts(self) -> Dict[str, object]:
        """Model, board, Android version, ABIs, governor, temperatures (best effort)."""
        p = self.getprops()
        script = (
            "g=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null); echo \"gov=$g\"; "
            "f=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq 2>/dev/null); echo \"cur=$f\"; "
            "m=$(cat /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq 2>/dev/null); echo \"max=$m\"; "
            "for z in /sys/class/thermal/thermal_zone*; do [ -r \"$z/temp\" ] || continue; "
            "echo \"tz=$(cat $z/type 2>/dev/null)=$(cat $z/temp 2>/dev/null)\"; done; "
            "echo \"cores=$(ls -d /sys/devices/system/cpu/cpu[0-9]* 2>/dev/null | wc -l)\"; "
            "echo \"kernel=$(uname -r)\"; echo \"machine=$(uname -m)\""
        )
        res = self.run(["sh", "-c", script], timeout=30)
        kv: Dict[str, str] = {}
        zones: Dict[str, float] = {}
        for line in res.stdout.splitlines():
            if line.startswith("tz="):
                _, name, val = line.split("=", 2)
                try:
                    t = float(val)
                    zones[name] = t / 1000.0 if abs(t) > 200 else t
                except ValueError:
                    pass
            elif "=" in line:
                k, v = line.split("=", 1)
                kv[k] = v.strip()

        def num(s: Optional[str]) -> Optional[int]:
            return int(s) if s and s.isdigit() else None

        return {
            "model": p.get("ro.product.model"), "manufacturer": p.get("ro.product.manufacturer"),
            "board": p.get("ro.board.platform") or p.get("ro.hardware"),
            "android": p.get("ro.build.version.release"), "sdk": num(p.get("ro.build.version.sdk")),
            "abi": p.get("ro.product.cpu.abi"), "abilist": self.abilist(),
            "os": f"Android {p.get('ro.build.version.release')}" if p.get("ro.build.version.release") else None,
            "governor": kv.get("gov") or None, "cur_freq_khz": num(kv.get("cur")),
            "max_freq_khz": num(kv.get("max")), "cores": num(kv.get("cores")),
            "kernel": kv.get("kernel") or None, "machine": kv.get("machine") or None,
            "thermal_zones": zones, "temp_c": max(zones.values()) if zones else None,
        }


__all__ = ["ADBTransport", "ADBProcess", "find_adb", "bundled_adb", "build_script",
           "kill_tree_script", "parse_devices", "is_tcp_serial", "INSTALL_HINT"]
