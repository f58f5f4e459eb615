"""Nothing outside the workdir is touched (issue 16): symlinks planted in a device's workdir
(a shared board, a workdir under /tmp) are never written through, the lock is never truncated,
and a workdir others can write to is refused. Real agent, real files, real symlinks."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict

from edge_bench.hashing import sha256_file
from test_run_local import REPO, edge_bench
import pytest


DIGITS = REPO / "host" / "models" / "builtin" / "data" / "digits.tflite"
FAST = ["--model", "builtin:digits", "--variants", "fp32", "--runs", "3", "--warmup", "0",
        "--min-seconds", "0", "--processes", "1"]
SECRET = b"precious data that is not edge-bench's to touch\n"


def _fleet(tmp_path: Path, workdir: Path) -> Path:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n    workdir: {workdir}\n")
    return cfg


def _victim(tmp_path: Path, name: str = "victim.txt") -> Path:
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    v = outside / name
    v.write_bytes(SECRET)
    return v


def _unchanged(v: Path) -> None:
    assert v.read_bytes() == SECRET, f"{v} was written through a planted symlink"


def test_pushed_blob_replaces_a_planted_symlink_never_writes_through_it(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "blobs").mkdir(parents=True)
    victim = _victim(tmp_path)
    blob = work / "blobs" / f"{sha256_file(DIGITS)}.tflite"
    blob.symlink_to(victim)
    p = edge_bench(["run", "--no-store", "--config", str(_fleet(tmp_path, work)),
                    "--devices", "box", *FAST], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    _unchanged(victim)
    assert not blob.is_symlink() and sha256_file(blob) == sha256_file(DIGITS)
    assert not list(work.rglob("*.part"))


def test_lock_symlink_is_not_followed_or_truncated(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    victim = _victim(tmp_path)
    (work / "lock").symlink_to(victim)
    p = edge_bench(["run", "--no-store", "--config", str(_fleet(tmp_path, work)),
                    "--devices", "box", *FAST], tmp_path)
    _unchanged(victim)
    assert "Traceback" not in p.stderr
    # refused with a reason (exit 3: that device's tasks failed) ...
    assert p.returncode == 3, p.stdout + p.stderr
    assert "symlink" in (p.stdout + p.stderr)


def test_lock_file_is_never_truncated(tmp_path: Path) -> None:
    """The lock file's contents are not the lock (flock is); the holder is written beside it."""
    work = tmp_path / "work"
    work.mkdir()
    cfg = _fleet(tmp_path, work)
    p = edge_bench(["run", "--no-store", "--config", str(cfg), "--devices", "box", *FAST], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    lock = work / "lock"
    lock.write_bytes(SECRET)                 # e.g. a hard link or a file someone put there
    p = edge_bench(["run", "--no-store", "--config", str(cfg), "--devices", "box", *FAST], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    _unchanged(lock)


def test_workdir_others_can_write_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "shared"
    work.mkdir()
    os.chmod(work, 0o777)                    # world-writable, no sticky bit
    cfg = _fleet(tmp_path, work)
    p = edge_bench(["run", "--no-store", "--config", str(cfg), "--devices", "box", *FAST], tmp_path)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    out = p.stdout + p.stderr
    assert str(work) in out and "writable" in out and "chmod" in out
    assert not (work / "blobs").exists()     # refused before anything was pushed
    os.chmod(work, 0o1777)                   # sticky, like /tmp: others cannot replace our files
    p = edge_bench(["run", "--no-store", "--config", str(cfg), "--devices", "box", *FAST], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
