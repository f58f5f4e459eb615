"""`edge-bench submit`: plan like `run`, queue one job per device on its lab's queue, and with
--wait follow the run in the shared store until every job has ended, with `run`'s table and
exit codes (3 failed results or jobs, 1 regression with --fail-on-regression)."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Set

from ..render.visible import visible

from .queue import TASK_NAME, TERMINAL, device_lock, open_shared, queue_name, who
from .tasks import make_app


@dataclass
class Submitted:
    run_id: str
    store: Any
    labs: Dict[str, List[str]]          # lab -> devices
    unserved: List[str] = field(default_factory=list)


def submit(args: argparse.Namespace) -> Submitted:
    """Check the request as `run` does, create the run (status `queued`), enqueue its jobs."""
    from ..results.record import new_run
    from .jobspec import job_options, request_from_args
    from .run import select_devices
    req = request_from_args(args)
    options = job_options(req)
    devices = select_devices(req)
    store = open_shared(args.db, "submit")
    if req.baseline and not req.baseline.startswith("last"):
        store.resolve(req.baseline)  # a typo fails now, not after the whole benchmark
    labs: Dict[str, List[str]] = {}
    for d in devices:
        labs.setdefault(d.lab, []).append(d.name)
    doc = new_run(req.label, list(getattr(args, "argv", ["edge-bench", "submit"])))
    doc["status"] = "queued"
    submitter = who()
    doc["queue"] = {"submitter": submitter, "priority": args.priority, "labs": labs}
    run_id = store.begin_run(doc)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    app = make_app(store.url)
    app.open()
    try:
        task = app.tasks[TASK_NAME]
        for d in devices:
            task.configure(queue=queue_name(d.lab), lock=device_lock(d.name),
                           queueing_lock=f"{run_id}:{d.name}", priority=args.priority).defer(
                run_id=run_id, device=d.name, lab=d.lab, options=options,
                submitter=submitter, submitted_at=now)
    finally:
        app.close()
    from .queue import served_labs
    served = served_labs(store)
    return Submitted(run_id, store, labs, sorted(set(labs) - set(served)))


def wait(sub: Submitted, args: argparse.Namespace, display: Any, out: Any) -> int:
    """Follow the run until its jobs end; the exit code `run` would give."""
    from ..results.store import Store
    from .queue import finalize_runs, list_jobs, notes, served_labs
    store, run_id = sub.store, sub.run_id
    last_id = 0
    seen_status: Dict[str, str] = {}
    started = time.monotonic()
    unserved_stop: Optional[str] = None
    with display:
        while True:
            for row in store._read("SELECT * FROM results WHERE run_id = ? AND id > ? ORDER BY id",
                                   (run_id, last_id)):
                last_id = int(row["id"])
                display.on_result(Store._result(row, samples=False))
            jobs = list_jobs(store, run_id=run_id, statuses=())
            for j in jobs:
                text = {"todo": f"queued on lab {j.lab}", "doing": "running"}.get(j.status, j.status)
                if seen_status.get(j.device) != text:
                    seen_status[j.device] = text
                    display.on_status(j.device, text)
            if jobs and all(j.status in TERMINAL for j in jobs):
                break
            if time.monotonic() - started > args.serve_timeout:
                served = served_labs(store)
                waiting: Set[str] = {j.lab for j in jobs if j.status == "todo"
                                     and j.lab not in served}
                if waiting:
                    unserved_stop = ", ".join(sorted(waiting))
                    break
            time.sleep(0.3)
    finalize_runs(store, run_id)
    display.print_final_table()
    if unserved_stop:
        print(f"edge-bench: no worker serves lab {unserved_stop}: its jobs are still queued"
              f" (start `edge-bench worker --lab {unserved_stop.split(', ')[0]}` on that lab's"
              f" host; run {run_id})", file=sys.stderr)
        return 3
    from ..render.compare import emit
    from .run import RunOutcome, compare_baseline, exit_code, failed_results
    doc = store.get_run(run_id)
    bad_jobs = [j for j in list_jobs(store, run_id=run_id, statuses=()) if j.status != "succeeded"]
    for n in notes(store, run_id):
        print(visible(f"edge-bench: {n['device']}: {n['note']}"), file=sys.stderr)
    out_ = RunOutcome(doc=doc, failed=failed_results(doc["results"]), store=store)
    if bad_jobs:  # a device whose job failed or was cancelled left results missing
        out_.failed = out_.failed + [{"device": j.device, "job": j.status} for j in bad_jobs]
    if out_.failed:
        what = [f"{j.device} job {j.status}" for j in bad_jobs]
        print(f"edge-bench: {len(out_.failed) - len(bad_jobs)} of {len(doc['results'])} results"
              " failed or disagree with fp32" + (f"; {', '.join(what)}" if what else "")
              + f" (run {run_id})", file=sys.stderr)
    cmp = None
    if args.baseline:
        from .jobspec import request_from_args
        cmp = compare_baseline(request_from_args(args), out_)
        if cmp is None:
            print(f"edge-bench: no baseline yet: the store has no run `{args.baseline}` before"
                  f" this one; nothing compared (run {run_id} is the first baseline)", file=out)
        else:
            emit(cmp, file=out, quiet=args.quiet)
            from ..analysis.gate import gate_line   # what decides the exit code, said once
            print("edge-bench: " + gate_line(cmp, args.fail_on_regression,
                                             bool(getattr(args, "fail_on_inconclusive", False)),
                                             len(out_.failed)), file=sys.stderr)
    return exit_code(out_, cmp, args.fail_on_regression,
                     bool(getattr(args, "fail_on_inconclusive", False)))
