"""ADBTransport: connect (with Transport.connect_with_retries), run, push, phone facts."""
from __future__ import annotations

import os
import posixpath
import re
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ...config import Device
from ...errors import RemoteCommandError, TransportError
from ..base import PutProgress, Transport
from ..streams import kill_local_group
from .process import ADBProcess
from .tool import _HOSTPORT, INSTALL_HINT, find_adb, is_tcp_serial, parse_devices

class ADBTransport(Transport):
    """See the module docstring."""

    def __init__(self, device: Device) -> None:
        super().__init__(device)
        if not device.serial:
            raise TransportError(device.name, "no serial configured", hint="set serial: to the output of `adb devices` or HOST:PORT")
        self.serial: str = device.serial
        self.adb: Optional[str] = None
        self.features: List[str] = []
        self._props: Optional[Dict[str, str]] = None
        self._push_proc: Optional[subprocess.Popen] = None

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
            raise TransportError(self.device.name, f"`adb {' '.join(args[:3])}` did not answer within {timeout:g} s",
                       retryable=True, hint="is the adb server hung? try `adb kill-server`")
        except OSError as e:
            raise TransportError(self.device.name, f"cannot run {cmd[0]}: {e.strerror}", hint=INSTALL_HINT)

    def _server_where(self) -> str:
        return f"{self.device.adb_host or '127.0.0.1'}:{self.device.adb_port or os.environ.get('ANDROID_ADB_SERVER_PORT', 5037)}"

    def devices(self) -> Dict[str, str]:
        """{serial: state} as the adb server sees them (starts the server if needed)."""
        res = self.adb_run(["devices"], timeout=max(30.0, self.device.connect_timeout_s))
        if res.returncode != 0:
            text = (res.stderr or res.stdout).strip().splitlines()
            raise TransportError(self.device.name, f"adb server at {self._server_where()} not usable: "
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
        self.connect_with_retries(self._connect_once)

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
                raise TransportError(d.name, f"adb connect {self.serial} failed: {connect_out.splitlines()[-1]}"
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
                raise TransportError(d.name, f"no such serial {self.serial!r}: adb sees {others}"
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
            raise TransportError(self.device.name, f"nothing listens at {self.serial} (connection refused)", retryable=True,
                       hint="turn on wireless debugging on the phone (or `adb tcpip 5555` over USB"
                            " first) and check the port")
        except OSError as e:
            raise TransportError(self.device.name, f"cannot reach {self.serial}: {e.strerror or e}", retryable=True,
                       hint="is the phone on this network? (same wifi, no client isolation)")

    def _state_error(self, st: str) -> TransportError:
        d = self.device
        if st == "unauthorized":
            return TransportError(d.name, f"phone {self.serial} is unauthorized: this computer's adb key was not accepted",
                        hint="unlock the phone and accept the 'Allow USB debugging?' RSA key prompt"
                             " (tick 'Always allow from this computer'); if no prompt shows, revoke USB"
                             " debugging authorizations in Developer options and replug")
        if st in ("offline", "connecting", "authorizing"):
            return TransportError(d.name, f"phone {self.serial} is {st}", retryable=True,
                        hint="replug the USB cable (or re-run `adb connect`), check that USB debugging"
                             " is still enabled on the phone; `adb kill-server` if it persists")
        if st == "no":  # "no permissions"
            return TransportError(d.name, f"no permission to open the USB device {self.serial}",
                        hint="add a udev rule for the phone (Debian: apt-get install android-sdk-platform-tools-common)"
                             " and replug")
        return TransportError(d.name, f"phone {self.serial} is in state {st!r}, not a booted Android",
                    hint="reboot the phone into Android (`adb reboot`)")

    def _check_features(self) -> None:
        res = self.adb_run(["-s", self.serial, "features"], timeout=15)
        if res.returncode != 0:
            return  # very old adb client without `adb features`: assume the best
        self.features = [f.strip() for f in res.stdout.split() if f.strip()]
        if self.features and "shell_v2" not in self.features:
            raise TransportError(self.device.name, f"phone {self.serial} does not speak the adb shell v2 protocol"
                       " (no exit codes, no stdin EOF)", hint="edge-bench needs Android 7.0 or newer")

    def close(self) -> None:
        pass  # every command is its own adb client process; the adb server stays up

    def start(self, argv: Sequence[str], stdin: Optional[bytes] = None,
              env: Optional[dict] = None, keep_stdin_open: bool = False) -> ADBProcess:
        if self.adb is None:
            self.connect()
        return ADBProcess(self, argv, stdin, env, keep_stdin_open)

    def interrupt(self) -> None:
        """Stop a push in progress: the `adb push` client is killed (put() then removes the
        partial file and raises PushCancelled)."""
        super().interrupt()
        proc = self._push_proc
        if proc is not None:
            kill_local_group(proc, wait_s=0)

    def _push(self, local: Path, tmp: str) -> subprocess.CompletedProcess:
        """`adb push LOCAL TMP` in a client process interrupt() can kill."""
        timeout = max(60.0, self.device.timeout_s)
        cmd = self.adb_cmd("-s", self.serial, "push", str(local), tmp)
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, errors="replace",
                                    start_new_session=True)
        except OSError as e:
            raise TransportError(self.device.name, f"cannot run {cmd[0]}: {e.strerror}", hint=INSTALL_HINT)
        self._push_proc = proc
        try:
            if self.stop.is_set():       # interrupt() came before the client was known
                kill_local_group(proc, wait_s=0)
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_local_group(proc)
            raise TransportError(self.device.name, f"`adb push {local.name}` did not finish within"
                                 f" {timeout:g} s", retryable=True,
                                 hint="is the adb server hung? try `adb kill-server`")
        finally:
            self._push_proc = None
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def put(self, local: Path, remote: str, progress: Optional[PutProgress] = None) -> None:
        """`adb push` (its own progress is not machine-readable: `progress` hears the end)."""
        local = Path(local)
        size = local.stat().st_size
        self.check_stop(local.name)
        tmp = f"{remote}.tmp-{secrets.token_hex(4)}"
        res = self._push(local, tmp)
        if self.stop.is_set():
            self.run(["rm", "-f", "--", tmp], timeout=30)
            self.check_stop(local.name)
        if res.returncode != 0:
            tail = " | ".join((res.stderr + res.stdout).strip().splitlines()[-3:])
            st = self.state()
            if st != "device":
                raise TransportError(self.device.name, f"push of {local.name} failed, phone is {st or 'gone'}: {tail}",
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
        if progress is not None:
            progress(size, size)

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
