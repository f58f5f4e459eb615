"""Worker processes: start one per task process, relay its lines, catch crashes and timeouts."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections import deque
from typing import IO, Any, Callable, Deque, Dict, List, Optional, Tuple

from .output import emit, emit_error, log, write_line, write_raw
from .protocol import PROTO
from .safepath import worker_argv

STDERR_TAIL_LINES = 40
#: seconds stop_workers() gives a worker after SIGTERM before SIGKILL
KILL_GRACE_S = 2.0


class _Workers:
    """The worker processes alive now, so that the job can stop them all at once when its
    controller goes away (job.py's stdin watcher); once stopping, no new worker starts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: List["subprocess.Popen[bytes]"] = []
        self.stopping = False


_WORKERS = _Workers()


def stop_workers(grace_s: float = KILL_GRACE_S) -> int:
    """SIGTERM every live worker, SIGKILL what is left after `grace_s`; no worker starts after
    this. Returns how many were stopped. Safe to call from any thread."""
    with _WORKERS.lock:
        _WORKERS.stopping = True
        procs = list(_WORKERS.live)
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                pass
    return len(procs)


def _signal(proc: "subprocess.Popen[bytes]", sig: int) -> None:
    try:
        proc.send_signal(sig)
    except OSError:
        pass


def worker_entry() -> List[str]:
    """How a worker starts this agent again: through the bootstrap the job was started by
    (safepath.BOOTSTRAP: the file read once and verified again), else the artifact the job was
    started as (`python agent-<sha>.pyz`), else the installed package."""
    boot = worker_argv()
    if boot is not None:
        return boot
    entry = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if entry and os.path.isfile(entry) and zipfile.is_zipfile(entry):
        return [entry]
    return ["-m", "edge_bench_agent"]


def _pump(stream: IO[bytes], sink: Callable[[bytes], None]) -> None:
    try:
        for line in iter(stream.readline, b""):
            sink(line)
    except Exception:  # noqa: BLE001
        pass
    finally:
        sink(b"")


def _stderr_sink(tail: Deque[str]) -> Callable[[bytes], None]:
    def sink(chunk: bytes) -> None:
        if not chunk:
            return
        tail.append(chunk.decode("utf-8", "replace").rstrip("\n"))
        try:
            os.write(2, chunk)
        except OSError:
            pass
    return sink


def _crash_message(rc: int, python: List[str], tail: Deque[str]) -> Tuple[str, Dict[str, Any]]:
    if rc < 0:
        try:
            signame = signal.Signals(-rc).name
        except ValueError:
            signame = "signal %d" % -rc
        head = "worker killed by %s" % signame
        extra: Dict[str, Any] = {"signal": -rc, "signal_name": signame, "exit_code": None}
    else:
        head = "worker exited with code %d without a result" % rc
        extra = {"signal": None, "exit_code": rc}
    text = "\n".join(tail).strip()
    extra["stderr_tail"] = text or None
    msg = "%s (python: %s)%s" % (head, " ".join(python),
                                 "; stderr tail:\n" + text if text else "; no stderr output")
    return msg, extra


def run_worker(python: List[str], payload: Dict[str, Any], timeout_s: Optional[float],
               heartbeat_s: Optional[float] = None, position: Tuple[int, int] = (0, 1),
               on_result: Optional[Callable[[Dict[str, Any]], None]] = None,
               lock_fd: Optional[int] = None) -> Tuple[int, int]:
    """Run one task in a child process. Its `error` events are relayed at once; its `result`
    goes to `on_result` (default: relayed as is). `lock_fd` (the device lock) is inherited by the
    worker. Returns (result events, error events)."""
    task_id = payload["task"].get("id")
    extra = {"process": payload["process"]} if "process" in payload else {}
    argv = list(python) + worker_entry() + ["--worker"]
    proc: "Optional[subprocess.Popen[bytes]]" = None
    failed: Optional[OSError] = None
    with _WORKERS.lock:
        if _WORKERS.stopping:   # the controller is gone: the job is ending
            return 0, 0
        try:
            # the worker inherits the lock fd: the device stays locked while any process of
            # this job is timing, even if the job process itself is killed
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE,
                                    pass_fds=(lock_fd,) if lock_fd is not None else ())
        except OSError as e:
            failed = e
        else:
            _WORKERS.live.append(proc)
    if proc is None:
        emit_error(task_id, "WorkerCrashed", "cannot start the worker %s: %s" % (argv, failed),
                   None, **extra)
        return 0, 1
    try:
        return _supervise(proc, python, payload, task_id, timeout_s, heartbeat_s, position,
                          on_result, extra)
    finally:
        # never leave a worker behind: also when relaying fails (the controller's end of
        # stdout closed: BrokenPipeError) the worker and its hold on the lock go with the job
        if proc.poll() is None:
            _signal(proc, signal.SIGKILL)
            proc.wait()
        with _WORKERS.lock:
            _WORKERS.live.remove(proc)


def _supervise(proc: "subprocess.Popen[bytes]", python: List[str], payload: Dict[str, Any],
               task_id: Optional[str], timeout_s: Optional[float],
               heartbeat_s: Optional[float], position: Tuple[int, int],
               on_result: Optional[Callable[[Dict[str, Any]], None]],
               extra: Dict[str, Any]) -> Tuple[int, int]:
    """Feed the started worker its task, relay its lines, then judge how it ended."""
    tail: Deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    lines: "queue.Queue[bytes]" = queue.Queue()
    readers = [threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, _stderr_sink(tail)),
                                daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.stdin.write(json.dumps(payload).encode("utf-8"))
        proc.stdin.close()
    except OSError:
        pass
    results, errors, timed_out = _relay(lines, task_id, timeout_s, heartbeat_s, position,
                                        on_result, extra)
    if timed_out:
        proc.kill()
    rc = proc.wait()
    for t in readers:
        t.join(5.0)
    if _WORKERS.stopping:    # stopped by stop_workers(): the job is ending, not a task failure
        return results, errors
    if timed_out:
        emit_error(task_id, "Timeout", "task did not finish within timeout_s=%s; worker killed"
                   % timeout_s, None, stderr_tail="\n".join(tail).strip() or None, **extra)
        return results, errors + 1
    if results or errors:
        if rc != 0 and results:
            log("worker for %s exited with %d after its result" % (task_id, rc))
        return results, errors
    msg, info = _crash_message(rc, python, tail)
    info.update(extra)
    emit_error(task_id, "WorkerCrashed", msg, None, **info)
    return 0, 1


def _relay(lines: "queue.Queue[bytes]", task_id: Optional[str], timeout_s: Optional[float],
           heartbeat_s: Optional[float] = None, position: Tuple[int, int] = (0, 1),
           on_result: Optional[Callable[[Dict[str, Any]], None]] = None,
           extra: Optional[Dict[str, Any]] = None) -> Tuple[int, int, bool]:
    """Forward the worker's protocol lines (non-JSON noise goes to stderr) until its EOF.
    With heartbeat_s, a `progress` event with "heartbeat": true goes out whenever the worker has
    been quiet that long, so the host can tell a long model from a dead link."""
    start = time.monotonic()
    deadline = start + timeout_s if timeout_s else None
    results = errors = 0
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if heartbeat_s:
            wait = heartbeat_s if wait is None else min(wait, heartbeat_s)
        try:
            raw = lines.get(timeout=wait)
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                return results, errors, True
            emit("progress", done=position[0], total=position[1], task=task_id, heartbeat=True,
                 elapsed_s=round(time.monotonic() - start, 1), **(extra or {}))
            continue
        if not raw:
            return results, errors, False
        msg = _parse_event(raw)
        if msg is None:
            log("worker stdout (not protocol): " + raw.decode("utf-8", "replace").rstrip())
            continue
        had_task = msg.get("task") is not None
        if not had_task:
            msg["task"] = task_id
        if msg["event"] == "result" and on_result is not None:
            on_result(msg)
        elif had_task and not extra:  # already one compact line: pass it on as is
            write_raw(raw.rstrip(b"\r\n").decode("utf-8") + "\n")
        else:
            msg.update(extra or {})
            write_line(msg)
        results += msg["event"] == "result"
        errors += msg["event"] == "error"


def _parse_event(raw: bytes) -> Optional[Dict[str, Any]]:
    try:
        msg = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    if isinstance(msg, dict) and msg.get("proto") == PROTO and msg.get("event") in (
            "result", "error"):
        return msg
    return None
