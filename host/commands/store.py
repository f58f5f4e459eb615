"""`edge-bench store copy SRC DST`: move a results history between stores."""
from __future__ import annotations

import argparse
from typing import Any

HELP = "manage results stores (copy a SQLite history into the shared PostgreSQL store)"

EPILOG = """\
examples:
  edge-bench store copy ~/.local/share/edge-bench/results.sqlite postgresql://bench@db.lab/bench
  PGPASSWORD=... edge-bench store copy old.sqlite postgresql://bench@db.lab:5433/bench
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("store", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    c = sub.add_parser("copy", help="copy every run (results, raw samples) from SRC into DST;"
                                    " runs DST already has are skipped, runs still running wait for the next copy")
    c.add_argument("src", metavar="SRC", help="a SQLite file or postgresql:// URL to read")
    c.add_argument("dst", metavar="DST", help="a SQLite file or postgresql:// URL to write"
                                              " (password from PGPASSWORD or ~/.pgpass)")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..app.store_copy import copy_store
    rep = copy_store(args.src, args.dst)
    print(f"copied {rep.runs} runs ({rep.results} results) from {rep.source} to {rep.destination}"
          + (f"; {rep.skipped} runs were already there" if rep.skipped else ""))
    if rep.unfinished:
        from ..render.visible import visible
        ids = ", ".join(visible(r) for r in rep.unfinished)
        print(f"not copied yet, still running: {ids}; copy again once"
              " they have finished (they are brought whole then)")
    return 0
