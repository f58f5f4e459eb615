"""`edge-bench report RUN --html out.html`: one self-contained HTML page for a run.

The page needs nothing but itself: inline CSS, SVG plots drawn in Python, no scripts, no
fonts, no network. It has the results table, a latency distribution plot (violin + box) per
device and model with one row per variant/threads, and the history trend (median with its 95%
interval over the stored runs) of every key in the run. The service is app/report.py, the page
render/html.py and render/svg.py.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..app.report import DEFAULT_HISTORY, write_report

HELP = "write a self-contained HTML report (table, latency plots, history trends) of a run"

EPILOG = """\
RUN is a run id, a label, last, last~N, or a results file from `edge-bench run --json FILE`.

examples:
  edge-bench report last --html report.html
  edge-bench report nightly-2024-05-01 --html nightly.html --csv nightly.csv
  edge-bench report --site public/ --db postgresql://ci@db/bench
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ref", metavar="RUN", nargs="?", default=None,
                   help="run id, label, last, last~N, or a .json results file")
    p.add_argument("--site", metavar="DIR", default=None,
                   help="write the static history site of the whole store into DIR"
                        " (index of every device x model x variant, a page per key and per run)")
    p.add_argument("--verdicts", metavar="N", type=int, default=1,
                   help="with --site: judge the newest N pairs of consecutive runs of each key"
                        " with compare (kept in DIR/verdicts.json; default 1)")
    p.add_argument("--threshold", type=float, default=0.05,
                   help="with --site: smallest slowdown that counts as a regression (default 0.05)")
    p.add_argument("--html", metavar="FILE", default=None, help="write the HTML report here")
    p.add_argument("--csv", metavar="FILE|-", default=None, help="write the run's results as CSV")
    p.add_argument("--db", metavar="PATH", default=None,
                   help="results store (default: $EDGE_BENCH_DB or ~/.local/share/edge-bench/results.sqlite)")
    p.add_argument("--history", metavar="N", type=int, default=DEFAULT_HISTORY,
                   help=f"runs shown in the trend plots (default {DEFAULT_HISTORY}; 0 = none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    if args.site:
        if args.ref is not None or args.html or args.csv:
            raise UsageError("--site DIR writes the history of the whole store: give it without"
                             " RUN, --html or --csv")
        from ..app.site import write_site
        rep = write_site(args.site, db=args.db, verdict_pairs=args.verdicts,
                         threshold=args.threshold)
        from ..render.table import fmt_bytes
        from ..text import plural
        print(f"wrote {rep.path} ({plural(rep.pages, 'page')}, {fmt_bytes(rep.bytes)},"
              f" {rep.seconds:.1f} s; {plural(rep.judged, 'comparison')} run, {rep.cached} from"
              " the cache)", file=sys.stderr)
        return 0
    if args.ref is None:
        raise UsageError("which run? give RUN (a run id, label, last, or a .json file),"
                         " or --site DIR for the history of the whole store")
    if not args.html and not args.csv:
        raise UsageError("nothing to write: give --html FILE and/or --csv FILE")
    written = write_report(args.ref, db=args.db, html_out=args.html, csv_out=args.csv,
                           history=args.history)
    if written is not None:
        path, size = written
        print(f"wrote {path} ({size // 1024} KB)", file=sys.stderr)
    return 0
