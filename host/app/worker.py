"""A queued device job as a worker runs it: the existing transports, runners and agent
(fleet.session), every result written into the shared store the moment it arrives.
The worker process around it (heartbeat, stalled jobs, reconnects) is app/serve.py.

Faults:
- a job whose worker died (no heartbeat for --stalled-after seconds) is put back in the queue by
  the next worker of that lab (up to queue.MAX_ATTEMPTS attempts, then failed), with a note
  saying why; the retry skips the results the dead attempt had already stored;
- a lost database connection (server restart) is re-opened: results by the store's reconnect,
  the procrastinate worker by starting it again;
- `edge-bench cancel` of a running job stops the device at once (Session.cancel).
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..errors import EdgeBenchError



@dataclass
class WorkerState:
    url: str
    lab: str
    config: Optional[str]     # the worker's devices.yaml (None: the usual search)
    stalled_after: float


_STATE: Optional[WorkerState] = None


class JobFailed(Exception):
    """A device job that cannot run here; the message is its note."""


def run_device_job(context: Any, run_id: str, device: str, lab: str, options: Dict[str, Any],
                   submitter: str, submitted_at: str) -> Dict[str, Any]:
    """The procrastinate task (runs in a thread of the worker process)."""
    from ..fleet.session import Session
    from ..results.pg import PgStore
    from .jobspec import plan_device
    from .queue import add_note, mark_running
    st = _STATE
    assert st is not None, "run_device_job runs inside `edge-bench worker`"
    job_id = int(context.job.id)
    store = PgStore(st.url)
    try:
        mark_running(store, run_id)
        done = {(r["model"], r["variant"], r["threads"], r["accelerator"]) for r in store._read(
            "SELECT model, variant, threads, accelerator FROM results"
            " WHERE run_id = ? AND device = ?",
            (run_id, device))}
        try:
            dev, tasks = plan_device(options, device, lab, st.config, skip=done)
        except EdgeBenchError as e:
            note = f"{e} (worker of lab {lab} on {socket.gethostname()})"
            add_note(store, job_id, run_id, device, note)
            raise JobFailed(note) from None
        except Exception as e:  # a bug: say so in the run's notes too, traceback in the log
            add_note(store, job_id, run_id, device, f"internal error while planning:"
                     f" {type(e).__name__}: {e} (see the worker's log)")
            raise
        if done:
            add_note(store, job_id, run_id, device,
                     f"{len(done)} results were already stored by an earlier attempt: kept,"
                     f" {len(tasks)} left to run")
        if not tasks:
            return {"results": 0}
        n = [0]

        def on_result(r: Dict[str, Any]) -> None:
            store.add_result(run_id, r)
            n[0] += 1
        session = Session({dev: tasks}, on_result=on_result, job_id=run_id,
                          op_profiling=bool(options["request"].get("op_profiling")))
        stop = threading.Event()

        def watch_abort() -> None:
            while not stop.wait(1.0):
                try:
                    if context.should_abort():
                        add_note(store, job_id, run_id, device, "cancelled while running")
                        session.cancel()
                        return
                except Exception:  # the database may be restarting: ask again next second
                    continue
        watcher = threading.Thread(target=watch_abort, name=f"abort-{device}", daemon=True)
        watcher.start()
        try:
            session.run()
        finally:
            stop.set()
        if session.cancelled:
            from procrastinate.exceptions import JobAborted
            raise JobAborted(f"run {run_id} on {device} was cancelled")
        return {"results": n[0]}
    finally:
        store.close()
