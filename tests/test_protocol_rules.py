"""The job and line parser's rules (agent/protocol.py), each bound just inside and just outside.

Written from docs/protocol.md ("Job (stdin)": the job fields, the task defaults and ranges;
"Output": every line is a JSON object with `"proto": 1` and a known `event`), not from the code:
a refused job or task is `BadJob` with a message that names the field and shows the value sent;
a refused agent line is BadMessage saying what it was. test_protocol.py checks the contract
(every job the host builds passes) and the host's wrapping of bad lines."""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Dict

import pytest

from edge_bench_agent import protocol as P

MODEL = {"path": "m.tflite", "sha256": None}


def job(**fields: Any) -> str:
    doc: Dict[str, Any] = {"proto": 1, "job_id": "J", "workdir": "/wd", "tasks": []}
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not DROP})


DROP = object()


def bad_job(text: str, *words: str) -> str:
    return refused(P.parse_job, text, words)


def bad_task(task: Any, *words: str) -> str:
    return refused(P.task_params, task, words)


def refused(parse: Any, arg: Any, words: Any) -> str:
    """`parse(arg)` raises BadJob whose message holds every one of `words`; the message."""
    with pytest.raises(P.AgentError) as e:
        parse(arg)
    assert e.value.type == "BadJob"
    for w in words:
        assert w in e.value.message, (w, e.value.message)
    return e.value.message


# ---- the job --------------------------------------------------------------------------------------
def test_a_job_that_is_not_a_json_object_is_refused_naming_what_came() -> None:
    msg = bad_job("{not json", "not JSON", "'{not json'")
    assert msg.endswith("'{not json'")
    long = "x" * 500
    msg = bad_job(long, "not JSON")
    assert repr("x" * 200) in msg and "x" * 201 not in msg     # a long input is cut at 200
    bad_job("[1, 2]", "must be a JSON object, got list")
    bad_job("3", "must be a JSON object, got int")


@pytest.mark.parametrize("proto, ok", [(1, True), (1.0, True), (DROP, True), (0, False), (2, False),
                                       ("1", False), (None, False), (True, False),
                                       (False, False)])
def test_the_job_must_speak_protocol_1(proto: Any, ok: bool) -> None:
    text = job(proto=proto)
    if ok:
        assert P.parse_job(text)["tasks"] == []
    else:
        bad_job(text, "job speaks protocol %r" % (proto,), "speaks 1", "deploy the agent")


def test_python_is_an_argv_list_or_a_string_split_on_whitespace() -> None:
    assert P.parse_job(job(python=DROP))["python"] == [sys.executable]  # the agent's own
    assert P.parse_job(job(python="qemu-aarch64  -L /r python3"))["python"] == [
        "qemu-aarch64", "-L", "/r", "python3"]
    assert P.parse_job(job(python=["python3", "-I"]))["python"] == ["python3", "-I"]
    for bad in ([], "", "   ", ["python3", ""], ["python3", 3], {"a": 1}, 7, None):
        bad_job(job(python=bad), "'python'", "non-empty argv list", "got %r" % (bad,))


def test_tasks_must_be_a_list_of_objects() -> None:
    assert P.parse_job(job(tasks=[{"id": "t0"}, {"id": "t1"}]))["tasks"][1] == {"id": "t1"}
    for bad in (DROP, None, {"id": "t0"}, [{"id": "t0"}, 3], "t0"):
        bad_job(job(tasks=bad), "'tasks'", "list of objects")


def test_cooldown_and_controller_are_objects_when_given() -> None:
    j = P.parse_job(job(cooldown={"temp_c": 60, "max_s": 1}, controller={"host": "h"}))
    assert j["cooldown"] == {"temp_c": 60, "max_s": 1} and j["controller"] == {"host": "h"}
    assert P.parse_job(job(cooldown=None, controller=None))["cooldown"] is None
    bad_job(job(cooldown=[60, 1]), "'cooldown'", "object")
    bad_job(job(controller="bench@ci"), "'controller'", "object")


@pytest.mark.parametrize("wait, ok", [(0, True), (0.0, True), (0.5, True), (30, True),
                                      (None, True), (DROP, True), (-0.001, False), (-1, False),
                                      (True, False), ("5", False), ([5], False)])
def test_lock_wait_s_is_a_number_at_least_0(wait: Any, ok: bool) -> None:
    if ok:
        P.parse_job(job(lock_wait_s=wait))
    else:
        bad_job(job(lock_wait_s=wait), "'lock_wait_s'", ">= 0", "got %r" % (wait,))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    text = '{"proto": 1, "tasks": [], "%s": %s}'
    bad_job(text % ("lock_wait_s", value), "'lock_wait_s'")
    bad_job(text % ("heartbeat_s", value), "'heartbeat_s'")
    num = json.loads(value)
    bad_task({"model": MODEL, "min_seconds": num}, "'min_seconds'")
    bad_task({"model": MODEL, "max_seconds": num}, "'max_seconds'")
    bad_task({"model": MODEL, "runs": num}, "'runs'")


@pytest.mark.parametrize("beat, ok", [(0.001, True), (1, True), (2.5, True), (None, True),
                                      (DROP, True), (0, False), (0.0, False), (-1, False),
                                      (True, False), ("1", False)])
def test_heartbeat_s_is_a_number_above_0(beat: Any, ok: bool) -> None:
    if ok:
        P.parse_job(job(heartbeat_s=beat))
    else:
        bad_job(job(heartbeat_s=beat), "'heartbeat_s'", "> 0", "got %r" % (beat,))


@pytest.mark.parametrize("flag", ["interleave", "watch_stdin"])
@pytest.mark.parametrize("value, ok", [(True, True), (False, True), (DROP, True),
                                       (1, False), (0, False), ("yes", False), (None, False)])
def test_job_flags_are_true_or_false(flag: str, value: Any, ok: bool) -> None:
    if ok:
        P.parse_job(job(**{flag: value}))
    else:
        bad_job(job(**{flag: value}), repr(flag), "true or false", "got %r" % (value,))


# ---- the task -------------------------------------------------------------------------------------
# docs/protocol.md "Job (stdin)": threads >= 1 or null, warmup/runs/seed/max_runs integers >= 0
# (max_runs null: no cap), min_seconds/max_seconds/timeout_s numbers >= 0 (max_seconds and
# timeout_s null: none), processes 1-100, xnnpack true/false, signature a key or null.
INSIDE = [("threads", 1), ("threads", 8), ("threads", None), ("warmup", 0), ("runs", 0),
          ("runs", 7), ("seed", 0), ("seed", 12345), ("max_runs", 0), ("max_runs", 1),
          ("max_runs", None), ("min_seconds", 0), ("min_seconds", 0.25),
          ("max_seconds", 0), ("max_seconds", 0.5), ("max_seconds", None),
          ("timeout_s", 0.5), ("timeout_s", 0), ("timeout_s", None), ("processes", 1),
          ("processes", 100), ("xnnpack", False), ("signature", "serving_default"),
          ("signature", None), ("runs", 3.0)]
OUTSIDE = [("threads", 0), ("threads", 1.5), ("warmup", -1), ("runs", -1), ("runs", 2.5),
           ("seed", -1), ("max_runs", -1), ("max_runs", 2.5), ("min_seconds", -0.001),
           ("max_seconds", -0.5), ("timeout_s", -0.5), ("processes", 0), ("processes", 101),
           ("processes", None), ("runs", None), ("runs", True), ("threads", False),
           ("runs", "5"), ("min_seconds", [1]), ("xnnpack", 1), ("xnnpack", None),
           ("signature", ""), ("signature", 5)]


@pytest.mark.parametrize("field, value", INSIDE)
def test_task_values_just_inside_their_range_are_kept(field: str, value: Any) -> None:
    p = P.task_params({"model": MODEL, field: value})
    assert p[field] == value
    if field in ("threads", "warmup", "runs", "seed", "max_runs", "processes") and value is not None:
        assert type(p[field]) is int          # an integer field comes back an int (3.0 -> 3)
    if field in ("min_seconds", "max_seconds", "timeout_s") and value is not None:
        assert type(p[field]) is float


@pytest.mark.parametrize("field, value", OUTSIDE)
def test_task_values_just_outside_their_range_are_bad_job(field: str, value: Any) -> None:
    bad_task({"model": MODEL, field: value}, repr(field), repr(value))


def test_a_task_that_is_not_an_object_is_bad_job() -> None:
    for t in (["t0"], "t0", None, 3):
        bad_task(t, "must be a JSON object", "got %r" % (t,))


def test_the_documented_task_defaults() -> None:
    p = P.task_params({"model": MODEL})
    assert p == {"threads": 1, "xnnpack": True, "warmup": 5, "runs": 50, "min_seconds": 1.0,
                 "max_seconds": 60.0, "max_runs": None, "seed": 0, "timeout_s": None,
                 "processes": 1, "signature": None, "input_shapes": None, "accelerator": None}
    assert type(p["min_seconds"]) is float and type(p["max_seconds"]) is float


def test_input_shapes_are_validated() -> None:
    assert P.task_params({"model": MODEL, "input_shapes": {"audio": [1, 1280]}})[
        "input_shapes"] == {"audio": [1, 1280]}
    for bad in ({"audio": [1, 0]}, {"audio": []}, {"audio": [1, True]}, {"audio": "1x3"},
                [[1, 2]], {"audio": [1.5]}):
        with pytest.raises(P.AgentError, match="'input_shapes'"):
            P.task_params({"model": MODEL, "input_shapes": bad})


def test_processes_alone_is_validated_the_same() -> None:
    assert P.task_processes({"processes": 100}) == 100 and P.task_processes({}) == 1
    with pytest.raises(P.AgentError, match="at most 100, got 101"):
        P.task_processes({"processes": 101})
    with pytest.raises(P.AgentError, match="'processes'"):
        P.task_processes({"processes": 0})


# ---- the agent's lines ----------------------------------------------------------------------------
def bad_line(line: str, *words: str) -> P.BadMessage:
    with pytest.raises(P.BadMessage) as e:
        P.parse_line(line)
    for w in words:
        assert w in e.value.message, (w, e.value.message)
    return e.value


def test_every_event_with_proto_1_is_read() -> None:
    for ev in ("hello", "progress", "error", "bye"):
        assert P.parse_line(' {"proto": 1, "event": "%s", "x": 2}\n' % ev) == {
            "proto": 1, "event": ev, "x": 2}
    assert P.parse_line('{"proto":1,"event":"result","samples_ns":[]}')["samples_ns"] == []
    assert P.parse_line('{"proto": 1.0, "event": "bye"}')["event"] == "bye"   # JSON: 1.0 == 1
    bad_line('{"proto": true, "event": "bye"}', "agent speaks protocol True")  # true is not 1


def test_a_result_needs_its_samples_list_and_no_other_event_does() -> None:
    for samples in ('null', '"1,2"', '{"a": 1}'):
        bad_line('{"proto":1,"event":"result","samples_ns":%s}' % samples, "no samples_ns list")
    bad_line('{"proto":1,"event":"result"}', "no samples_ns list")
    for ev in ("hello", "progress", "error", "bye"):   # sorted before and after "result"
        assert P.parse_line('{"proto":1,"event":"%s"}' % ev)["event"] == ev


@pytest.mark.parametrize("proto, hint", [
    (2, "upgrade edge-bench on the host"), (7, "upgrade edge-bench on the host"),
    (0, "edge-bench deploy"), (-1, "edge-bench deploy"), (None, "edge-bench deploy"),
    ('"1"', "edge-bench deploy"), ("false", "edge-bench deploy"),
])
def test_another_protocol_is_refused_with_the_way_out(proto: Any, hint: str) -> None:
    text = '{"event": "hello"}' if proto is None else '{"proto": %s, "event": "hello"}' % proto
    e = bad_line(text, "this host speaks 1")
    assert hint in (e.hint or ""), (proto, e.hint)


def test_lines_that_are_not_protocol_json() -> None:
    e = bad_line("Segmentation fault", "not protocol JSON", "'Segmentation fault'")
    assert "stdout" in (e.hint or "")
    long = "y" * 300
    e = bad_line(long, "not protocol JSON")
    assert repr("y" * 120 + "...") in e.message
    bad_line("[1, 2]", "JSON list", "'[1, 2]'")
    bad_line('"hello"', "JSON str")
    bad_line("   \n", "empty line")
    bad_line('{"proto":1,"event":"party"}', "unknown event 'party'")
    bad_line('{"proto":1}', "unknown event None")


def test_build_task_and_build_job_check_what_they_build() -> None:
    t = P.build_task("t0", P.file_ref("m.tflite", "ab" * 32), runs=3, max_runs=None,
                     timeout_s=0.5)
    assert t["model"] == {"path": "m.tflite", "sha256": "ab" * 32} and t["runs"] == 3
    j = P.build_job([t], job_id="J", python=["python3"], workdir="/wd", lock_wait_s=2,
                    interleave=1)
    assert j["lock_wait_s"] == 2.0 and type(j["lock_wait_s"]) is float
    assert j["interleave"] is True and j["proto"] == 1 and j["tasks"] == [t]
    with pytest.raises(P.AgentError):
        P.build_job([t], job_id="J", python=[], workdir="/wd")
    assert math.isfinite(P.task_params(t)["timeout_s"])
