"""`edge-bench history`: stored runs, and the median latency (with its CI) over time per key."""
from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "stored runs and the latency trend per device/model/variant/threads"

EPILOG = """\
examples:
  edge-bench history
  edge-bench history --device pi4 --model builtin:digits --last 30
  edge-bench history --variant int8 --csv history.csv
"""

def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("history", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", metavar="D", default=None, help="only this device's results")
    p.add_argument("--model", metavar="M", default=None, help="e.g. builtin:digits or a model path")
    p.add_argument("--variant", metavar="V", default=None,
                   help="only this variant (fp32, int8, dynamic-int8 ...)")
    p.add_argument("--threads", metavar="N", type=int, default=None,
                   help="only results timed with N threads")
    p.add_argument("--label", metavar="TEXT", default=None, help="only runs with this label")
    p.add_argument("--last", metavar="N", type=int, default=10,
                   help="the N most recent matching runs (default 10)")
    p.add_argument("--db", metavar="PATH", default=None,
                   help="results store (default: $EDGE_BENCH_DB or ~/.local/share/edge-bench/results.sqlite)")
    p.add_argument("--csv", metavar="FILE|-", default=None, help="also write every matching result as CSV")
    p.add_argument("--summary", action="store_true", help="only the one-line trend per key")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..app.history import load_history
    from ..errors import UsageError
    from ..render.history import print_history
    if args.last is not None and args.last < 1:
        raise UsageError("--last must be >= 1")
    rows, runs = load_history(args.db, device=args.device, model=args.model,
                              variant=args.variant, threads=args.threads, last=args.last,
                              label=args.label, csv_out=args.csv)
    out = sys.stderr if args.csv == "-" else sys.stdout
    print_history(rows, runs, filtered=any(getattr(args, k) is not None for k in
                                           ("device", "model", "variant", "threads")),
                  summary=args.summary, file=out)
    return 0
