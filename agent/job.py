"""The job process: parse the job, take the device lock, schedule the tasks' worker processes,
merge each task's results and stream the events (docs/protocol.md)."""
from __future__ import annotations

import json
import os
import threading
import time
import traceback
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

from . import interference, lock
from .facts import _safe, read_temp_c
from .output import emit, emit_error, log, write_line
from .protocol import (DEVICE_BUSY, EXIT_BAD_JOB, EXIT_BUSY, EXIT_CONTROLLER_GONE, EXIT_INTERNAL,
                       AgentError, lock_holder, parse_job, task_processes)
from .runtime import hello_event
from .supervise import run_worker, stop_workers


class _HeldLock:
    """The device lock this job holds (fd, workdir), released exactly once: by run_job when
    the job ends, or by the stdin watcher when the controller is gone."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: Optional[Tuple[Optional[int], str]] = None

    def set(self, fd: Optional[int], workdir: str) -> None:
        with self._guard:
            self._held = (fd, workdir)

    def release(self) -> None:
        """Release the lock, or wait until the other thread's release finished: a caller that
        returns (the main thread, just before the process exits) must never find lock.holder
        still on disk while the kernel frees the flock at exit (a race that left lock.holder
        behind after kill -9 of the controller: the watcher thread had taken the lock but not
        yet unlinked the holder file when the main thread ended the process)."""
        with self._guard:
            held, self._held = self._held, None
            if held is not None:
                lock.release_lock(held[0], held[1])


_LOCK = _HeldLock()


def watch_controller(stream: IO[bytes]) -> threading.Thread:
    """Job field `watch_stdin`: the controller keeps the job's stdin open for as long as it
    wants the job. A thread reads it (discarding anything) until EOF; EOF means the controller
    is gone (killed, its SSH channel closed, its adb shell killed): the workers are stopped
    (TERM, then KILL after supervise.KILL_GRACE_S), the device lock is released and the job
    process exits EXIT_CONTROLLER_GONE at once (docs/protocol.md "Controller gone")."""
    t = threading.Thread(target=_watch, args=(stream,), name="controller-watch", daemon=True)
    t.start()
    return t


def _watch(stream: IO[bytes]) -> None:
    read = getattr(stream, "read1", stream.read)
    try:
        while read(65536):
            pass
    except (OSError, ValueError):
        pass
    log("EOF on stdin: the controller is gone; stopping the workers and freeing the device lock")
    stop_workers()
    _LOCK.release()
    # the controller is gone, so probably nobody reads this; never let a full pipe hold us
    say = threading.Thread(target=_say_gone, daemon=True)
    say.start()
    say.join(1.0)
    os._exit(EXIT_CONTROLLER_GONE)


def _say_gone() -> None:
    try:
        emit_error(None, "ControllerGone", "stdin closed: the controller is gone; workers"
                   " stopped, device lock released")
        emit("bye", tasks=0, errors=1)
    except Exception:  # noqa: BLE001 - the reader is gone: nothing to tell
        pass


def _read_job_text(stream: IO[bytes]) -> str:
    """The job text: up to EOF, or as soon as the lines read so far form one JSON object."""
    text = ""
    while True:
        line = stream.readline()
        if not line:
            return text
        text += line.decode("utf-8", "replace")
        stripped = text.lstrip()
        if stripped and not stripped.startswith("{"):
            return text
        try:
            json.loads(text)
            return text
        except ValueError:
            continue


def cooldown_wait(cfg: Optional[Dict[str, Any]],
                  temp_fn: Callable[[], Optional[float]] = read_temp_c,
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> float:
    """Wait (polling every 1 s, at most max_s of `clock`) until the temperature is below
    temp_c; returns the seconds waited."""
    if not cfg or cfg.get("temp_c") is None:
        return 0.0
    limit, max_s = float(cfg["temp_c"]), float(cfg.get("max_s", 120.0))
    start = clock()
    while True:
        temp = _safe(temp_fn)
        waited = clock() - start
        if temp is None or temp < limit or waited >= max_s:
            return round(waited, 3)
        sleep(min(1.0, max(0.0, max_s - waited)))


def run_job(job: Dict[str, Any]) -> int:
    """Take the device lock, run every task of a parsed job, each in its own worker; stream
    events. Exit code 0 (3 when the device is busy: DeviceBusy)."""
    tasks = job["tasks"]
    workdir = os.path.expanduser(str(job.get("workdir") or os.getcwd()))
    runtime_req = str(job.get("runtime") or "auto")
    hello = hello_event(runtime_req)
    emit("hello", job_id=job.get("job_id"), **hello)
    resolved = hello["runtime"]["module"] if hello["runtime"] else runtime_req

    def waiting(holder: Optional[Dict[str, Any]], left: float) -> None:
        emit("progress", done=0, total=len(tasks), task=None, waiting_for_lock=holder,
             lock_wait_left_s=round(left, 1))

    try:
        lock_fd = lock.acquire_lock(workdir, lock_holder(job),
                                    float(job.get("lock_wait_s") or 0.0), on_wait=waiting)
    except AgentError as e:
        emit_error(None, e.type, e.message, None, **e.extra)
        emit("bye", tasks=0, errors=1)
        return EXIT_BUSY if e.type == DEVICE_BUSY else EXIT_INTERNAL
    _LOCK.set(lock_fd, workdir)
    try:
        return _run_tasks(job, tasks, workdir, resolved, lock_fd)
    finally:
        _LOCK.release()


def _task_processes(task: Dict[str, Any]) -> int:
    try:
        return task_processes(task)
    except AgentError:
        return 1  # the worker reports the bad field as this task's error


def schedule(ks: List[int], interleave: bool) -> List[Tuple[int, int]]:
    """(task index, process index) in the order the workers run, for tasks of ks[i] processes:
    each task's processes back to back, or with `interleave` round-robin over the tasks
    (process 0 of every task, then process 1 of every task, ...), so that slow drift (heat,
    other load) touches all alike."""
    if not interleave:
        return [(i, p) for i, k in enumerate(ks) for p in range(k)]
    return [(i, p) for p in range(max(ks or [0])) for i, k in enumerate(ks) if p < k]


def merge_results(parts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One task's `result` from the results of its worker processes (in process order):
    samples concatenated in process order with the count of each in `process_runs` (the host
    splits them again: statistics between processes are its job); init, first inference and
    eval from process 0, the environment before from the first and after from the last."""
    first, last = parts[0], parts[-1]
    out = dict(first)
    out["samples_ns"] = [x for p in parts for x in p.get("samples_ns") or []]
    out["runs"] = len(out["samples_ns"])
    out["processes"] = len(parts)
    out["process_runs"] = [len(p.get("samples_ns") or []) for p in parts]
    out["process_init_ms"] = [p.get("init_ms") for p in parts]
    out["process_first_inference_ms"] = [p.get("first_inference_ms") for p in parts]
    stops = [p.get("stopped_by") for p in parts]
    out["stopped_by"] = stops[0] if len(set(stops)) == 1 else ",".join(
        sorted(set(str(x) for x in stops)))
    out["loop_s"] = sum(float(p.get("loop_s") or 0.0) for p in parts)
    out["cooldown_s"] = sum(float(p.get("cooldown_s") or 0.0) for p in parts)
    rss = [p["peak_rss_kb"] for p in parts if p.get("peak_rss_kb")]
    out["peak_rss_kb"] = max(rss) if rss else None
    info = dict(last.get("device_info") or {})
    before = first.get("device_info") or {}
    for key in ("temp_c_before", "throttled_before", "cooling_devices_before"):
        info[key] = before.get(key)
    out["device_info"] = info
    out["interference"] = interference.merge([p.get("interference") for p in parts])
    return out


def _run_tasks(job: Dict[str, Any], tasks: List[Dict[str, Any]], workdir: str,
               resolved: str, lock_fd: Optional[int]) -> int:
    """Run every task in its worker process(es) (task field `processes`, default 1): errors
    are relayed at once, the results of a task's processes are merged into its one `result`."""
    for i, task in enumerate(tasks):
        task.setdefault("id", "t%d" % i)
    need = [_task_processes(t) for t in tasks]
    order = schedule(need, bool(job.get("interleave")))
    parts: List[List[Dict[str, Any]]] = [[] for _ in tasks]
    failed = [False] * len(tasks)
    done = errors = 0
    beat = job.get("heartbeat_s")
    for i, proc_no in order:
        task, task_id = tasks[i], tasks[i]["id"]
        if failed[i]:
            continue  # one failed process fails the task: its other processes are not run
        try:
            # cool down before a task's first process only: "before each model", as configured
            waited = cooldown_wait(job.get("cooldown")) if proc_no == 0 else 0.0
            timeout = task.get("timeout_s")
            if proc_no and task.get("eval"):
                task = dict(task, eval=None)  # outputs are scored once, from process 0
            payload = {"task": task, "runtime": resolved, "workdir": workdir,
                       "cooldown_s": waited, "job_id": job.get("job_id")}
            if need[i] > 1:
                payload["process"] = proc_no
            # which task and process starts now: the host shows it as the device's current work
            emit("progress", done=done, total=len(tasks), task=task_id, started=True,
                 process=proc_no + 1, processes=need[i])
            got, errs = run_worker(job["python"], payload,
                                   float(timeout) if timeout else None,
                                   float(beat) if beat else None, (done, len(tasks)),
                                   on_result=parts[i].append, lock_fd=lock_fd)
            if errs or not got:
                failed[i] = True
                errors += 1
        except Exception as e:  # noqa: BLE001 - one task's trouble never ends the job
            emit_error(task_id, "InternalError", "%s: %s" % (type(e).__name__, e),
                       traceback.format_exc())
            failed[i] = True
            errors += 1
        if failed[i] or len(parts[i]) == need[i]:
            if not failed[i]:
                write_line(merge_results(parts[i]))
            parts[i] = []
            done += 1
            emit("progress", done=done, total=len(tasks), task=task_id)
        else:
            # what this process measured, before the task's other processes run (interleaved:
            # in later rounds): an interrupted run keeps it as a `partial` result
            write_line(dict(parts[i][-1], event="part", task=task_id, process=proc_no,
                            processes=need[i]))
            emit("progress", done=done, total=len(tasks), task=task_id, process=proc_no + 1,
                 processes=need[i])
    emit("bye", tasks=len(tasks), errors=errors)
    return 0


def job_main(stdin: IO[bytes]) -> int:
    text = _read_job_text(stdin)
    try:
        job = parse_job(text)
    except AgentError as e:
        emit("hello", job_id=None, **hello_event("auto"))
        emit_error(None, e.type, e.message)
        emit("bye", tasks=0, errors=1)
        return EXIT_BAD_JOB
    if job.get("watch_stdin"):
        watch_controller(stdin)
    return run_job(job)
