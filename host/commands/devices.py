"""edge-bench devices: list the fleet; --check probes every device in parallel."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

from ..app.devices import (append_known_host, device_rows, known_hosts_entries,
                           remove_known_hosts_lines)

HELP = """\
List the devices of devices.yaml (plus `local`). With --check, connect to each one (in parallel),
push the agent if needed and report python, TFLite runtime, agent version, free disk, CPU
governor, temperature and throttling.

`edge-bench devices trust NAME` shows the SSH host key a device presents and, once you confirm
its fingerprint, adds it to that device's known_hosts file.
"""

TRUST_HELP = """\
Connect to an SSH device, show the host key it presents (type and SHA256 fingerprint) and, when
you confirm (or with --yes), append it to the device's known_hosts file (known_hosts: in
devices.yaml, else ~/.ssh/known_hosts; created if missing).

Compare the fingerprint with the one the device itself reports before you accept it:
    ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub      (on the device's console)

If known_hosts already has a DIFFERENT key for the device (of any type: a device that used to
present ed25519 and now offers ecdsa counts as changed), both fingerprints are shown and nothing
is written unless --replace is given: a changed key means a reinstalled device or a man in the
middle.

exit codes: 0 trusted (or already trusted), 1 not trusted (declined, or changed key without
--replace), 2 usage or config error, 3 device unreachable
"""


#: what a user with no devices.yaml reads under the listing
EXAMPLE_HINT = ("to add boards and phones, copy devices.example.yaml (in the repository) to"
                " ./devices.yaml or ~/.config/edge-bench/devices.yaml and edit it")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("devices", help="list the fleet; --check probes health; trust NAME",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=None, help="devices.yaml to use")
    p.add_argument("--devices", "-d", default="all", help="names / tag:TAG to show (default: all)")
    p.add_argument("--check", action="store_true", help="probe each device")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    t = actions.add_parser("trust", help="show a device's SSH host key and add it to known_hosts",
                           description=TRUST_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("name", metavar="NAME", help="the device (an ssh device of devices.yaml)")
    # SUPPRESS: `devices --config F trust X` and `devices trust X --config F` both work
    t.add_argument("--config", "-c", default=argparse.SUPPRESS, help="devices.yaml to use")
    t.add_argument("--yes", "-y", action="store_true",
                   help="do not ask: trust the presented key (check its fingerprint first!)")
    t.add_argument("--replace", action="store_true",
                   help="the device was reinstalled: replace a changed key for it")
    t.set_defaults(func=trust)


def run(args: argparse.Namespace) -> int:
    rows, path, ok = device_rows(args.config, args.devices, args.check)
    code = 0 if ok else 3
    if args.json:
        json.dump(rows, sys.stdout, indent=2, default=str)
        print()
        return code
    _print(rows, args.check, path)
    return code


def _print(rows: List[Dict[str, Any]], check: bool, path: Any) -> None:
    from ..render.devices import print_devices
    title = f"devices ({Path(path).resolve()})" if path else "devices (no devices.yaml: only local)"
    tty = sys.stdout.isatty()
    if not tty:
        print(f"devices from {Path(path).resolve()}" if path else title, file=sys.stderr)
    print_devices(rows, check, title, sys.stdout, tty, notes=() if path else (EXAMPLE_HINT,))



# ---------------------------------------------------------------------------- trust
def trust(args: argparse.Namespace) -> int:
    from ..config import find_config, load_fleet
    from ..errors import UsageError
    from ..transports.ssh import known_hosts_line, resolve_target, scan_host_key
    from ..transports.ssh.hostkeys import is_revoked

    fleet = load_fleet(find_config(getattr(args, "config", None)))
    if args.name not in fleet.devices:
        fleet.select(args.name)   # raises UsageError naming the known devices
    device = fleet.devices[args.name]
    if device.transport != "ssh":
        raise UsageError(f"device {device.name!r} uses transport {device.transport}: only ssh"
                         " devices have host keys to trust")
    target = resolve_target(device)
    name, key = scan_host_key(device)
    line = known_hosts_line(name, key)
    fp = key.fingerprint
    print(f"{device.name} ({target.hostname}:{target.port}) presents this host key:")
    print(f"  {key.get_name()} {fp}")
    if device.host_key:
        print(f"devices.yaml pins host_key for {device.name} ({device.source}); known_hosts is not"
              " used for it. If this is the right key, set")
        print(f"  host_key: {key.get_name()} {key.get_base64()}")
        pinned = device.host_key.strip()
        return 0 if pinned in (fp, f"{key.get_name()} {key.get_base64()}") else 1
    kh = Path(target.known_hosts[0])
    if is_revoked(target.known_hosts, key):
        print("REVOKED: known_hosts marks this key @revoked; refusing to trust it (ask the"
              " device's owner for its new key)", file=sys.stderr)
        return 1
    existing = known_hosts_entries(kh, name)
    same = [e for e in existing if e[1] == key.get_name() and e[2] == key.get_base64()]
    if same:
        print(f"already trusted: {kh} line {same[0][0]} has this key for {name}")
        return 0
    # any other key for this host, of any type: a server that used to present ed25519 and now
    # offers only ecdsa is as suspicious as a new ed25519 key
    changed = existing
    if changed:
        nums = ", ".join(str(e[0]) for e in changed)
        print(f"WARNING: HOST KEY CHANGED: {kh} line {nums} has a different key for {name}."
              " The device was reinstalled, or someone is in the middle.", file=sys.stderr)
        for num, ktype, b64 in changed:
            print(f"  known (line {num}): {ktype} {_fingerprint(b64)}", file=sys.stderr)
        print(f"  presented now:  {key.get_name()} {fp}", file=sys.stderr)
        if not args.replace:
            print(f"not trusted. If you are sure the device was reinstalled, remove line {nums}"
                  f" of {kh} (`ssh-keygen -R '{name}' -f {kh}`), or run again with --replace",
                  file=sys.stderr)
            return 1
    if not args.yes:
        try:
            answer = input(f"trust this key and add it to {kh}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not trusted (nothing written); pass --yes to accept without asking",
                  file=sys.stderr)
            return 1
    if changed:
        drop = {e[0] for e in changed}
        remove_known_hosts_lines(kh, drop)
        print(f"removed the old key (line {', '.join(str(n) for n in sorted(drop))}) from {kh}")
    append_known_host(kh, line)
    print(f"added to {kh}: {name} {key.get_name()} {fp}")
    return 0


def _fingerprint(b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a known_hosts key (base64 blob)."""
    import base64
    import binascii
    import hashlib
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return "(unreadable key)"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")

