"""The --fail-on-regression gate's options, one text for `run` and `compare` (the rule itself is
analysis.verdict.gate_failures)."""
from __future__ import annotations

from typing import Any


def add_gate_options(p: Any, against: str) -> None:
    """`against`: what the comparison is with, as the command's help says it."""
    p.add_argument("--fail-on-regression", action="store_true",
                   help=f"exit 1 when the comparison {against} finds a regression (a key slower,"
                        " less accurate, or newly failing) or, unless --allow-inconclusive, keys"
                        " it could not judge")
    p.add_argument("--allow-inconclusive", action="store_true",
                   help="with --fail-on-regression: do not fail on keys that could not be judged"
                        " (verdict inconclusive: too few samples for a test, or a change the"
                        " samples cannot confirm; or keys missing from the baseline)")
