"""`edge-bench submit`: queue a run for the lab workers (run's options, plus --priority/--wait)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "queue a run on the shared job queue: one job per device, run by its lab's worker"

DESCRIPTION = """\
Plan like `edge-bench run` (same options), enqueue one job per device on the queue of the
device's lab (devices.yaml `lab:`, default `default`) in the shared PostgreSQL store, and print
the run id. A device runs one job at a time across all submitters; higher --priority goes first.
With --wait: follow the run's results as they arrive and exit like `run` (3 failed results or
jobs, 1 regression with --baseline ... --fail-on-regression).
"""

EPILOG = """\
examples:
  edge-bench submit --db postgresql://bench@db.lab/bench --devices tag:arm64 --label nightly
  edge-bench submit --devices pi4 --priority 10 --wait --baseline last --fail-on-regression
"""

#: run's options that mean nothing for a queued run
_NOT_FOR_SUBMIT = {"help", "no_store", "json"}


def _run_options() -> argparse.ArgumentParser:
    """A parent parser with every option of `run` (one home for them: commands/run.py)."""
    from . import run as run_cmd
    holder = argparse.ArgumentParser(add_help=False)
    run_cmd.add_parser(holder.add_subparsers())
    run_parser = holder._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    parent = argparse.ArgumentParser(add_help=False)
    for action in run_parser._actions:
        if action.dest not in _NOT_FOR_SUBMIT:
            parent._add_action(action)
    return parent


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("submit", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              parents=[_run_options()],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--priority", type=int, default=0,
                   help="higher runs first among waiting jobs (default 0; e.g. 10 for a"
                        " developer's one-off run ahead of the nightly sweep)")
    p.add_argument("--wait", action="store_true",
                   help="follow the run until every job has ended; exit codes as `run`")
    p.add_argument("--serve-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="with --wait: give up (exit 3) when a lab still has no worker after"
                        " this many seconds (default 60)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..render.display import LiveDisplay
    from ..app.submit import submit, wait
    sub = submit(args)
    labs = ", ".join(f"{lab}: {', '.join(devs)}" for lab, devs in sorted(sub.labs.items()))
    print(sub.run_id)
    print(f"edge-bench: queued run {sub.run_id} ({labs})", file=sys.stderr)
    for lab in sub.unserved:
        print(f"edge-bench: warning: no worker serves lab {lab} (start `edge-bench worker --lab"
              f" {lab}` on its host); its jobs wait in the queue", file=sys.stderr)
    if not args.wait:
        return 0
    display = LiveDisplay(stream=sys.stdout, quiet=args.quiet)
    try:
        return wait(sub, args, display, None)
    finally:
        sub.store.close()
