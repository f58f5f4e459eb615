"""Integrity of what runs: every pushed file is verified on the device, every cached variant is
the one made from the model's current bytes. Each test here plants the fault for real (bytes
changed on the device after a real push, a model's bytes swapped under the same path, a cached
variant changed on disk) and checks that edge-bench refuses or rebuilds; issue 17 found that no
test noticed these checks being disabled."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

import tflite_models as tm
from edge_bench.cli import main
from edge_bench.errors import DeviceError
from edge_bench.fleet.deploy import Blob, ensure_blobs, remote_path
from edge_bench.hashing import sha256_file
from edge_bench.models import quantize as Q
from edge_bench.models.accuracy import run_model


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _corrupting_put(real_put, pushed: List[str]):
    """The transport's real put, after which the file ON THE DEVICE (this machine) gets one byte
    flipped: what a flaky link, a full disk or a tampering device would leave."""
    def put(self, local: Path, remote: str) -> None:
        real_put(self, local, remote)
        _flip_last_byte(Path(remote))
        pushed.append(remote)
    return put


# ---- push verification (host/fleet/deploy.py) --------------------------------------------------
def test_a_blob_corrupted_on_the_device_after_an_ssh_push_is_refused(
        sshd_device: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several files, until the corrupted copy's sha256 has sorted both above and below the
    expected one: only equality may pass."""
    from edge_bench.transports.ssh import SSHTransport
    tr = SSHTransport(sshd_device)
    tr.connect()
    orders = set()
    try:
        wd = tr.resolve_workdir(sshd_device.workdir)
        for i in range(64):
            src = tmp_path / f"model{i}.tflite"
            src.write_bytes(os.urandom(40_000))
            blob = Blob.for_file(src)
            pushed: List[str] = []
            with monkeypatch.context() as mp:
                mp.setattr(SSHTransport, "put", _corrupting_put(SSHTransport.put, pushed))
                with pytest.raises(DeviceError) as ei:
                    ensure_blobs(tr, wd, [blob])
            dest = remote_path(wd, blob)
            assert pushed == [dest]
            there = sha256_file(Path(dest))  # what is really on the device, computed here
            msg = str(ei.value)
            assert dest in msg and blob.sha256 in msg and there in msg
            orders.add(there > blob.sha256)
            # an honest push afterwards replaces the corrupted file and is verified
            rep = ensure_blobs(tr, wd, [blob])
            assert [b.sha256 for b in rep.pushed] == [blob.sha256] and rep.present == []
            assert sha256_file(Path(dest)) == sha256_file(src)
            if orders == {True, False}:
                break
        assert orders == {True, False}
    finally:
        tr.close()


def test_a_run_refuses_a_model_corrupted_on_the_device(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """`edge-bench run` on the local device with the transport's real copy followed by a flipped
    byte on the device: the run must not measure the corrupted file; it exits 3 and records the
    failure with the sha256 mismatch."""
    from edge_bench.transports.local import LocalTransport
    model = tmp_path / "dense.tflite"
    tm.write_dense_softmax(model, seed=3)
    wd = tmp_path / "device-wd"
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n    workdir: {wd}\n")
    monkeypatch.setenv("EDGE_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    pushed: List[str] = []
    monkeypatch.setattr(LocalTransport, "put", _corrupting_put(LocalTransport.put, pushed))
    out = tmp_path / "out.json"
    rc = main(["run", "--config", str(cfg), "--devices", "box", "--model", str(model),
               "--variants", "fp32", "--runs", "3", "--warmup", "0", "--min-seconds", "0",
               "--no-store", "--json", str(out)])
    assert rc == 3
    assert pushed, "nothing was pushed: the fault was not planted"
    doc = json.loads(out.read_text())
    assert doc["status"] == "partial"
    assert doc["results"] and all(r["status"] != "ok" for r in doc["results"])
    assert any("sha256" in str(r.get("error")) for r in doc["results"]), doc["results"]


def test_blob_names_are_the_sha256_and_the_last_extension(tmp_path: Path) -> None:
    src = tmp_path / "my.model.v2.tflite"
    src.write_bytes(b"\x00model bytes")
    digest = sha256_file(src)
    assert Blob.for_file(src).remote_rel == f"blobs/{digest}.tflite"
    assert Blob.for_file(src, prefix="data/").remote_rel == f"data/{digest}.tflite"
    plain = tmp_path / "noext"
    plain.write_bytes(b"x")
    assert Blob.for_file(plain).remote_rel == f"blobs/{sha256_file(plain)}"


def test_a_blob_cannot_be_changed_after_its_sha256_was_computed(tmp_path: Path) -> None:
    import dataclasses
    src = tmp_path / "m.tflite"
    src.write_bytes(b"abc")
    blob = Blob.for_file(src)
    with pytest.raises(dataclasses.FrozenInstanceError):
        blob.sha256 = "0" * 64  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        blob.local = tmp_path / "other"  # type: ignore[misc]


def test_ensure_blobs_makes_each_directory_before_pushing(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Transports whose put does not create parents (adb push into a missing dir) rely on
    ensure_blobs making the directories first."""
    from edge_bench.config import Device
    from edge_bench.transports.local import LocalTransport
    calls: List[str] = []
    real_makedirs = LocalTransport.makedirs

    def makedirs(self, path: str) -> None:
        calls.append(f"makedirs {path}")
        real_makedirs(self, path)

    def put(self, local: Path, remote: str) -> None:  # a put that needs the parent to exist
        calls.append(f"put {remote}")
        assert Path(remote).parent.is_dir(), remote
        Path(remote).write_bytes(Path(local).read_bytes())
        self.bytes_pushed += Path(remote).stat().st_size

    monkeypatch.setattr(LocalTransport, "makedirs", makedirs)
    monkeypatch.setattr(LocalTransport, "put", put)
    a, b = tmp_path / "a.tflite", tmp_path / "b.npz"
    a.write_bytes(b"a" * 10)
    b.write_bytes(b"b" * 20)
    blobs = [Blob.for_file(a), Blob.for_file(b, prefix="data/"), Blob.for_file(a)]
    wd = str(tmp_path / "wd")
    with LocalTransport(Device(name="box", transport="local", workdir=wd)) as tr:
        rep = ensure_blobs(tr, wd, blobs)
    assert rep.bytes_pushed == 30 and len(rep.pushed) == 2  # the duplicate is pushed once
    made = [c for c in calls if c.startswith("makedirs")]
    # the workdir itself is made (0700) by check_workdir's script before anything is written
    # (issues 16 and 25), then each blob directory
    assert (tmp_path / "wd").stat().st_mode & 0o7777 == 0o700
    assert sorted(made) == [f"makedirs {wd}/blobs", f"makedirs {wd}/data"]
    assert calls.index(made[-1]) < min(i for i, c in enumerate(calls) if c.startswith("put"))


# ---- the variant cache (host/models/quantize.py, quantcache.py) --------------------------------
VARIANTS = [v for v in Q.VARIANTS if v != "fp32"]


def _outputs(path: Path, x: np.ndarray) -> np.ndarray:
    return run_model(path, {"x": x})[0]


def test_swapping_a_models_bytes_under_the_same_path_rebuilds_every_variant(
        tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"   # one path, two different models over time
    calib = tmp_path / "calib.npz"
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, size=(64, tm.N_IN)).astype(np.float32)
    np.savez(calib, x=x)
    cache = tmp_path / "cache"

    tm.write_dense_softmax(model, seed=0)
    first = {v: Q.cached_variant(model, v, calib, cache) for v in VARIANTS}
    tm.write_dense_softmax(model, seed=1)
    ref_b = _outputs(model, x)
    ref_a = _outputs(first["fp16"].path, x)
    assert np.abs(ref_a - ref_b).max() > 0.05, "the two models must differ for this test"

    second = {v: Q.cached_variant(model, v, calib, cache) for v in VARIANTS}
    for v in VARIANTS:
        assert not second[v].cached, f"{v}: the variant of the old bytes was served"
        assert second[v].sha256 != first[v].sha256, v
        got = _outputs(second[v].path, x)
        # each rebuilt variant computes model B (argmax agreement) and not model A
        agree_b = float(np.mean(got.argmax(1) == ref_b.argmax(1)))
        agree_a = float(np.mean(got.argmax(1) == ref_a.argmax(1)))
        assert agree_b >= 0.9 and agree_b > agree_a, (v, agree_b, agree_a)
    # and the same bytes again are a hit for every variant
    assert all(Q.cached_variant(model, v, calib, cache).cached for v in VARIANTS)


def test_a_cached_variant_changed_on_disk_is_rebuilt_not_served(tmp_path: Path) -> None:
    """The cache verifies the sha256 of what it serves (same size, one byte changed). Several
    corruptions, until the changed file's sha256 has sorted both above and below the right one:
    only equality may count as a hit."""
    model = tmp_path / "model.tflite"
    tm.write_dense_softmax(model, seed=0)
    cache = tmp_path / "cache"
    made = Q.cached_variant(model, "dynamic-int8", None, cache)
    good = sha256_file(made.path)
    size = made.path.stat().st_size
    seen = set()
    for i in range(1, 64):
        data = bytearray(made.path.read_bytes())
        data[-i] ^= 0xFF
        made.path.write_bytes(bytes(data))
        seen.add(sha256_file(made.path) > good)
        again = Q.cached_variant(model, "dynamic-int8", None, cache)
        assert not again.cached and again.path.stat().st_size == size
        assert sha256_file(again.path) == good == again.sha256
        if seen == {True, False}:
            break
    assert seen == {True, False}
    assert Q.cached_variant(model, "dynamic-int8", None, cache).cached


def test_write_atomic_makes_parents_and_leaves_no_temp_file(tmp_path: Path) -> None:
    from edge_bench.models.quantcache import write_atomic
    target = tmp_path / "a" / "b" / "c.json"
    write_atomic(target, b"{}")
    write_atomic(target, b'{"again": 1}')
    assert target.read_bytes() == b'{"again": 1}'
    assert [p.name for p in target.parent.iterdir()] == ["c.json"]
    # a failed rename (the target is a directory) raises and removes its temp file
    blocker = tmp_path / "d" / "e.json"
    blocker.mkdir(parents=True)
    with pytest.raises(OSError):
        write_atomic(blocker, b"{}")
    assert [p.name for p in blocker.parent.iterdir()] == ["e.json"] and blocker.is_dir()


def test_a_sidecar_that_disagrees_with_its_file_is_rebuilt(tmp_path: Path) -> None:
    """Right sha256 but a wrong size in the sidecar: a broken entry, rebuilt (not served)."""
    model = tmp_path / "model.tflite"
    tm.write_dense_softmax(model, seed=4)
    cache = tmp_path / "cache"
    made = Q.cached_variant(model, "fp16", None, cache)
    sidecar = made.path.with_suffix(".json")
    for wrong in (made.bytes - 1, made.bytes + 1, 0):
        meta = json.loads(sidecar.read_text())
        meta["bytes"] = wrong
        sidecar.write_text(json.dumps(meta))
        again = Q.cached_variant(model, "fp16", None, cache)
        assert not again.cached, wrong
        assert json.loads(sidecar.read_text())["bytes"] == made.path.stat().st_size == made.bytes
    assert Q.cached_variant(model, "fp16", None, cache).cached


def _meta(res: Any) -> Dict[str, Any]:
    return json.loads(Path(res.path).with_suffix(".json").read_text())


def test_a_cache_entry_without_its_sidecar_or_with_a_broken_one_is_rebuilt(tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    tm.write_dense_softmax(model, seed=2)
    cache = tmp_path / "cache"
    made = Q.cached_variant(model, "weight-int8", None, cache)
    sidecar = made.path.with_suffix(".json")
    assert _meta(made)["sha256"] == sha256_file(made.path) == made.sha256
    assert _meta(made)["model_sha256"] == sha256_file(model)
    sidecar.unlink()
    assert not Q.cached_variant(model, "weight-int8", None, cache).cached
    sidecar.write_text("{not json")
    rebuilt = Q.cached_variant(model, "weight-int8", None, cache)
    assert not rebuilt.cached and _meta(rebuilt)["sha256"] == sha256_file(rebuilt.path)
    assert not list(cache.rglob("*.tmp")) and not list(cache.rglob(".*"))
