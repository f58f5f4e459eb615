"""`edge-bench run` end to end over a real OpenSSH sshd: push, agent over SSH, stream, JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from test_run_local import edge_bench


def fleet_yaml(tmp_path: Path, sshd: Any, name: str = "box", **extra: Any) -> Path:
    import sys
    cfg = tmp_path / "devices.yaml"
    lines = ["version: 1", "devices:", f"  {name}:", "    transport: ssh",
             f"    host: {sshd.host}", f"    port: {sshd.port}", f"    user: {sshd.user}",
             f"    key: {sshd.client_key}", f"    known_hosts: {sshd.known_hosts}",
             f"    python: {sys.executable}", f"    workdir: {tmp_path / 'remote-workdir'}",
             "    retries: 0", "    tags: [lab, x86]"]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def run_json(tmp_path: Path, cfg: Path, *args: str) -> Dict[str, Any]:
    out = tmp_path / "out.json"
    if out.exists():
        out.unlink()
    p = edge_bench(["run", "--config", str(cfg), *args, "--json", str(out), "--no-store"], tmp_path)
    doc = json.loads(out.read_text()) if out.exists() else {}
    return {"proc": p, "doc": doc}


def test_run_over_ssh_then_second_run_pushes_nothing(tmp_path: Path, sshd_server: Any) -> None:
    cfg = fleet_yaml(tmp_path, sshd_server)
    common = ["--devices", "tag:lab", "--model", "builtin:digits", "--variants", "fp32,int8",
              "--runs", "10", "--min-seconds", "0"]
    first = run_json(tmp_path, cfg, *common)
    assert first["proc"].returncode == 0, first["proc"].stderr
    doc = first["doc"]
    assert {(r["device"], r["variant"]) for r in doc["results"]} == {("box", "fp32"), ("box", "int8")}
    for r in doc["results"]:
        assert r["status"] == "ok", r["error"]
        assert r["runs"] >= 10 and len(r["samples_ms"]) == r["runs"]
        assert r["accuracy"]["agreement_vs_ref"] >= 0.97
    dev = doc["devices"]["box"]
    # agent + 2 model variants + eval data went over SFTP, verified by sha256sum on the device
    assert dev["files_pushed"] == 4 and dev["bytes_pushed"] > 20_000
    remote = tmp_path / "remote-workdir"
    assert any(p.name.startswith("agent-") for p in remote.iterdir())
    assert len(list((remote / "blobs").iterdir())) == 3

    second = run_json(tmp_path, cfg, *common)
    assert second["proc"].returncode == 0, second["proc"].stderr
    dev2 = second["doc"]["devices"]["box"]
    assert dev2["bytes_pushed"] == 0 and dev2["files_pushed"] == 0 and dev2["files_present"] == 4


def test_changed_model_is_pushed_again(tmp_path: Path, sshd_server: Any) -> None:
    import shutil
    cfg = fleet_yaml(tmp_path, sshd_server)
    repo = Path(__file__).resolve().parents[1]
    model = tmp_path / "m.tflite"
    shutil.copy(repo / "host/models/builtin/data/digits.tflite", model)
    a = run_json(tmp_path, cfg, "--devices", "box", "--model", str(model), "--variants", "fp32",
                 "--runs", "5", "--min-seconds", "0")
    assert a["proc"].returncode == 0, a["proc"].stderr
    shutil.copy(repo / "host/models/builtin/data/mobilenet.tflite", model)
    b = run_json(tmp_path, cfg, "--devices", "box", "--model", str(model), "--variants", "fp32",
                 "--runs", "5", "--min-seconds", "0")
    assert b["proc"].returncode == 0, b["proc"].stderr
    # the new model and its derived comparison inputs (issue 11: a .tflite without eval data is
    # compared with fp32 on seeded inputs of its own shape), not the agent
    assert b["doc"]["devices"]["box"]["files_pushed"] == 2
    assert b["doc"]["results"][0]["model_sha256"] != a["doc"]["results"][0]["model_sha256"]


def test_refused_connection_is_a_failed_device_with_exit_3(tmp_path: Path, sshd_server: Any) -> None:
    from sshd import free_port
    cfg = fleet_yaml(tmp_path, sshd_server)
    text = cfg.read_text().replace(f"port: {sshd_server.port}", f"port: {free_port()}")
    cfg.write_text(text)
    r = run_json(tmp_path, cfg, "--devices", "box", "--model", "builtin:digits", "--variants", "fp32")
    assert r["proc"].returncode == 3
    res = r["doc"]["results"][0]
    assert res["status"] == "error" and "refused" in res["error"]
    assert "Traceback" not in r["proc"].stderr


def test_unknown_host_key_is_refused_not_accepted(tmp_path: Path, sshd_server: Any) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cfg = fleet_yaml(tmp_path, sshd_server)
    cfg.write_text(cfg.read_text().replace(str(sshd_server.known_hosts), str(empty)))
    r = run_json(tmp_path, cfg, "--devices", "box", "--model", "builtin:digits", "--variants", "fp32")
    assert r["proc"].returncode == 3
    err = r["doc"]["results"][0]["error"]
    assert sshd_server.host_key_fingerprint in err and "edge-bench devices trust box" in err
    assert empty.read_text() == ""  # nothing was written: no auto-accept


def test_wrong_key_is_an_auth_error(tmp_path: Path, sshd_server: Any) -> None:
    from sshd import make_keypair
    other = make_keypair(tmp_path / "otherkey")
    cfg = fleet_yaml(tmp_path, sshd_server)
    cfg.write_text(cfg.read_text().replace(f"key: {sshd_server.client_key}", f"key: {other}"))
    r = run_json(tmp_path, cfg, "--devices", "box", "--model", "builtin:digits", "--variants", "fp32")
    assert r["proc"].returncode == 3
    assert "auth" in r["doc"]["results"][0]["error"].lower()


def test_device_without_python_over_ssh(tmp_path: Path, sshd_server: Any) -> None:
    cfg = fleet_yaml(tmp_path, sshd_server)
    import sys
    cfg.write_text(cfg.read_text().replace(f"python: {sys.executable}", "python: /opt/nope/python3"))
    r = run_json(tmp_path, cfg, "--devices", "box", "--model", "builtin:digits", "--variants", "fp32")
    assert r["proc"].returncode == 3
    err = r["doc"]["results"][0]["error"]
    assert "/opt/nope/python3" in err and "python:" in err


def test_devices_lists_and_checks_over_ssh(tmp_path: Path, sshd_server: Any) -> None:
    cfg = fleet_yaml(tmp_path, sshd_server)
    p = edge_bench(["devices", "--config", str(cfg)], tmp_path)
    assert p.returncode == 0 and "box" in p.stdout and "local" in p.stdout
    p = edge_bench(["devices", "--config", str(cfg), "--devices", "box", "--check", "--json"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    row = json.loads(p.stdout)[0]
    assert row["ok"] and row["runtime"].startswith("ai-edge-litert") and row["agent_version"]
    assert row["free_disk_mb"] > 0
