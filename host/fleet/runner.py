"""Run a list of tasks on ONE device: connect, push, start the agent, stream results back.

Every result (or error) is handed to `emit` the moment it is known; a device failure turns the
tasks it did not finish into error results, it never raises past this module.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..config import Device
from .deploy import Blob, agent_argv, agent_blob, check_workdir, ensure_blobs, remote_path
from ..errors import (AgentError, DeviceBusy, DeviceTimeout, EdgeBenchError, ProtocolError,
                      PushCancelled, detail_of, error_detail)
from .plan import Artifact, Timing
from edge_bench_agent import protocol
from ..results.record import cancelled_result, error_result, ok_result, partial_result
from ..transports import open_transport
from ..transports.base import RemoteProcess, Transport
from ..text import plural

#: seconds past timeout_s the host waits for the agent's own `Timeout` before giving up on a job
AGENT_GRACE_S = 15.0

Emit = Callable[[Dict[str, Any]], None]
Status = Callable[[str, str], None]  # (device, text)
Progress = Callable[[str, Dict[str, Any]], None]  # (device, {"kind": "task" | "push", ...})


@dataclass
class Task:
    id: str
    artifact: Artifact
    threads: int
    timing: Timing
    #: `cpu` (the Interpreter path) or the accelerator of accel_spec, and the spec sent
    accelerator: str = "cpu"
    accel: Optional[Dict[str, Any]] = None


def agent_message(device: str, line: str) -> Dict[str, Any]:
    """One stdout line of the agent -> its message (edge_bench_agent.protocol.parse_line), or
    ProtocolError naming the device."""
    try:
        return protocol.parse_line(line)
    except protocol.BadMessage as e:
        raise ProtocolError(device, e.message, hint=e.hint) from None


def device_python(device: Device) -> List[str]:
    if device.python:
        return list(device.python)
    if device.transport == "local":
        return [sys.executable]
    return ["python3"]


class DeviceRun:
    """One device's share of a run. `cancel()` may be called from another thread."""

    def __init__(self, device: Device, tasks: Sequence[Task], emit: Emit,
                 status: Optional[Status] = None,
                 job_id: str = "job", op_profiling: bool = False,
                 progress: Optional[Progress] = None) -> None:
        self.device = device
        self.tasks = list(tasks)
        self.emit = emit
        self.status = status or (lambda d, t: None)
        self.progress = progress or (lambda d, info: None)
        self.job_id = job_id
        self.done: Dict[str, bool] = {}
        self.transport: Optional[Transport] = None
        self.proc: Optional[RemoteProcess] = None
        self.cancelled = threading.Event()
        self.bytes_pushed = 0
        self.files_pushed = 0
        self.files_present = 0
        self.hello: Dict[str, Any] = {}
        self.op_profiling = op_profiling
        self.failure: Optional[str] = None
        #: per task id, the `part` events of its worker processes that finished so far
        self.parts: Dict[str, List[Dict[str, Any]]] = {}

    # ------------------------------------------------------------------ public
    def run(self) -> None:
        name = self.device.name
        runnable = []
        for t in self.tasks:
            if t.artifact.skipped:    # deliberate (no calibration data, ...): not a failure
                self._finish(t, error_result(name, t, t.artifact.skipped, status="skipped"))
            elif t.artifact.error:    # the variant could not be made: a failure
                self._finish(t, error_result(name, t, t.artifact.error))
            else:
                runnable.append(t)
        if not runnable:
            self.status(name, "nothing to run")
            return
        try:
            self._run(runnable)
        except PushCancelled:        # interrupted: its tasks become cancelled rows below
            self._fail_rest(runnable, "cancelled")
        except EdgeBenchError as e:
            self.failure = e.detail()
            self._fail_rest(runnable, e.detail(), detail_of(e))
        except Exception as e:  # noqa: BLE001 - a bug must not lose other devices' results
            self.failure = f"internal error: {type(e).__name__}: {e}"
            self._fail_rest(runnable, self.failure, detail_of(e))
        finally:
            if self.transport is not None:
                try:
                    self.transport.close()
                except Exception:  # noqa: BLE001
                    pass
        if self.cancelled.is_set():
            self._fail_rest(runnable, "cancelled")
        if self.failure and not self.cancelled.is_set():
            self.status(name, "failed: " + self.failure)
        elif self.cancelled.is_set():
            self.status(name, "cancelled")
        else:
            self.status(name, "done")

    def summary(self) -> Dict[str, Any]:
        """What happened on this device, for the results document's `devices` section."""
        rt = self.hello.get("runtime") or {}
        return {"transport": self.device.transport, "failure": self.failure,
                "connect_attempts": getattr(self.transport, "attempts", None)
                if self.transport is not None else 0,
                "bytes_pushed": self.bytes_pushed, "files_pushed": self.files_pushed,
                "files_present": self.files_present,
                "agent_version": self.hello.get("agent_version"),
                "python": self.hello.get("python"), "runtime": rt.get("name"),
                "runtime_version": rt.get("version")}

    def cancel(self) -> None:
        self.cancelled.set()
        transport = self.transport
        if transport is not None:
            transport.interrupt()   # a push in progress stops and removes its partial file
        proc = self.proc
        if proc is not None:
            try:
                proc.cancel()
            except Exception:  # noqa: BLE001
                pass

    # ----------------------------------------------------------------- private
    def _finish(self, task: Task, result: Dict[str, Any]) -> None:
        if self.done.get(task.id):
            return
        self.done[task.id] = True
        self.emit(result)

    def _fail_rest(self, tasks: Sequence[Task], message: str,
                   detail: Optional[Dict[str, Any]] = None) -> None:
        if self.cancelled.is_set():  # interrupted before it ran: not a failure of the device
            for t in tasks:
                if not self.done.get(t.id):
                    self._finish(t, self._cut_short(t))
            return
        for t in tasks:
            if not self.done.get(t.id):
                self._finish(t, error_result(self.device.name, t, message, detail=detail))

    def _cut_short(self, t: Task) -> Dict[str, Any]:
        """An interrupted task's row: `partial` with the samples of its worker processes that
        finished (docs/protocol.md `part`), else cancelled."""
        parts = self.parts.pop(t.id, [])
        if not parts:
            return cancelled_result(self.device.name, t)
        from edge_bench_agent.job import merge_results
        return partial_result(self.device.name, t, merge_results(parts), self.hello,
                              int(parts[0].get("processes") or len(parts)))

    def _run(self, tasks: List[Task]) -> None:
        name = self.device.name
        self.status(name, "connecting")
        self.transport = open_transport(self.device)
        self.transport.on_retry = lambda text: self.status(name, text)
        self.transport.connect()
        if self.cancelled.is_set():
            return
        workdir = check_workdir(self.transport, self.transport.resolve_workdir(self.device.workdir))
        if self.device.runner == "benchmark_model":
            self._run_benchmark_model(tasks, workdir)
            return
        agent = agent_blob()
        blobs: List[Blob] = [agent]
        model_blob: Dict[str, Blob] = {}
        eval_blob: Dict[str, Blob] = {}
        for t in tasks:
            art = t.artifact
            assert art.path is not None
            model_blob[t.id] = Blob.for_file(art.path)
            blobs.append(model_blob[t.id])
            if art.model.eval is not None:
                eval_blob[t.id] = Blob.for_file(art.model.eval.path)
                blobs.append(eval_blob[t.id])
        self.status(name, "pushing")
        rep = ensure_blobs(self.transport, workdir, blobs,
                           on_push=lambda info: self.progress(name, dict(info, kind="push")))
        self.bytes_pushed += rep.bytes_pushed
        self.files_pushed += len(rep.pushed)
        self.files_present += len(rep.present)
        if rep.pushed:
            self.status(name, f"pushed {plural(len(rep.pushed), 'file')},"
                              f" {rep.bytes_pushed / 1024:.1f} KB ({len(rep.present)} already there)")
        python = device_python(self.device)
        job = self.job(tasks, workdir, model_blob, eval_blob)
        if self.cancelled.is_set():
            return
        self.status(name, f"running 0/{len(tasks)}")
        argv = agent_argv(python, workdir, agent)   # runs the bytes it verified (safepath)
        # stdin stays open for the life of the job: its EOF tells the agent that this
        # controller is gone (killed, connection dropped), and it stops (docs/protocol.md)
        self.proc = self.transport.start(argv, stdin=protocol.job_line(job),
                                         env=dict(self.device.env) or None,
                                         keep_stdin_open=True)
        if self.cancelled.is_set():  # cancel() ran between the check above and start()
            self.proc.cancel()
            return
        self._stream(tasks, python + [remote_path(workdir, agent)])   # as messages show it

    def job(self, tasks: Sequence[Task], workdir: str, model_blob: Dict[str, Blob],
            eval_blob: Dict[str, Blob]) -> Dict[str, Any]:
        """The job for the agent, built (and checked) by the shared protocol module."""
        return protocol.build_job(
            [self._task_json(t, model_blob[t.id], eval_blob.get(t.id)) for t in tasks],
            job_id=self.job_id, python=device_python(self.device), runtime=self.device.runtime,
            workdir=workdir, cooldown=self._cooldown(),
            lock_wait_s=float(self.device.lock_wait_s or 0.0), controller=_controller(),
            # the agent speaks up at least this often while a model runs, so idle_timeout_s
            # detects dead links and stalled agents without limiting how long a model may take
            heartbeat_s=heartbeat_interval(self.device.idle_timeout_s),
            interleave=any(t.timing.interleave for t in tasks), watch_stdin=True)

    def _cooldown(self) -> Optional[Dict[str, float]]:
        """The device's cooldown_temp_c / cooldown_max_s (run flags are already applied to it)."""
        if self.device.cooldown_temp_c is None:
            return None
        max_s = self.device.cooldown_max_s
        return {"temp_c": self.device.cooldown_temp_c, "max_s": 120.0 if max_s is None else max_s}

    def _run_benchmark_model(self, tasks: List[Task], workdir: str) -> None:
        """`runner: benchmark_model`: TFLite's native binary instead of the agent (no eval)."""
        from . import benchmark_model
        name = self.device.name
        assert self.transport is not None
        delegate = (self.device.delegate or "").lower()
        benchmark_model.run_tasks(
            self.transport, tasks, emit=self._finish,
            workdir=workdir, cancelled=self.cancelled.is_set,
            status=lambda text: self.status(name, text),
            delegate=delegate, op_profiling=self.op_profiling)

    def _task_json(self, t: Task, model: Blob, ev: Optional[Blob]) -> Dict[str, Any]:
        return protocol.build_task(
            t.id, protocol.file_ref(model.remote_rel, model.sha256),
            threads=t.threads, xnnpack=self.device.xnnpack,
            # runs/min_seconds/max_seconds/max_runs are per process: the totals split evenly
            **t.timing.per_process(),
            timeout_s=self.device.timeout_s,  # a hung worker is killed on the device
            eval_file=protocol.file_ref(ev.remote_rel, ev.sha256) if ev else None,
            signature=t.artifact.signature,
            input_shapes=t.artifact.model.input_shapes, accelerator=t.accel)

    def _stream(self, tasks: List[Task], argv: List[str]) -> None:
        name = self.device.name
        by_id = {t.id: t for t in tasks}
        hello: Dict[str, Any] = {}
        # a backstop: the agent kills a task's worker after timeout_s and reports `Timeout`
        # itself (with the process index); the host gives it AGENT_GRACE_S to do so
        deadline = (time.monotonic() + self.device.timeout_s + float(self.device.lock_wait_s or 0.0)
                    + AGENT_GRACE_S)
        got_bye = False
        assert self.proc is not None
        proc = self.proc
        for line in proc.lines(idle_timeout=self.device.idle_timeout_s):
            if time.monotonic() > deadline:
                proc.cancel()
                raise DeviceTimeout(name, f"job exceeded timeout_s={self.device.timeout_s:g}")
            try:
                msg = agent_message(name, line)
            except ProtocolError:
                proc.cancel()
                raise
            ev = msg["event"]
            if ev == "error" and self.cancelled.is_set():
                continue   # what our own cancel caused (a worker stopped, ControllerGone):
                #            the task becomes a cancelled row, the device is not failed
            if ev == "hello":
                hello = msg
                self.hello = msg
                if msg.get("runtime") is None:
                    self.status(name, "no TFLite runtime: " + str(msg.get("runtime_error")))
            elif ev == "progress":
                self.progress(name, dict(msg, kind="task"))
                if msg.get("started"):
                    pass  # a worker process started: the structured event above says which
                elif msg.get("heartbeat"):
                    self.status(name, f"running {msg.get('done')}/{msg.get('total')}"
                                      f" ({msg.get('elapsed_s')} s into {msg.get('task')})")
                elif "waiting_for_lock" in msg:
                    from .health import describe_lock_holder
                    self.status(name, "waiting for the device lock: "
                                + describe_lock_holder(msg.get("waiting_for_lock")))
                elif msg.get("process"):  # one of a task's worker processes finished
                    self.status(name, f"running {msg.get('done')}/{msg.get('total')}"
                                      f" ({msg.get('task')}: process {msg.get('process')}"
                                      f"/{msg.get('processes')})")
                else:
                    self.status(name, f"running {msg.get('done')}/{msg.get('total')}")
            elif ev == "part":
                if msg.get("task") not in by_id:
                    raise ProtocolError(name, f"agent sent a part for unknown task {msg.get('task')!r}")
                self.parts.setdefault(msg["task"], []).append(msg)
            elif ev == "result":
                self.parts.pop(str(msg.get("task")), None)
                t = by_id.get(msg.get("task", ""))
                if t is None:
                    raise ProtocolError(name, f"agent sent a result for unknown task {msg.get('task')!r}")
                from .health import annotate
                self._finish(t, annotate(ok_result(name, t, msg, hello)))
            elif ev == "error":
                t = by_id.get(msg.get("task") or "")
                text = f"{msg.get('type')}: {msg.get('message')}"
                if t is not None:
                    self.parts.pop(t.id, None)   # one failed process fails the task
                    r = error_result(name, t, text, detail=_event_detail(msg))
                    if isinstance(msg.get("placement"), dict):  # what the accelerator ran
                        r["placement"] = msg["placement"]
                    self._finish(t, r)
                elif msg.get("type") == protocol.DEVICE_BUSY:
                    proc.cancel()
                    raise DeviceBusy(name, f"device {name} is busy: {msg.get('message')}",
                                      hint="it runs one benchmark at a time; wait, or queue"
                                           " behind it with --lock-wait SECONDS")
                else:
                    d = _event_detail(msg)
                    raise AgentError(name, d["type"], d["message"], str(msg.get("traceback") or ""),
                                     exit_code=d["exit_code"], signal=d["signal"],
                                     signal_name=d["signal_name"], stderr_tail=d["stderr_tail"],
                                     process=d["process"], hint=_hint_for(msg))
            elif ev == "bye":
                got_bye = True
        if self.cancelled.is_set():  # cancel() already killed the remote process group
            return
        code = proc.wait(timeout=30)
        if self.cancelled.is_set():
            return
        if not got_bye or any(not self.done.get(t.id) for t in tasks):
            # the agent died (killed, crashed): kill what it left in its process group (a worker
            # still timing) so that nothing keeps running on the device
            try:
                proc.cancel()
            except Exception:  # noqa: BLE001 - best effort, the device failure is reported below
                pass
            stderr = proc.stderr_tail(1500).strip()
            tail = " | ".join(stderr.splitlines()[-4:])
            what = f"`{' '.join(argv)}` exited {code} before finishing"
            hint = None
            if code == 127 or "not found" in tail:
                hint = (f"is `{argv[0]}` installed on the device? set `python:` for"
                        f" {name} in devices.yaml")
            sig = -code if code < 0 else None
            raise AgentError(name, "AgentExited", what + (f": {tail}" if tail else ""),
                             exit_code=None if sig else code, signal=sig,
                             signal_name=_signal_name(sig), stderr_tail=stderr or None, hint=hint)


def heartbeat_interval(idle_timeout_s: float) -> float:
    """A third of the idle timeout (so two beats can be late), between 0.5 and 10 seconds."""
    return max(0.5, min(10.0, idle_timeout_s / 3.0))


def _controller() -> Dict[str, Optional[str]]:
    """Who is asking (written into the device lock so a busy device can name its holder)."""
    import getpass
    import platform
    try:
        user: Optional[str] = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = None
    return {"host": platform.node() or None, "user": user}


def _hint_for(msg: Dict[str, Any]) -> Optional[str]:
    if msg.get("type") == protocol.NO_RUNTIME:
        return "install one on the device: pip install ai-edge-litert (or tflite-runtime with numpy<2)"
    return None


def _event_detail(msg: Dict[str, Any]) -> Dict[str, Any]:
    """The structured facts of an agent `error` event (docs/protocol.md)."""
    def num(k: str) -> Optional[int]:
        v = msg.get(k)
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    tail = msg.get("stderr_tail")
    name = msg.get("signal_name")
    return error_detail(str(msg.get("type")), str(msg.get("message")), exit_code=num("exit_code"),
                        signal=num("signal"), signal_name=name if isinstance(name, str) else None,
                        stderr_tail=tail if isinstance(tail, str) else None, process=num("process"))


def _signal_name(sig: Optional[int]) -> Optional[str]:
    import signal
    try:
        return signal.Signals(sig).name if sig else None
    except ValueError:
        return None
