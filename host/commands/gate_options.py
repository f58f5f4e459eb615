"""The --fail-on-regression gate's options, one text for `run` and `compare` (the rule itself is
analysis/gate.py)."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Optional, TextIO


def add_gate_options(p: Any, against: str) -> None:
    """`against`: what the comparison is with, as the command's help says it."""
    p.add_argument("--fail-on-regression", action="store_true",
                   help=f"exit 1 when the comparison {against} finds a regression (a key slower,"
                        " confirmed where the run can time it again, less accurate, or newly"
                        " failing). Keys it could not judge (inconclusive: a busy device, a"
                        " slowdown not seen again, too few samples; or missing from the"
                        " baseline) only warn, unless --fail-on-inconclusive")
    p.add_argument("--fail-on-inconclusive", action="store_true",
                   help="with --fail-on-regression: exit 1 also on keys that could not be judged")
    p.add_argument("--allow-inconclusive", action="store_true",
                   help=argparse.SUPPRESS)  # the old opt-out: now the default, accepted


def print_gate(cmp: Dict[str, Any], args: Any, failed: int = 0,
               file: Optional[TextIO] = None) -> None:
    """The line naming what decided the exit code (analysis/gate.py), on stderr, whenever the
    gate was asked for or keys could not be judged."""
    from ..analysis.gate import gate, gate_line
    fail_inc = bool(getattr(args, "fail_on_inconclusive", False))
    if args.fail_on_regression or gate(cmp, False)["warnings"] or failed:
        print("edge-bench: " + gate_line(cmp, args.fail_on_regression, fail_inc, failed),
              file=file or sys.stderr)
