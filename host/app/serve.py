"""`edge-bench worker`: a lab host's service. It takes its lab's jobs from the queue and runs
each (app/worker.py) until SIGTERM/SIGINT; alongside, every few seconds, it beats its heartbeat,
puts the jobs of dead workers back in the queue and gives finished runs their final status.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from typing import Any, Optional

from ..errors import EdgeBenchError, UsageError
from . import worker as job
from .worker import WorkerState


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
            for stale in stalled:
                kw = stale.task_kwargs
                why = f"the worker running it stopped (no heartbeat for {st.stalled_after:g} s)"
                if stale.attempts + 1 < MAX_ATTEMPTS:
                    await app.job_manager.retry_job(stale)
                    note = f"{why}: queued again (attempt {stale.attempts + 2} of {MAX_ATTEMPTS})"
                else:
                    await app.job_manager.finish_job_by_id_async(
                        stale.id, status=pjobs.Status.FAILED, delete_job=False)
                    note = f"{why}: failed after {MAX_ATTEMPTS} attempts"
                await asyncio.to_thread(add_note, store, int(stale.id), str(kw.get("run_id")),
                                        str(kw.get("device")), note)
                print(f"edge-bench worker: job {stale.id} ({kw.get('device')}): {note}",
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
    from ..config import find_config, load_fleet
    from .queue import finalize_runs, open_shared, queue_name
    from .tasks import make_app
    path = find_config(config)
    fleet = load_fleet(path)
    mine = sorted(n for n, d in fleet.devices.items() if d.lab == lab)
    if not mine:
        labs = sorted({d.lab for d in fleet.devices.values()})
        raise UsageError(f"no device in {fleet.path or 'the built-in fleet'} has lab: {lab}",
                         hint=f"labs there: {', '.join(labs)}; set `lab: {lab}` on this lab's"
                              " devices in devices.yaml")
    store = open_shared(url, "worker")
    job._STATE = WorkerState(url=url, lab=lab, config=str(path) if path else None,
                             stalled_after=stalled_after)
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
                    sweeper = asyncio.create_task(_sweep(app, store, row, job._STATE))
                    try:
                        await app.run_worker_async(**options)
                        # the last job's run (--once ends before the sweeper's next round)
                        await asyncio.to_thread(finalize_runs, store)
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


