"""`edge-bench deploy` end to end on the `local` transport (tmp workdir, real agent push and probe,
a stand-in bootstrap script: the real ones are never run on this machine), bootstrap selection,
and static checks of deploy/*.sh (bash -n; shellcheck when installed)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from conftest import missing_system

from edge_bench.app.deploy import ANDROID_NOTE, choose_bootstrap
from edge_bench.config import Device
from edge_bench.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = [REPO / "deploy" / "bootstrap_pi.sh", REPO / "deploy" / "bootstrap_jetson.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bootstrap_script_syntax(script: Path) -> None:
    p = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert "EDGE_BENCH_PYTHON=" in text and "edge-bench/venv" in text


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bootstrap_script_shellcheck(script: Path) -> None:
    if shutil.which("shellcheck") is None:
        missing_system("shellcheck is not installed (apt-get install -y shellcheck)")
    p = subprocess.run(["shellcheck", "-S", "style", str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


def test_jetson_script_picks_the_runtime_python_can_run() -> None:
    text = SCRIPTS[1].read_text()
    assert '"numpy<2" tflite-runtime' in text and "(numpy ai-edge-litert)" in text
    assert "no wheels below 3.10" in text
    assert (REPO / "deploy" / "android-termux.md").is_file()


def dev(**kw) -> Device:
    kw.setdefault("name", "d")
    kw.setdefault("transport", "ssh")
    return Device(**kw)


def test_bootstrap_choice_by_hint_then_tags(tmp_path: Path) -> None:
    assert choose_bootstrap(dev(tags=("pi", "arm64")))[0].name == "bootstrap_pi.sh"
    assert choose_bootstrap(dev(tags=("RaspberryPi",)))[0].name == "bootstrap_pi.sh"
    assert choose_bootstrap(dev(tags=("jetson",)))[0].name == "bootstrap_jetson.sh"
    assert choose_bootstrap(dev(tags=("pi",), bootstrap="jetson"))[0].name == "bootstrap_jetson.sh"
    assert choose_bootstrap(dev(tags=("pi",), bootstrap="none"))[0] is None
    own = tmp_path / "mine.sh"
    own.write_text("echo hi\n")
    assert choose_bootstrap(dev(bootstrap=str(own)))[0] == own
    assert choose_bootstrap(dev(transport="adb", serial="x")) == (None, ANDROID_NOTE)
    assert choose_bootstrap(dev(transport="local"))[0] is None
    with pytest.raises(UsageError, match="no bootstrap script"):
        choose_bootstrap(dev(tags=("arm64",)))
    with pytest.raises(UsageError, match="several"):
        choose_bootstrap(dev(tags=("pi", "jetson")))
    with pytest.raises(UsageError, match="does not exist"):
        choose_bootstrap(dev(bootstrap=str(tmp_path / "missing.sh")))


def test_bootstrap_field_in_devices_yaml(tmp_path: Path) -> None:
    from edge_bench.config import load_fleet
    from edge_bench.errors import ConfigError
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n  pi4:\n    transport: ssh\n    host: pi4.lab\n"
                   "    bootstrap: pi\n    lock_wait_s: 30\n")
    d = load_fleet(cfg, env={}).devices["pi4"]
    assert d.bootstrap == "pi" and d.lock_wait_s == 30.0
    cfg.write_text("version: 1\ndevices:\n  pi4:\n    transport: ssh\n    host: pi4.lab\n"
                   "    bootstrap: [pi]\n")
    with pytest.raises(ConfigError, match=r"devices.yaml:6: field devices.pi4.bootstrap"):
        load_fleet(cfg, env={})


# ------------------------------------------------------------------------------ end to end

def edge_bench(args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("EDGE_BENCH_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", *args], capture_output=True,
                          text=True, env=env, cwd=str(cwd), timeout=300)


@pytest.fixture()
def box(tmp_path: Path) -> Path:
    script = tmp_path / "fake_bootstrap.sh"
    marker = tmp_path / "ran"
    script.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
echo "bootstrap: step 1 in $EDGE_BENCH_WORKDIR"
echo run >> {marker}
echo "bootstrap: step 2"
echo "EDGE_BENCH_PYTHON={sys.executable}"
""")
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n"
                   f"    workdir: {tmp_path / 'wd'}\n    bootstrap: {script}\n")
    return cfg


def test_deploy_pushes_runs_bootstrap_probes_and_reports(box: Path) -> None:
    tmp = box.parent
    p = edge_bench(["deploy", "--config", str(box), "--devices", "box", "--bootstrap"], tmp)
    assert p.returncode == 0, p.stderr + p.stdout
    out = p.stdout
    # the script's output is streamed with the device name, in order
    i1 = out.index(f"[box] bootstrap: step 1 in {tmp / 'wd'}")
    assert i1 < out.index("[box] bootstrap: step 2")
    agents = list((tmp / "wd").glob("agent-*.pyz"))
    assert len(agents) == 1
    size = agents[0].stat().st_size
    assert f"box: agent {agents[0].name} pushed ({size:,} bytes)" in out
    assert "box: bootstrap fake_bootstrap.sh: ok in " in out
    assert "box: runtime ai-edge-litert " in out and "box: ready" in out
    assert f"set `python: {sys.executable}` for box in devices.yaml" in out
    assert (tmp / "ran").read_text() == "run\n"
    assert list((tmp / "wd" / "bootstrap").glob("*.sh"))  # pushed content-addressed too

    again = edge_bench(["deploy", "--config", str(box), "--devices", "box", "--json"], tmp)
    assert again.returncode == 0, again.stderr
    (rep,) = json.loads(again.stdout)
    assert rep["ok"] and rep["agent"]["pushed"] is False and rep["agent"]["bytes_pushed"] == 0
    assert rep["bootstrap"] is None  # not asked for
    assert rep["probe"]["runtime"].startswith("ai-edge-litert")
    assert (tmp / "ran").read_text() == "run\n"


def test_failing_bootstrap_is_reported_and_exit_3(box: Path) -> None:
    tmp = box.parent
    bad = tmp / "bad.sh"
    bad.write_text("echo 'bootstrap: trying'\necho 'E: no passwordless sudo' >&2\nexit 7\n")
    box.write_text(box.read_text().replace(str(tmp / "fake_bootstrap.sh"), str(bad)))
    p = edge_bench(["deploy", "--config", str(box), "--devices", "box", "--bootstrap"], tmp)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "[box] bootstrap: trying" in p.stdout
    assert "bootstrap bad.sh: FAILED (bootstrap bad.sh exited 7: E: no passwordless sudo)" in p.stdout
    assert "box: NOT ready" in p.stdout


def test_unknown_bootstrap_choice_is_a_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n  board:\n    transport: ssh\n    host: 127.0.0.1\n"
                   "    tags: [arm64]\n")
    p = edge_bench(["deploy", "--config", str(cfg), "--devices", "board", "--bootstrap"], tmp_path)
    assert p.returncode == 2
    assert "board: no bootstrap script for this device" in p.stderr
