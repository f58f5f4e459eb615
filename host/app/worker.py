"""`edge-bench worker`: a lab host's service. It takes its lab's jobs from the queue, runs each
with the existing transports, runners and agent (fleet.session), and writes every result into
the shared store the moment it arrives.

Faults:
- a job whose worker died (no heartbeat for --stalled-after seconds) is put back in the queue by
  the next worker of that lab (up to queue.MAX_ATTEMPTS attempts, then failed), with a note
  saying why; the retry skips the results the dead attempt had already stored;
- a lost database connection (server restart) is re-opened: results by the store's reconnect,
  the procrastinate worker by starting it again;
- `edge-bench cancel` of a running job stops the device at once (Session.cancel).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..errors import EdgeBenchError, UsageError

log = logging.getLogger(__name__)


@dataclass
class WorkerState:
    url: str
    lab: str
    fleet: Any
    stalled_after: float


_STATE: Optional[WorkerState] = None


class JobFailed(Exception):
    """A device job that cannot run here; the message is its note."""


def run_device_job(context: Any, run_id: str, device: str, lab: str, options: Dict[str, Any],
                   submitter: str, submitted_at: str) -> Dict[str, Any]:
    """The procrastinate task (runs in a thread of the worker process)."""
    from ..fleet.session import Session
    from ..results.pg import PgStore
    from .jobspec import plan_tasks
    from .queue import add_note, mark_running
    st = _STATE
    assert st is not None, "run_device_job runs inside `edge-bench worker`"
    job_id = int(context.job.id)
    store = PgStore(st.url)
    try:
        mark_running(store, run_id)
        dev = st.fleet.devices.get(device)
        if dev is None or dev.lab != lab:
            note = (f"device {device} is not in lab {lab} of {st.fleet.path or 'devices.yaml'}"
                    f" on {socket.gethostname()}")
            add_note(store, job_id, run_id, device, note)
            raise JobFailed(note)
        dev = dev.with_overrides(**options.get("overrides") or {})
        done = {(r["model"], r["variant"], r["threads"]) for r in store._read(
            "SELECT model, variant, threads FROM results WHERE run_id = ? AND device = ?",
            (run_id, device))}
        try:
            tasks = plan_tasks(options, skip=done)
        except EdgeBenchError as e:
            add_note(store, job_id, run_id, device, str(e))
            raise JobFailed(str(e)) from None
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
                          op_profiling=bool(options.get("op_profiling")))
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


async def _sweep(app: Any, store: Any, worker_row: int, st: WorkerState) -> None:
    """Heartbeat of this worker, stalled jobs of dead workers back in the queue, runs whose
    jobs have all ended given their final status. Runs every few seconds."""
    from procrastinate import jobs as pjobs
    from .queue import MAX_ATTEMPTS, TASK_NAME, add_note, finalize_runs, queue_name
    every = max(0.5, min(5.0, st.stalled_after / 4))
    while True:
        try:
            await asyncio.to_thread(store._write, lambda db: db.execute(
                "UPDATE edge_bench_workers SET heartbeat = now() WHERE id = ?", (worker_row,)))
            stalled = await app.job_manager.get_stalled_jobs(
                queue=queue_name(st.lab), task_name=TASK_NAME,
                seconds_since_heartbeat=st.stalled_after)
            for job in stalled:
                kw = job.task_kwargs
                why = f"the worker running it stopped (no heartbeat for {st.stalled_after:g} s)"
                if job.attempts + 1 < MAX_ATTEMPTS:
                    await app.job_manager.retry_job(job)
                    note = f"{why}: queued again (attempt {job.attempts + 2} of {MAX_ATTEMPTS})"
                else:
                    await app.job_manager.finish_job_by_id_async(
                        job.id, status=pjobs.Status.FAILED, delete_job=False)
                    note = f"{why}: failed after {MAX_ATTEMPTS} attempts"
                await asyncio.to_thread(add_note, store, int(job.id), str(kw.get("run_id")),
                                        str(kw.get("device")), note)
                print(f"edge-bench worker: job {job.id} ({kw.get('device')}): {note}",
                      file=sys.stderr, flush=True)
            await asyncio.to_thread(finalize_runs, store)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a restarting server: try again next round
            print(f"edge-bench worker: sweep: {_one_line(e, store)}", file=sys.stderr, flush=True)
        await asyncio.sleep(every)


def _one_line(e: BaseException, store: Any) -> str:
    return store._say(e) if hasattr(store, "_say") else " ".join(str(e).split())


def serve(url: str, lab: str, config: Optional[str], stalled_after: float = 30.0,
          once: bool = False) -> int:
    """Run the worker until SIGTERM/SIGINT (or, with `once`, until the queue is empty)."""
    global _STATE
    from ..config import find_config, load_fleet
    from .queue import make_app, open_shared, queue_name
    fleet = load_fleet(find_config(config))
    mine = sorted(n for n, d in fleet.devices.items() if d.lab == lab)
    if not mine:
        labs = sorted({d.lab for d in fleet.devices.values()})
        raise UsageError(f"no device in {fleet.path or 'the built-in fleet'} has lab: {lab}",
                         hint=f"labs there: {', '.join(labs)}; set `lab: {lab}` on this lab's"
                              " devices in devices.yaml")
    store = open_shared(url, "worker")
    _STATE = WorkerState(url=url, lab=lab, fleet=fleet, stalled_after=stalled_after)
    row = store._write(lambda db: db.execute(
        "INSERT INTO edge_bench_workers(lab, host, pid, devices) VALUES (?, ?, ?, ?) RETURNING id",
        (lab, socket.gethostname(), os.getpid(), json.dumps(mine))).fetchone()[0])
    # rows of workers that died without unregistering, a day old: no longer worth showing
    store._write(lambda db: db.execute(
        "DELETE FROM edge_bench_workers WHERE heartbeat < now() - interval '1 day'"))
    print(f"edge-bench worker: lab {lab}, devices {', '.join(mine)}, queue {queue_name(lab)}"
          f" on {store.path}", file=sys.stderr, flush=True)
    app = make_app(url)
    options = dict(queues=[queue_name(lab)], concurrency=len(mine), wait=not once,
                   name=f"{lab}@{socket.gethostname()}:{os.getpid()}",
                   fetch_job_polling_interval=1.0, abort_job_polling_interval=1.0,
                   update_heartbeat_interval=max(0.5, stalled_after / 4),
                   stalled_worker_timeout=stalled_after, listen_notify=True)

    async def main() -> None:
        while True:
            try:
                async with app.open_async():
                    sweeper = asyncio.create_task(_sweep(app, store, row, _STATE))
                    try:
                        await app.run_worker_async(**options)
                    finally:
                        sweeper.cancel()
                return
            except Exception as e:
                if once:
                    raise
                print(f"edge-bench worker: {_one_line(e, store)}; reconnecting",
                      file=sys.stderr, flush=True)
                await asyncio.sleep(1.0)
    try:
        asyncio.run(main())
    finally:
        try:
            store._write(lambda db: db.execute("DELETE FROM edge_bench_workers WHERE id = ?",
                                               (row,)))
        except EdgeBenchError:
            pass
        store.close()
    return 0


def workers(store: Any) -> List[Dict[str, Any]]:
    return [dict(lab=r["lab"], host=r["host"], pid=r["pid"], devices=json.loads(r["devices"]),
                 heartbeat=r["heartbeat"]) for r in store._read(
        "SELECT lab, host, pid, devices, heartbeat FROM edge_bench_workers ORDER BY lab, id")]
