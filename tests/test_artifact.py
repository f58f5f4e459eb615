"""The agent ships as ONE content-addressed zipapp (edge_bench.fleet.artifact): deterministic
bytes, cached, named by its sha256 on the device, runnable by a plain `python agent.pyz`."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge_bench.fleet import artifact
from edge_bench.fleet.deploy import agent_blob

REPO = Path(__file__).resolve().parents[1]


def test_two_builds_are_byte_identical_whatever_the_file_times_and_modes(tmp_path: Path) -> None:
    first = artifact.build_pyz(REPO / "agent")
    copy = tmp_path / "agent"
    shutil.copytree(REPO / "agent", copy, ignore=shutil.ignore_patterns("__pycache__"))
    for i, f in enumerate(sorted(copy.glob("*.py"))):
        os.utime(f, (1_000_000 + i, 2_000_000_000 - i))
        f.chmod(0o600 if i % 2 else 0o755)
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"noise")
    second = artifact.build_pyz(copy)
    assert first == second
    # and a change in any source changes the artifact
    (copy / "facts.py").write_text((copy / "facts.py").read_text() + "\n# changed\n")
    assert artifact.build_pyz(copy) != first


def test_entries_are_sorted_with_fixed_times_and_modes(tmp_path: Path) -> None:
    data = artifact.build_pyz(REPO / "agent")
    assert data.startswith(b"#!/usr/bin/env python3\n")
    (tmp_path / "a.pyz").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "a.pyz") as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names[0] == "__main__.py" and names[1:] == sorted(names[1:])
    assert set(names[1:]) == {f"edge_bench_agent/{p.name}" for p in (REPO / "agent").glob("*.py")}
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    assert all((i.external_attr >> 16) & 0o777 == 0o644 for i in infos)


def test_the_artifact_is_cached_under_its_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_BENCH_CACHE", str(tmp_path))
    path, digest = artifact.agent_artifact()
    assert path == tmp_path / "agent" / f"agent-{digest}.pyz"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert path.read_bytes() == artifact.build_pyz(REPO / "agent")
    mtime = path.stat().st_mtime_ns
    assert artifact.agent_artifact() == (path, digest) and path.stat().st_mtime_ns == mtime
    blob = agent_blob()
    assert blob.sha256 == digest and blob.remote_rel == f"agent-{digest}.pyz"


def test_a_corrupted_cache_file_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_BENCH_CACHE", str(tmp_path / "c2"))
    artifact._cached.cache_clear()
    path, digest = artifact.agent_artifact()
    path.write_bytes(b"truncated")
    artifact._cached.cache_clear()
    again, digest2 = artifact.agent_artifact()
    assert (again, digest2) == (path, digest)
    assert hashlib.sha256(again.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("python", [sys.executable, "python3.8"])
def test_a_plain_python_runs_the_artifact_outside_the_repo(tmp_path: Path, python: str) -> None:
    if python == "python3.8":
        from test_agent import _python38
        exe = _python38()
    else:
        exe = shutil.which(python)
    if exe is None:
        pytest.skip(f"{python} is not installed")
    pyz = tmp_path / "agent.pyz"
    pyz.write_bytes(artifact.build_pyz(REPO / "agent"))
    env = {"PATH": os.environ["PATH"], "PYTHONNOUSERSITE": "1"}  # no PYTHONPATH: only the .pyz
    p = subprocess.run([exe, "-I", str(pyz), "--version"], capture_output=True, text=True,
                       cwd=str(tmp_path), env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    from edge_bench_agent.protocol import AGENT_VERSION
    assert p.stdout.strip() == AGENT_VERSION
