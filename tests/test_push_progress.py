"""Pushes of big files report their bytes and rate as they go, over the real local and SSH
transports, and the live display's device line shows them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

import pytest

from edge_bench.fleet import deploy
from edge_bench.fleet.deploy import Blob, ensure_blobs
from edge_bench.render.progress import DeviceProgress


def big_file(tmp_path: Path, mb: int = 9) -> Path:
    p = tmp_path / "big-model.tflite"
    p.write_bytes(os.urandom(mb << 20))  # random: no compression anywhere makes it instant
    return p


def push_events(transport: Any, workdir: str, src: Path,
                monkeypatch: pytest.MonkeyPatch) -> List[Dict[str, Any]]:
    monkeypatch.setattr(deploy, "PUSH_PROGRESS_EVERY_S", 0.0)  # every callback, for the test
    events: List[Dict[str, Any]] = []
    rep = ensure_blobs(transport, workdir, [Blob.for_file(src)], on_push=events.append)
    assert len(rep.pushed) == 1 and rep.bytes_pushed == src.stat().st_size
    return events


def check(events: List[Dict[str, Any]], size: int) -> None:
    assert events[0]["first"] and events[0]["bytes"] == 0 and events[0]["total"] == size
    assert events[-1]["finished"] and events[-1]["bytes"] == size and events[-1]["elapsed_s"] > 0
    middle = events[1:-1]
    assert len(middle) >= 2, events  # bytes reported while the push went on
    done = [e["bytes"] for e in middle]
    assert done == sorted(done) and 0 < done[0] < size and all(e["rate"] > 0 for e in middle)
    # the display's device line while it pushes: file, bytes of total, rate
    d = DeviceProgress("dev", {})
    d.on_progress(dict(middle[-1], kind="push"))
    line = d.activity()
    assert line.startswith("pushing big-model.tflite ") and "MB/" in line and "/s" in line
    d.on_progress(dict(events[-1], kind="push"))
    assert d.push is None


def test_local_push_reports_bytes_and_rate(tmp_path: Path, monkeypatch) -> None:
    from edge_bench.config import Device
    from edge_bench.transports import open_transport
    src = big_file(tmp_path)
    t = open_transport(Device(name="local", transport="local", workdir=str(tmp_path / "wd")))
    t.connect()
    try:
        check(push_events(t, str(tmp_path / "wd"), src, monkeypatch), src.stat().st_size)
    finally:
        t.close()


def test_ssh_push_reports_bytes_and_rate(sshd_device, tmp_path: Path, monkeypatch) -> None:
    from edge_bench.transports.ssh import SSHTransport
    src = big_file(tmp_path)
    t = SSHTransport(sshd_device)
    t.connect()
    try:
        wd = t.resolve_workdir(sshd_device.workdir)
        check(push_events(t, wd, src, monkeypatch), src.stat().st_size)
    finally:
        t.close()


def test_small_files_are_not_reported(tmp_path: Path) -> None:
    from edge_bench.config import Device
    from edge_bench.transports import open_transport
    src = tmp_path / "small.tflite"
    src.write_bytes(b"x" * 1000)
    t = open_transport(Device(name="local", transport="local", workdir=str(tmp_path / "wd")))
    events: List[Dict[str, Any]] = []
    ensure_blobs(t, str(tmp_path / "wd"), [Blob.for_file(src)], on_push=events.append)
    assert events == []
