"""`edge-bench cancel RUN`: cancel a queued run's jobs (running ones stop their device)."""
from __future__ import annotations

import argparse
from typing import Any

HELP = "cancel a queued run: waiting jobs are dropped, running ones stopped"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("cancel", help=HELP, description=HELP)
    p.add_argument("run", metavar="RUN", help="run id, label or last (the newest run, queued ones included)")
    p.add_argument("--db", default=None, help="the shared store: postgresql://USER@HOST/DB"
                                              " (default: EDGE_BENCH_DB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..app.queue import cancel_run, open_shared
    from ..app.tasks import make_app
    from ..render.visible import visible
    store = open_shared(args.db, "cancel")
    app = make_app(store.url)
    app.open()
    try:
        run_id, got = cancel_run(store, app, args.run)
    finally:
        app.close()
        store.close()
    print(f"run {visible(run_id)}: {got['cancelled']} waiting jobs cancelled,"
          f" {got['aborting']} running jobs asked to stop")
    return 0
