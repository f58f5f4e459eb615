"""The agent protocol (docs/protocol.md), ONE home for host and agent.

The host imports this module (`edge_bench_agent.protocol`) to build every job and to read the
agent's lines; the agent uses it to parse the job. Version, task parameters and their defaults,
event names, error types, exit codes, the lock file name and the lock-holder text live here only.
Python >= 3.8 syntax, stdlib only (it runs on the device).
"""
from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from .accel_spec import ACCELERATOR_ERROR, accel_params

AGENT_VERSION = "0.1.0"
PROTO = 1

#: the `event` of every protocol line, in the order a job emits them
EVENTS = ("hello", "progress", "part", "result", "error", "bye")
#: the error types that the host acts on (the others it reports as they are)
DEVICE_BUSY, NO_RUNTIME = "DeviceBusy", "NoRuntime"
#: every `type` an `error` event may carry (docs/protocol.md "Error types")
ERROR_TYPES = ("BadJob", NO_RUNTIME, "FileMissing", "ChecksumMismatch", "ModelLoadError",
               "InvokeError", "EvalDataError", "WorkerCrashed", DEVICE_BUSY, "Timeout",
               "UnsafeWorkdir", "InternalError", "ControllerGone", ACCELERATOR_ERROR)
#: exit codes of the job process; EXIT_CONTROLLER_GONE: a job with `watch_stdin` saw EOF on
#: its stdin (the controller died or dropped the connection), stopped its workers and left
EXIT_OK, EXIT_INTERNAL, EXIT_BAD_JOB, EXIT_BUSY, EXIT_CONTROLLER_GONE = 0, 1, 2, 3, 4

#: Task defaults, for a job that leaves a field out (the host always sends every field).
#: max_seconds is 60 s, the host's default budget (`run --max-seconds`), not TFLite
#: benchmark_model's 150 s: a task that omits it must not hold a shared device for 2.5 minutes,
#: and host and agent must agree on what an omitted field means.
TASK_DEFAULTS: Dict[str, Any] = {"threads": 1, "xnnpack": True, "warmup": 5, "runs": 50,
                                 "min_seconds": 1.0, "max_seconds": 60.0, "max_runs": None,
                                 "seed": 0, "timeout_s": None, "processes": 1,
                                 "signature": None, "input_shapes": None, "accelerator": None}
#: most worker processes one task may ask for
MAX_PROCESSES = 100
#: the device lock file, in the workdir (docs/protocol.md "Device lock"), and the file beside
#: it that names the holder (written by rename: the lock file itself is never written)
LOCK_NAME = "lock"
LOCK_HOLDER_NAME = "lock.holder"


class AgentError(Exception):
    """An error with a protocol `type` (one of ERROR_TYPES) and extra event fields."""

    def __init__(self, type_: str, message: str,
                 extra: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.extra = extra or {}


class BadMessage(ValueError):
    """A line from the agent that is not a valid protocol message (the host wraps it)."""

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# --------------------------------------------------------------------------- tasks

def _num(task: Dict[str, Any], key: str, kind: type, minimum: float,
         allow_none: bool = False) -> Any:
    value = task.get(key, TASK_DEFAULTS[key])
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < minimum \
            or (kind is int and int(value) != value):
        raise AgentError("BadJob", "task field %r must be %s >= %s, got %r"
                         % (key, kind.__name__, minimum, value))
    return kind(value)


def task_processes(task: Dict[str, Any]) -> int:
    """The task's validated `processes` (1..MAX_PROCESSES); AgentError BadJob otherwise."""
    k = _num(task, "processes", int, 1)
    if k > MAX_PROCESSES:
        raise AgentError("BadJob", "task field 'processes' must be at most %d, got %r"
                         % (MAX_PROCESSES, k))
    return k


def task_params(task: Any) -> Dict[str, Any]:
    """Validated task settings with defaults (TASK_DEFAULTS); AgentError BadJob otherwise."""
    if not isinstance(task, dict):
        raise AgentError("BadJob", "a task must be a JSON object, got %r" % (task,))
    xnnpack = task.get("xnnpack", True)
    if not isinstance(xnnpack, bool):
        raise AgentError("BadJob", "task field 'xnnpack' must be true or false, got %r"
                         % (xnnpack,))
    signature = task.get("signature", TASK_DEFAULTS["signature"])
    if signature is not None and (not isinstance(signature, str) or not signature):
        raise AgentError("BadJob", "task field 'signature' must be a SignatureDef key or null, "
                         "got %r" % (signature,))
    shapes = task.get("input_shapes")
    if shapes is not None and not (isinstance(shapes, dict) and all(
            isinstance(k, str) and isinstance(v, list) and v and all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)
            for k, v in shapes.items())):
        raise AgentError("BadJob", "task field 'input_shapes' must map input tensor names to "
                         "shapes of whole numbers >= 1, or be null, got %r" % (shapes,))
    try:
        accelerator = accel_params(task.get("accelerator"))
    except ValueError as e:
        raise AgentError("BadJob", str(e))
    return {"threads": _num(task, "threads", int, 1, allow_none=True), "xnnpack": xnnpack,
            "warmup": _num(task, "warmup", int, 0), "runs": _num(task, "runs", int, 0),
            "min_seconds": _num(task, "min_seconds", float, 0),
            "max_seconds": _num(task, "max_seconds", float, 0, allow_none=True),
            "max_runs": _num(task, "max_runs", int, 0, allow_none=True),
            "seed": _num(task, "seed", int, 0),
            "timeout_s": _num(task, "timeout_s", float, 0, allow_none=True),
            "processes": task_processes(task), "signature": signature, "input_shapes": shapes,
            "accelerator": accelerator}


def file_ref(path: str, sha256: Optional[str]) -> Dict[str, Any]:
    """A job's reference to a pushed file: path relative to the workdir, and its sha256."""
    return {"path": path, "sha256": sha256}


def build_task(task_id: str, model: Dict[str, Any], *, threads: Optional[int] = 1,
               xnnpack: bool = True, warmup: int = 5, runs: int = 50,
               min_seconds: float = 1.0, max_seconds: Optional[float] = 60.0,
               max_runs: Optional[int] = None, processes: int = 1,
               timeout_s: Optional[float] = None, seed: int = 0,
               eval_file: Optional[Dict[str, Any]] = None,
               input_file: Optional[Dict[str, Any]] = None,
               signature: Optional[str] = None,
               input_shapes: Optional[Dict[str, List[int]]] = None,
               accelerator: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One task of a job, every field explicit; validated as the agent will (AgentError).
    `signature`: the SignatureDef whose inputs are named and whose outputs are read (None: the
    model's default, serving_default else the first). `input_shapes`: {input tensor name:
    shape} for inputs with dynamic (-1) dims, resized to it before allocation. `accelerator`:
    see accel_spec (None: the Interpreter path on the CPU)."""
    task = {"id": task_id, "model": model, "threads": threads, "xnnpack": xnnpack,
            "warmup": warmup, "runs": runs, "min_seconds": min_seconds,
            "max_seconds": max_seconds, "max_runs": max_runs, "processes": processes,
            "timeout_s": timeout_s, "seed": seed, "eval": eval_file, "input": input_file,
            "signature": signature, "input_shapes": input_shapes}
    if accelerator is not None:  # left out otherwise: a job older agents still accept
        task["accelerator"] = accelerator
    task_params(task)
    return task


def build_job(tasks: Sequence[Dict[str, Any]], *, job_id: str, python: Sequence[str],
              runtime: Optional[str] = "auto", workdir: str,
              cooldown: Optional[Dict[str, float]] = None, lock_wait_s: float = 0.0,
              controller: Optional[Dict[str, Any]] = None,
              heartbeat_s: Optional[float] = None, interleave: bool = False,
              watch_stdin: bool = False) -> Dict[str, Any]:
    """The job the host sends on the agent's stdin; checked by parse_job before it leaves.
    `watch_stdin`: the host keeps the job's stdin open for the life of the job, and EOF on it
    means "the controller is gone" (see job_line and docs/protocol.md)."""
    job = {"proto": PROTO, "job_id": job_id, "python": list(python), "runtime": runtime,
           "workdir": workdir, "cooldown": cooldown, "lock_wait_s": float(lock_wait_s),
           "controller": controller, "heartbeat_s": heartbeat_s, "tasks": list(tasks),
           "interleave": bool(interleave), "watch_stdin": bool(watch_stdin)}
    parse_job(json.dumps(job))
    return job


def job_line(job: Dict[str, Any]) -> bytes:
    """The job as the host writes it on stdin: ONE line of JSON ending in a newline, so the agent
    can read it without waiting for EOF (with `watch_stdin` the host then keeps stdin open)."""
    return (json.dumps(job, separators=(",", ":")) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- jobs

def parse_job(text: str) -> Dict[str, Any]:
    """The validated job dict; AgentError BadJob saying what is wrong. Task fields are checked
    per task later (a task with a bad field fails alone)."""
    try:
        job = json.loads(text)
    except ValueError as e:
        raise AgentError("BadJob", "the job on stdin is not JSON (%s): %r" % (e, text[:200]))
    if not isinstance(job, dict):
        raise AgentError("BadJob", "the job must be a JSON object, got %s" % type(job).__name__)
    if not speaks_proto(job.get("proto", PROTO)):
        raise AgentError("BadJob", "job speaks protocol %r, this agent %s speaks %d: deploy the "
                         "agent that matches the host" % (job.get("proto"), AGENT_VERSION, PROTO))
    python = job.get("python", [sys.executable])
    if isinstance(python, str):
        python = python.split()
    if not isinstance(python, list) or not python \
            or not all(isinstance(x, str) and x for x in python):
        raise AgentError("BadJob", "job 'python' must be a non-empty argv list, got %r"
                         % (job.get("python"),))
    job["python"] = python
    tasks = job.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise AgentError("BadJob", "job 'tasks' must be a list of objects")
    cooldown = job.get("cooldown")
    if cooldown is not None and not isinstance(cooldown, dict):
        raise AgentError("BadJob", "job 'cooldown' must be an object {temp_c, max_s}")
    wait = job.get("lock_wait_s")
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float))
                             or not math.isfinite(wait) or wait < 0):
        raise AgentError("BadJob", "job 'lock_wait_s' must be a number >= 0, got %r" % (wait,))
    beat = job.get("heartbeat_s")
    if beat is not None and (isinstance(beat, bool) or not isinstance(beat, (int, float))
                             or not math.isfinite(beat) or beat <= 0):
        raise AgentError("BadJob", "job 'heartbeat_s' must be a number > 0, got %r" % (beat,))
    controller = job.get("controller")
    if controller is not None and not isinstance(controller, dict):
        raise AgentError("BadJob", "job 'controller' must be an object {host, user}")
    for flag in ("interleave", "watch_stdin"):
        if not isinstance(job.get(flag, False), bool):
            raise AgentError("BadJob", "job %r must be true or false, got %r"
                             % (flag, job.get(flag)))
    return job


# --------------------------------------------------------------------------- lines

def message(event: str, **fields: Any) -> Dict[str, Any]:
    """One protocol message: {"proto", "event", **fields}."""
    msg: Dict[str, Any] = {"proto": PROTO, "event": event}
    msg.update(fields)
    return msg


def speaks_proto(value: Any) -> bool:
    """The "proto" field of a job or a line names this protocol. JSON's `true` is not 1 (Python
    says True == 1); 1.0 is (JSON does not tell the two numbers apart)."""
    return value == PROTO and not isinstance(value, bool)


def parse_line(line: str) -> Dict[str, Any]:
    """One stdout line of the agent -> the message dict; BadMessage saying what is wrong."""
    text = line.strip()
    if not text:
        raise BadMessage("agent printed an empty line")
    try:
        msg = json.loads(text)
    except ValueError:
        raise BadMessage("agent printed something that is not protocol JSON: %r" % _clip(text),
                         hint="something on the device writes to stdout; check the python"
                              " command and its startup files")
    if not isinstance(msg, dict):
        raise BadMessage("agent printed a JSON %s, expected an object: %r"
                         % (type(msg).__name__, _clip(text)))
    proto = msg.get("proto")
    if not speaks_proto(proto):
        newer = isinstance(proto, int) and not isinstance(proto, bool) and proto > PROTO
        raise BadMessage("agent speaks protocol %r, this host speaks %d" % (proto, PROTO),
                         hint=("upgrade edge-bench on the host" if newer else
                               "the agent on the device is stale: run `edge-bench deploy` to"
                               " push the current one"))
    event = msg.get("event")
    if event not in EVENTS:
        raise BadMessage("agent sent unknown event %r" % (event,))
    if event in ("result", "part") and not isinstance(msg.get("samples_ns"), list):
        raise BadMessage("agent %s has no samples_ns list" % event)
    return msg


def _clip(s: str, n: int = 120) -> str:
    return s if len(s) <= n else s[:n] + "..."


# --------------------------------------------------------------------------- device lock

def lock_holder(job: Dict[str, Any]) -> Dict[str, Any]:
    """What a job writes into <workdir>/lock while it holds it."""
    ctl = job.get("controller") or {}
    now = time.time()
    try:
        device_host: Optional[str] = socket.gethostname()
    except Exception:  # noqa: BLE001
        device_host = None
    return {"pid": os.getpid(), "job_id": job.get("job_id"),
            "controller_host": ctl.get("host"), "controller_user": ctl.get("user"),
            "device_host": device_host,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "since_unix": round(now, 3), "agent_version": AGENT_VERSION}


def describe_holder(holder: Any, pid_exited: bool = False) -> str:
    """'held by job J (pid P, since T) from controller user@host' (host and agent alike);
    `pid_exited`: the agent saw that pid is gone while a worker still holds the lock."""
    if not isinstance(holder, dict) or not holder:
        return "held by another process (no holder info in the lock file)"
    text = "held by job %s (pid %s, since %s)" % (holder.get("job_id") or "?",
                                                 holder.get("pid") or "?",
                                                 holder.get("since") or "?")
    host, user = holder.get("controller_host"), holder.get("controller_user")
    if host or user:
        text += " from controller %s%s" % (user + "@" if user else "", host or "?")
    if pid_exited:
        text += "; that pid has exited but a worker process it started still holds the lock"
    return text

