"""The one protocol module (edge_bench_agent.protocol), shared by host and agent.

- the host's reading of agent lines refuses anything that is not protocol 1;
- contract: every job the host can build (DeviceRun.job, every option combination it uses) goes
  through the agent's own parser and task validation unchanged;
- the error types documented in docs/protocol.md are exactly the ones in the module, and every
  type the agent's code raises or emits is one of them;
- the lock file name has one home (the host's benchmark_model runner uses it too).
"""
from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, Dict

import pytest

from edge_bench.config import Device
from edge_bench.errors import ProtocolError
from edge_bench.fleet.deploy import Blob
from edge_bench.fleet.plan import Artifact, EvalData, ModelSpec, Timing
from edge_bench.fleet.runner import DeviceRun, Task, agent_message
from edge_bench_agent import protocol

REPO = Path(__file__).resolve().parents[1]


def test_valid_lines() -> None:
    assert agent_message("d", '{"proto":1,"event":"hello"}')["event"] == "hello"
    assert agent_message("d", '{"proto":1,"event":"result","samples_ns":[1,2]}')["samples_ns"] == [1, 2]


@pytest.mark.parametrize("line,pattern", [
    ("Segmentation fault", "not protocol JSON"),
    ("[1,2]", "JSON list"),
    ('{"proto":2,"event":"hello"}', "protocol 2.*upgrade edge-bench on the host"),
    ('{"proto":0,"event":"hello"}', "protocol 0.*edge-bench deploy"),
    ('{"event":"hello"}', "protocol None"),
    ('{"proto":1,"event":"party"}', "unknown event"),
    ('{"proto":1,"event":"result"}', "no samples_ns"),
    ("", "empty line"),
])
def test_bad_lines(line: str, pattern: str) -> None:
    with pytest.raises(ProtocolError, match=pattern) as info:
        agent_message("dev", line)
    assert str(info.value).startswith("dev")


# ------------------------------------------------------------------------------ the contract

def _device(xnnpack: bool, cooldown: bool, lock_wait: float, python: tuple) -> Device:
    return Device(name="d", transport="local", xnnpack=xnnpack, python=python,
                  cooldown_temp_c=60.0 if cooldown else None,
                  cooldown_max_s=30.0 if cooldown else None, lock_wait_s=lock_wait)


def _tasks(tmp: Path, threads: int, timing: Timing, with_eval: bool):
    model = tmp / "m.tflite"
    model.write_bytes(b"not a model: the parser never opens it")
    ev = tmp / "e.npz"
    ev.write_bytes(b"npz")
    spec = ModelSpec(name=str(model), path=model,
                     eval=EvalData(path=ev, sha256="0" * 64, inputs={}, labels=None) if with_eval else None)
    art = Artifact(model=spec, variant="fp32", path=model)
    t = Task(id="t0", artifact=art, threads=threads, timing=timing)
    mb = {"t0": Blob.for_file(model)}
    eb = {"t0": Blob.for_file(ev)} if with_eval else {}
    return [t], mb, eb


TIMINGS = [Timing(), Timing(runs=1, warmup=0, min_seconds=0.0, max_seconds=0.5, max_runs=1,
                            processes=1, interleave=False),
           Timing(runs=7, processes=3, interleave=True, max_seconds=1000.0, max_runs=7),
           Timing(runs=100, processes=100, interleave=False)]


@pytest.mark.parametrize("xnnpack,cooldown,lock_wait,with_eval,threads,python",
                         list(itertools.product([True, False], [False, True], [0.0, 30.0],
                                                [False, True], [1, 4],
                                                [(), ("qemu-aarch64", "-L", "/r", "python3")])))
def test_every_job_the_host_builds_passes_the_agents_parser(
        tmp_path: Path, xnnpack: bool, cooldown: bool, lock_wait: float, with_eval: bool,
        threads: int, python: tuple) -> None:
    dev = _device(xnnpack, cooldown, lock_wait, python)
    for timing in TIMINGS:
        tasks, mb, eb = _tasks(tmp_path, threads, timing, with_eval)
        run = DeviceRun(dev, tasks, emit=lambda r: None, job_id="J")
        built = run.job(tasks, "/wd", mb, eb)
        job = protocol.parse_job(json.dumps(built))  # what the agent does with stdin
        assert job["proto"] == protocol.PROTO and job["job_id"] == "J"
        assert job["python"] == (list(python) or job["python"])
        (task,) = job["tasks"]
        p = protocol.task_params(task)  # what each worker does with its task
        per = timing.per_process()
        assert p["processes"] == per["processes"] and p["runs"] == per["runs"]
        assert p["max_seconds"] == pytest.approx(per["max_seconds"])
        assert p["xnnpack"] is xnnpack and p["threads"] == threads
        assert (task["eval"] is not None) is with_eval
        assert task["model"]["sha256"] == mb["t0"].sha256
        assert (job["cooldown"] is not None) is cooldown
        assert job["lock_wait_s"] == lock_wait and job["heartbeat_s"] > 0
        assert job["interleave"] is timing.interleave


@pytest.mark.parametrize("field,value", [("runs", -1), ("processes", 0),
                                         ("processes", protocol.MAX_PROCESSES + 1),
                                         ("threads", 0), ("xnnpack", "yes"),
                                         ("max_seconds", -1.0), ("warmup", 1.5)])
def test_the_builder_refuses_what_the_agent_would_refuse(field: str, value: Any) -> None:
    kw: Dict[str, Any] = {field: value}
    with pytest.raises(protocol.AgentError, match=field) as info:
        protocol.build_task("t0", protocol.file_ref("m.tflite", None), **kw)
    assert info.value.type == "BadJob"


def test_omitted_task_fields_take_the_documented_defaults() -> None:
    p = protocol.task_params({"model": {"path": "m"}})
    for key in ("threads", "xnnpack", "warmup", "runs", "min_seconds", "max_seconds",
                "max_runs", "seed", "processes"):
        assert p[key] == protocol.TASK_DEFAULTS[key], key
    doc = (REPO / "docs" / "protocol.md").read_text()
    assert f"`max_seconds` {protocol.TASK_DEFAULTS['max_seconds']}" in doc
    # the host's default budget and the agent's default for an omitted field agree
    assert Timing().max_seconds == protocol.TASK_DEFAULTS["max_seconds"]


def test_documented_error_types_are_the_code_s() -> None:
    doc = (REPO / "docs" / "protocol.md").read_text()
    section = doc.split("Error `type`s:", 1)[1].split("\n\n", 1)[0]
    names = set(re.findall(r"`([A-Z][A-Za-z]+)`", section))  # fields are lower case
    assert names == set(protocol.ERROR_TYPES)
    used = set()
    for src in sorted((REPO / "agent").glob("*.py")):
        text = src.read_text()
        used.update(re.findall(r'AgentError\(\s*"(\w+)"', text))
        used.update(re.findall(r'emit_error\([^,]+,\s*"(\w+)"', text))
        # or by the constant that protocol.py names it with (DEVICE_BUSY, NO_RUNTIME)
        used.update(getattr(protocol, c) for c in re.findall(r'AgentError\(\s*([A-Z_]+)\b', text))
    assert used and used <= set(protocol.ERROR_TYPES), used - set(protocol.ERROR_TYPES)
    assert used == set(protocol.ERROR_TYPES)  # no documented type that nothing raises


def test_the_lock_file_name_has_one_home() -> None:
    for src in [REPO / "host" / "fleet" / "benchmark_model.py", *sorted((REPO / "agent").glob("*.py"))]:
        if src.name == "protocol.py":
            continue
        assert not re.search(r'["\']lock["\']', src.read_text()), src
    assert protocol.LOCK_NAME == "lock"
