"""Property-based tests (Hypothesis) of the parsers that read hostile input (issue 16): the
devices.yaml loader, the .npz loaders (--eval, --calibration), the results-document reader
(and compare on what it accepts) and the agent's job parser.

The property is the same everywhere: whatever the input, the parser returns a valid value or
raises the project's own error (one clear line); never another exception (a traceback), never a
hang. The counts of inputs tried are in docs/security.md (run with
`--hypothesis-show-statistics` to see them)."""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict

import numpy as np
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_bench.config import _FIELDS, LIMITS, load_fleet
from edge_bench.errors import ConfigError, EdgeBenchError, StoreError, UsageError
from edge_bench.models.builtin import resolve
from synth import fake_result

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.filter_too_much])
DIGITS = resolve("builtin:digits")

# ---------------------------------------------------------------------------- devices.yaml

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                      | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
field_names = st.sampled_from(sorted(_FIELDS)) | st.text(min_size=1, max_size=10)
good_values = {
    "transport": st.sampled_from(["local", "ssh", "adb", "pigeon"]),
    "host": st.text(max_size=20), "serial": st.text(max_size=20),
    "workdir": st.text(max_size=20), "python": st.text(max_size=20) | st.lists(st.text(max_size=8)),
}
device_specs = st.dictionaries(
    field_names,
    st.deferred(lambda: values),
    max_size=8,
).flatmap(lambda d: st.fixed_dictionaries(
    {k: (good_values.get(k, values) if isinstance(k, str) else values) for k in d}))
documents = st.fixed_dictionaries({
    "version": st.sampled_from([1, 1, 1, 2, "1", None]),
    "devices": st.dictionaries(st.text(min_size=1, max_size=10), device_specs, min_size=1,
                               max_size=3) | values,
}, optional={"defaults": device_specs | values, "extra": values})


def _check_loaded(fleet: Any) -> None:
    for d in fleet.devices.values():
        assert d.workdir.strip()
        for name in LIMITS:
            v = getattr(d, name, None)
            if v is not None:
                lo, hi, lo_ok = LIMITS[name]
                assert math.isfinite(v) and (lo < v or (lo_ok and v == lo)) and v <= hi, (name, v)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in d.env)


def _load_text(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "devices.yaml"
        p.write_bytes(data)
        try:
            fleet = load_fleet(p, env={})
        except ConfigError as e:
            assert str(p) in str(e) and "\n" not in str(e).strip()
            return
        _check_loaded(fleet)


@settings(max_examples=250, **SETTINGS)
@given(documents)
# found by this test in a full run: a field name holding a newline broke the one-line error
@example({"version": 1, "devices": {"0": {"\n": None}}})
@example({"version": 1, "devices": {"d": {"env": {"A\nB": "x"}}}})
def test_devices_yaml_structures(doc: Dict[str, Any]) -> None:
    _load_text(yaml.safe_dump(doc, allow_unicode=True).encode())


@settings(max_examples=300, **SETTINGS)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_devices_yaml_random_bytes(data: bytes) -> None:
    _load_text(b"version: 1\ndevices:\n" + data)
    _load_text(data)


@settings(max_examples=100, **SETTINGS)
@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=9))
def test_devices_yaml_alias_nesting(depth: int, width: int) -> None:
    lines = ["version: 1", "devices:", "  a:", "    transport: local", "    env:",
             "      L0: &a0 [x]"]
    for i in range(1, depth + 1):
        lines.append(f"      L{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    _load_text(("\n".join(lines) + "\n").encode())


# ---------------------------------------------------------------------------- .npz loaders

dtypes = st.sampled_from(["float32", "float64", "float16", "int8", "uint8", "int32", "int64",
                          "bool", "complex64", "<U3", "S2"])
arrays = dtypes.flatmap(lambda dt: hnp.arrays(
    np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=70)))
npz_contents = st.dictionaries(st.sampled_from(["x", "y", "pixels", "serving_default_x", "z"])
                               | st.text(alphabet="abcxyz_", min_size=1, max_size=6),
                               arrays, max_size=3)


def _npz_bytes(content: Dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **content)
    return buf.getvalue()


def _load_both(data: bytes) -> None:
    from edge_bench.fleet.plan import load_eval
    from edge_bench.models.quantize import load_calibration
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "data.npz"
        p.write_bytes(data)
        try:
            ev = load_eval(p, DIGITS.path)
        except UsageError as e:
            assert str(p) in str(e)
        else:
            (x,) = ev.inputs.values()
            assert x.ndim == 2 and x.shape[1] == 64 and len(x) >= 1
            assert ev.labels is None or (ev.labels.ndim == 1 and len(ev.labels) == len(x))
        try:
            cal = load_calibration(p, DIGITS.path)
        except UsageError as e:
            assert str(p) in str(e)
        else:
            (x,) = cal.values()
            assert x.shape[1:] == (64,) and len(x) >= 1


@settings(max_examples=200, **SETTINGS)
@given(npz_contents)
def test_npz_loaders_random_arrays(content: Dict[str, np.ndarray]) -> None:
    _load_both(_npz_bytes(content))


@settings(max_examples=200, **SETTINGS)
@given(st.data())
def test_npz_loaders_truncated_and_corrupted(data: Any) -> None:
    good = _npz_bytes({"x": np.zeros((3, 64), np.float32), "y": np.arange(3)})
    cut = data.draw(st.integers(min_value=0, max_value=len(good)))
    blob = bytearray(good[:cut])
    for _ in range(data.draw(st.integers(min_value=0, max_value=4))):
        if blob:
            i = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
            blob[i] = data.draw(st.integers(min_value=0, max_value=255))
    _load_both(bytes(blob))


# ---------------------------------------------------------------------------- results reader

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 64), max_value=2 ** 64)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=15)


def _valid_doc(n: int) -> Dict[str, Any]:
    rng = np.random.default_rng(n)
    return {"schema": "edge-bench/run/1", "run_id": f"r{n}", "label": None,
            "started_at": "2026-01-01T00:00:00+00:00", "finished_at": None, "status": "ok",
            "argv": ["edge-bench", "run"], "host": {},
            "results": [fake_result(2.0 * np.exp(0.05 * rng.normal(size=20)), variant=v)
                        for v in ("fp32", "int8")]}


def _read_and_compare(doc_text: str) -> None:
    from edge_bench.analysis.verdict import compare_docs
    from edge_bench.render.compare import print_rich, to_markdown
    from edge_bench.results.document import read_json
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "doc.json"
        p.write_text(doc_text)
        try:
            doc = read_json(p)
        except (StoreError, UsageError) as e:
            assert str(p) in str(e)
            return
        # what the reader accepts, compare must handle (one clear error at most)
        try:
            cmp = compare_docs(_valid_doc(0), doc)
            cmp2 = compare_docs(doc, doc)
        except EdgeBenchError:
            return
        for c in (cmp, cmp2):
            print_rich(c, file=io.StringIO())
            to_markdown(c)
            json.dumps(c)


@settings(max_examples=300, **SETTINGS)
@given(json_values)
def test_results_reader_random_json(value: Any) -> None:
    _read_and_compare(json.dumps(value))


paths = st.lists(st.sampled_from(["results", 0, 1, "latency_ms", "samples_ms", "status",
                                  "threads", "device", "model", "variant", "accuracy",
                                  "device_info", "schema", "run_id", "process_runs"]),
                 min_size=1, max_size=3)


@settings(max_examples=150, **SETTINGS)
@given(st.lists(st.tuples(paths, json_values), min_size=1, max_size=3))
def test_results_reader_mutated_documents(edits: Any) -> None:
    doc: Any = _valid_doc(1)
    for path, value in edits:
        node = doc
        for k in path[:-1]:
            if isinstance(node, dict) and k in node:
                node = node[k]
            elif isinstance(node, list) and isinstance(k, int) and k < len(node):
                node = node[k]
            else:
                break
        else:
            last = path[-1]
            if isinstance(node, dict) and isinstance(last, str):
                node[last] = value
            elif isinstance(node, list) and isinstance(last, int) and last < len(node):
                node[last] = value
    _read_and_compare(json.dumps(doc))


# ---------------------------------------------------------------------------- agent job parser

def _parse(text: str) -> None:
    from edge_bench_agent.protocol import AgentError, parse_job, task_params
    try:
        job = parse_job(text)
    except AgentError as e:
        assert e.type == "BadJob"
        return
    assert isinstance(job["python"], list) and job["python"]
    for key in ("lock_wait_s", "heartbeat_s"):
        v = job.get(key)
        assert v is None or (math.isfinite(v) and v >= 0)
    for task in job["tasks"]:
        try:
            p = task_params(task)
        except AgentError as e:
            assert e.type == "BadJob"
            continue
        for k, v in p.items():
            if isinstance(v, float):
                assert math.isfinite(v), (k, v)


job_fields = st.fixed_dictionaries({}, optional={
    "proto": st.sampled_from([1, 2, "1", None]), "python": json_values | st.just(["python3"]),
    "tasks": st.lists(st.dictionaries(st.sampled_from(
        ["threads", "runs", "warmup", "min_seconds", "max_seconds", "max_runs", "seed",
         "processes", "xnnpack", "timeout_s", "model", "eval", "id"]),
        json_values | st.floats(allow_nan=True, allow_infinity=True), max_size=6), max_size=3)
    | json_values,
    "lock_wait_s": json_values | st.floats(allow_nan=True, allow_infinity=True),
    "heartbeat_s": json_values | st.floats(allow_nan=True, allow_infinity=True),
    "cooldown": json_values, "controller": json_values, "interleave": json_values,
    "workdir": json_values, "job_id": json_values,
})


@settings(max_examples=300, **SETTINGS)
@given(job_fields)
def test_agent_job_parser_structures(job: Dict[str, Any]) -> None:
    _parse(json.dumps(job))          # NaN / Infinity as Python's json writes them


@settings(max_examples=300, **SETTINGS)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")))
def test_agent_job_parser_random_text(text: str) -> None:
    _parse(text)
