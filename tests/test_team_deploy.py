"""deploy/edge-bench-worker@.service: a unit systemd accepts, whose ExecStart our CLI parses."""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_bench.cli import build_parser

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "edge-bench-worker@.service"


def test_worker_unit_verifies_and_runs_the_worker_command(tmp_path: Path) -> None:
    text = UNIT.read_text()
    (line,) = [x for x in text.splitlines() if x.startswith("ExecStart=")]
    argv = shlex.split(line.split("=", 1)[1].replace("%i", "lab-a"))
    assert argv[:2] == ["/usr/bin/env", "edge-bench"]
    args = build_parser().parse_args(argv[2:])
    assert args.command == "worker" and args.lab == "lab-a" and args.db is None  # EDGE_BENCH_DB
    assert "PGPASSWORD" not in text.replace("# ", "") and "postgresql://" not in "\n".join(
        x for x in text.splitlines() if not x.startswith("#"))  # no secret in the unit
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    unit = tmp_path / "edge-bench-worker@lab-a.service"
    unit.write_text(text)
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "edge-bench-worker" not in p.stdout + p.stderr, p.stdout + p.stderr


def test_lab_per_device_in_devices_yaml(tmp_path: Path) -> None:
    from edge_bench.config import load_fleet
    from edge_bench.errors import ConfigError
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndefaults:\n  lab: lab-a\ndevices:\n"
                   "  pi: {transport: local}\n  phone: {transport: local, lab: lab-b}\n")
    fleet = load_fleet(cfg)
    assert fleet.devices["pi"].lab == "lab-a" and fleet.devices["phone"].lab == "lab-b"
    assert fleet.devices["local"].lab == "default"
    cfg.write_text("version: 1\ndevices:\n  pi:\n    transport: local\n    lab: 'a lab; rm -rf'\n")
    with pytest.raises(ConfigError, match=r"devices.yaml:5: field devices.pi.lab is"):
        load_fleet(cfg)
