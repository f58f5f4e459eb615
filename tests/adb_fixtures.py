"""adb test fixtures: a REAL adb server (Debian's adb or the one adbutils bundles) on an isolated
port, and the adbd stand-in (tests/adbd_standin.py) as the phone.

Import the fixtures you use into the test module (conftest.py belongs to another part):

    from adb_fixtures import adb_server, adb_server_each, standin, make_adb_device, adb_binaries

    adb_server        (module)   -> AdbServer: one server (the first client of adb_binaries()) on a
                                    free port >= 5600, HOME in a temp dir (its adbkey lives there);
                                    never the default 5037.
    adb_server_each   (module, parametrized over every adb client found) -> AdbServer
    standin           (function) -> AdbdStandin on 127.0.0.1:<free port >= 5600>, root in tmp_path;
                                    disconnected from the server at teardown
    make_adb_device   (function) -> make(server, standin, **overrides) -> edge_bench Device:
                                    transport adb, serial = standin.serial, adb_path/adb_port =
                                    the server's, workdir = standin.workdir, retries=0,
                                    connect_timeout_s=5

Everything skips (with the reason) when no adb client is installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from conftest import missing_system

from adbd_standin import AdbdStandin, free_port_at_least


def adb_binaries() -> List[Tuple[str, str]]:
    """[(label, path)] of distinct adb clients on this machine: Debian's, adbutils' bundled."""
    from edge_bench.transports.adb import bundled_adb
    found: List[Tuple[str, str]] = []
    seen = set()
    for label, path in (("path", shutil.which("adb")), ("adbutils", bundled_adb())):
        if path and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            found.append((label, path))
    return found


def adb_version(path: str) -> str:
    try:
        out = subprocess.run([path, "version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = out.splitlines()
    return " / ".join(lines[:2]) if lines else "?"


@dataclass
class AdbServer:
    path: str
    port: int
    home: Path
    label: str = ""

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["HOME"] = str(self.home)
        env["ANDROID_USER_HOME"] = str(self.home / ".android")
        env.pop("ANDROID_SERIAL", None)
        env.pop("ANDROID_ADB_SERVER_PORT", None)
        env.pop("ADB_SERVER_SOCKET", None)
        return env

    def adb(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([self.path, "-P", str(self.port), *args], capture_output=True,
                              text=True, timeout=timeout, env=self.env())

    def start(self) -> "AdbServer":
        self.home.mkdir(parents=True, exist_ok=True)
        res = self.adb("start-server", timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"adb start-server failed: {res.stderr or res.stdout}")
        return self

    def stop(self) -> None:
        try:
            self.adb("kill-server", timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def devices(self) -> Dict[str, str]:
        from edge_bench.transports.adb import parse_devices
        return parse_devices(self.adb("devices").stdout)

    def connect(self, serial: str, wait_state: str = "device", timeout: float = 10) -> str:
        self.adb("connect", serial)
        deadline = time.monotonic() + timeout
        st = ""
        while time.monotonic() < deadline:
            st = self.devices().get(serial, "")
            if st == wait_state:
                break
            time.sleep(0.1)
        return st

    def disconnect(self, serial: str) -> None:
        try:
            self.adb("disconnect", serial, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass


def _start_server(tmp_factory: pytest.TempPathFactory, label: str, path: str) -> AdbServer:
    home = tmp_factory.mktemp(f"adbhome-{label}")
    return AdbServer(path=path, port=free_port_at_least(5600), home=home, label=label).start()


@pytest.fixture(scope="module")
def adb_server(tmp_path_factory: pytest.TempPathFactory):
    bins = adb_binaries()
    if not bins:
        missing_system("no adb client: apt-get install adb, or pip install adbutils")
    label, path = bins[0]
    srv = _start_server(tmp_path_factory, label, path)
    yield srv
    srv.stop()


def _client_params() -> List:
    bins = adb_binaries()
    if not bins:
        return [pytest.param(None, id="no-adb")]  # adb_server_each: a skip, a failure in CI
    return [pytest.param(b, id=b[0]) for b in bins]


@pytest.fixture(scope="module", params=_client_params())
def adb_server_each(request, tmp_path_factory: pytest.TempPathFactory):
    if request.param is None:
        missing_system("no adb client: apt-get install adb, or pip install adbutils")
    label, path = request.param
    srv = _start_server(tmp_path_factory, label, path)
    yield srv
    srv.stop()


@pytest.fixture
def standin(tmp_path: Path):
    d = AdbdStandin(tmp_path / "phone").start()
    yield d
    d.stop()


@pytest.fixture
def make_adb_device():
    made: List[Tuple[AdbServer, str]] = []

    def make(server: AdbServer, phone: AdbdStandin, name: str = "phone", **overrides):
        from edge_bench.config import Device
        kw = dict(name=name, transport="adb", serial=phone.serial, adb_path=server.path,
                  adb_port=server.port, workdir=phone.workdir, retries=0, connect_timeout_s=5.0,
                  idle_timeout_s=60.0, timeout_s=300.0)
        kw.update(overrides)
        made.append((server, kw["serial"]))
        return Device(**kw)

    yield make
    for server, serial in made:
        server.disconnect(serial)
