"""edge-bench deploy: prepare devices (push the agent; --bootstrap installs a runtime), then probe."""
from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List

from ..render.visible import visible


HELP = """\
Prepare devices for benchmarking, in parallel:
  1. push the agent (content-addressed: an unchanged agent is never pushed twice),
  2. with --bootstrap, push and run the device's bootstrap script (its output is streamed):
     deploy/bootstrap_pi.sh (Raspberry Pi OS 64-bit) or deploy/bootstrap_jetson.sh (JetPack 5/6),
     chosen by the device's `bootstrap:` setting (pi, jetson, none, or a script path on this
     host) or else by its tags (pi / raspberrypi / rpi, jetson). Android: see
     deploy/android-termux.md.
  3. probe the device (python, TFLite runtime, agent version) and report what was done.
Ctrl-C (or SIGTERM) stops every device at once: a push in progress is removed from the device,
a running bootstrap is killed there, and the report says what each device got to (exit 130 /
143). Deploying again finishes the job: what is already there is not pushed twice.
"""

EXAMPLES = """\
examples:
  edge-bench deploy --devices pi4
  edge-bench deploy --devices tag:jetson --bootstrap
"""

def add_parser(sub: Any) -> None:
    p = sub.add_parser("deploy", help="prepare devices: push the agent, --bootstrap a runtime",
                       description=HELP, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", "-d", default=None,
                   help="device names and tag:TAG, comma separated (default: local)")
    p.add_argument("--config", "-c", default=None, help="devices.yaml to use")
    p.add_argument("--bootstrap", action="store_true",
                   help="also run the device's bootstrap script (installs numpy + a TFLite"
                        " runtime in a venv)")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    p.set_defaults(func=run)


class _Printer:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.lock = threading.Lock()

    def line(self, device: str, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            print(visible(f"[{device}] {text}"), flush=True)


def run(args: argparse.Namespace) -> int:
    from ..app.deploy import deploy_all
    from ..config import find_config, load_fleet
    devices = load_fleet(find_config(args.config)).select(args.devices)
    deployed = deploy_all(devices, args.bootstrap, _Printer(quiet=args.json).line)
    reports = deployed.reports
    if args.json:
        json.dump(reports, sys.stdout, indent=2, default=str)
        print()
    else:
        for rep in reports:
            for line in summary(rep):
                print(visible(f"{rep['device']}: {line}"))
    if deployed.signal is not None:
        print("edge-bench: interrupted", file=sys.stderr)
        return 128 + deployed.signal   # 130 for Ctrl-C, 143 for SIGTERM, as `run` does
    return 0 if all(r["ok"] for r in reports) else 3


def summary(rep: Dict[str, Any]) -> List[str]:
    """What deploy did on one device, one line per step."""
    lines: List[str] = []
    agent = rep.get("agent")
    if agent:
        name = agent["path"].rsplit("/", 1)[-1]
        if agent["pushed"]:
            lines.append(f"agent {name} pushed ({agent['bytes_pushed']:,} bytes)")
        else:
            lines.append(f"agent {name} already present ({agent['bytes']:,} bytes, nothing pushed)")
    boot = rep.get("bootstrap")
    if boot and boot.get("script"):
        if boot.get("interrupted"):
            lines.append(f"bootstrap {Path(boot['script']).name}: stopped after"
                         f" {boot['seconds']:.1f} s (interrupted)")
        else:
            state = "ok" if boot["exit_code"] == 0 else f"FAILED ({boot['error']})"
            lines.append(f"bootstrap {Path(boot['script']).name}: {state} in {boot['seconds']:.1f} s")
    elif boot and boot.get("note"):
        lines.append(boot["note"])
    pr = rep.get("probe")
    if pr:
        if pr.get("runtime"):
            lines.append(f"runtime {pr['runtime']} (python {pr.get('python')}, numpy"
                         f" {pr.get('numpy')}, agent {pr.get('agent_version')})")
        elif pr.get("ok") is False:
            lines.append(f"no runtime: {pr.get('error')}")
    if rep.get("python_hint"):
        lines.append(rep["python_hint"])
    if rep.get("interrupted"):
        lines.append(rep["error"])
    elif rep.get("error") and not (pr and pr.get("error") == rep["error"]) and \
            not (boot and boot.get("error") == rep["error"]):
        lines.append(f"FAILED: {rep['error']}")
    lines.append("ready" if rep["ok"] else "NOT ready")
    return lines
