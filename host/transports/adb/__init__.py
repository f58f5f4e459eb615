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

Modules: tool.py (which adb, `adb devices`), process.py (the script, the streaming process, the
remote kill), transport.py (connect with Transport.connect_with_retries, push, phone facts).
"""
from __future__ import annotations

from .process import ADBProcess, build_script, kill_tree_script
from .tool import INSTALL_HINT, bundled_adb, find_adb, is_tcp_serial, parse_devices
from .transport import ADBTransport

__all__ = ["ADBTransport", "ADBProcess", "find_adb", "bundled_adb", "build_script",
           "kill_tree_script", "parse_devices", "is_tcp_serial", "INSTALL_HINT"]
