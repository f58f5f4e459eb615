"""`edge-bench queue`: waiting and running jobs (who submitted, which device, since when)."""
from __future__ import annotations

import argparse
from typing import Any

HELP = "list the waiting and running jobs of the shared queue, and the workers serving each lab"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("queue", help=HELP, description=HELP)
    p.add_argument("--db", default=None, help="the shared store: postgresql://USER@HOST/DB"
                                              " (default: EDGE_BENCH_DB)")
    p.add_argument("--run", default=None, help="only this run's jobs (id, label, last)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from ..render.display import escape  # rich markup escaped, control characters visible
    from rich.table import Table
    from ..app.queue import list_jobs, open_shared
    from ..app.queue import workers
    store = open_shared(args.db, "queue")
    try:
        run_id = store.resolve(args.run) if args.run else None
        jobs = list_jobs(store, run_id=run_id)
        ws = workers(store)
    finally:
        store.close()
    t = Table(title=f"{len(jobs)} jobs waiting or running")
    for col in ("job", "status", "lab", "device", "run", "label", "submitted by", "priority",
                "since"):
        t.add_column(col)
    for j in jobs:
        since = j.started_at if j.status == "doing" else j.submitted_at
        t.add_row(str(j.id), "running" if j.status == "doing" else "waiting", escape(j.lab),
                  escape(j.device), j.run_id, escape(j.label or ""), escape(j.submitter),
                  str(j.priority), since or "")
    import sys
    c = Console(width=None if sys.stdout.isatty() else 200)  # a pipe or log: never cut a cell
    c.print(t)
    for w in ws:
        c.print(f"worker lab {escape(w['lab'])} on {escape(w['host'])} pid {w['pid']}:"
                f" {escape(', '.join(w['devices']))} (heartbeat {w['heartbeat']:%H:%M:%S})")
    return 0
