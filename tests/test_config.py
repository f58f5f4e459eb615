"""devices.yaml validation: every bad file fails with the file, the line and the field."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge_bench.config import find_config, load_fleet
from edge_bench.errors import ConfigError, UsageError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "devices.yaml"
    p.write_text(text)
    return p


def test_example_fleet_loads_with_all_transports() -> None:
    fleet = load_fleet(REPO / "devices.example.yaml", env={})
    assert {"local", "pi4", "jetson", "pixel7"} <= set(fleet.devices)
    pi = fleet.devices["pi4"]
    assert pi.transport == "ssh" and pi.port == 22 and pi.user == "pi"
    assert pi.python == ("/home/pi/edge-bench/venv/bin/python",)
    assert "arm64" in pi.tags
    assert fleet.devices["jetson"].workdir == "~/.cache/edge-bench"  # from defaults:
    assert fleet.devices["pixel7"].workdir == "/data/local/tmp/edge-bench"


def test_select_names_tags_and_errors() -> None:
    fleet = load_fleet(REPO / "devices.example.yaml", env={})
    assert [d.name for d in fleet.select("tag:arm64")] == ["pi4", "jetson", "pixel7"]
    assert [d.name for d in fleet.select("pi4,tag:pi,local")] == ["pi4", "local"]
    assert [d.name for d in fleet.select(None)] == ["local"]
    with pytest.raises(UsageError, match="unknown device 'pi5'.*pi4"):
        fleet.select("pi5")
    with pytest.raises(UsageError, match="no device has tag 'x86'"):
        fleet.select("tag:x86")


def test_no_file_means_local_only() -> None:
    fleet = load_fleet(None, env={})
    assert list(fleet.devices) == ["local"]


@pytest.mark.parametrize("text,pattern", [
    ("devices: {a: {transport: local}}\n", r":1: field 'version' is missing"),
    ("version: 2\ndevices: {a: {transport: local}}\n", r":1: field 'version' is 2"),
    ("version: 1\ndevices:\n  a:\n    transport: ssh\n", r":3: field devices.a.host is missing"),
    ("version: 1\ndevices:\n  a:\n    transport: carrier-pigeon\n",
     r":4: field devices.a.transport is 'carrier-pigeon'"),
    ("version: 1\ndevices:\n  a:\n    transport: ssh\n    host: h\n    prot: 22\n",
     r":6: unknown field devices.a.prot"),
    ("version: 1\ndevices:\n  a:\n    transport: ssh\n    host: h\n    port: twenty\n",
     r":6: field devices.a.port is 'twenty'"),
    ("version: 1\ndevices:\n  a:\n    transport: adb\n", r"devices.a.serial is missing"),
    ("version: 1\ndevices:\n  a: {transport: local\n", r"not valid YAML"),
    ("version: 1\ndevices: []\n", r"field 'devices' must be a non-empty mapping"),
    ("version: 1\ndefaults:\n  timeout_s: -1\ndevices: {a: {transport: local}}\n",
     r":3: field defaults.timeout_s is -1; expected a number > 0"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    tags: pi\n", r":5: field devices.a.tags"),
])
def test_bad_files_name_file_line_and_field(tmp_path: Path, text: str, pattern: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern) as ei:
        load_fleet(p, env={})
    assert str(p) in str(ei.value)


def test_env_layer_overrides_file_and_is_validated(tmp_path: Path) -> None:
    p = write(tmp_path, "version: 1\ndefaults: {timeout_s: 30}\ndevices: {a: {transport: local}}\n")
    assert load_fleet(p, env={}).devices["a"].timeout_s == 30
    assert load_fleet(p, env={"EDGE_BENCH_TIMEOUT_S": "99"}).devices["a"].timeout_s == 99
    with pytest.raises(ConfigError, match="EDGE_BENCH_TIMEOUT_S"):
        load_fleet(p, env={"EDGE_BENCH_TIMEOUT_S": "soon"})


def test_find_config_explicit_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such devices file"):
        find_config(str(tmp_path / "nope.yaml"))
