"""`edge-bench worker`: run this lab's queued jobs (a service on each lab host)."""
from __future__ import annotations

import argparse
from typing import Any

HELP = "run the queued jobs of one lab's devices (deploy/edge-bench-worker.service)"

EPILOG = """\
examples:
  edge-bench worker --lab lab-a --db postgresql://bench@db.lab/bench --config /etc/edge-bench/devices.yaml
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("worker", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lab", required=True, help="the lab whose devices (devices.yaml `lab:`)"
                                                " this worker serves")
    p.add_argument("--db", default=None, help="the shared store: postgresql://USER@HOST/DB"
                                              " (default: EDGE_BENCH_DB)")
    p.add_argument("--config", "-c", default=None, help="devices.yaml to use")
    p.add_argument("--stalled-after", type=float, default=30.0, metavar="SECONDS",
                   help="a job whose worker has sent no heartbeat for this long is queued again"
                        " (default 30)")
    p.add_argument("--once", action="store_true", help="stop when the lab's queue is empty")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..app.queue import require_pg
    from ..app.serve import serve
    from ..errors import UsageError
    if args.stalled_after <= 0:
        raise UsageError(f"--stalled-after {args.stalled_after:g}: expected seconds > 0")
    return serve(require_pg(args.db, "worker"), args.lab, args.config,
                 stalled_after=args.stalled_after, once=args.once)
