"""`edge-bench compare BASE CAND`: did the candidate get slower or less accurate than the base?"""
from __future__ import annotations

import argparse
from typing import Any, Dict

from ..analysis.noise import MIN_HISTORY_RUNS
from ..analysis.verdict import (DECISION_QUANTILE, DEFAULT_ACCURACY_THRESHOLD, DEFAULT_ALPHA,
                                DEFAULT_CONFIDENCE, DEFAULT_THRESHOLD)
from ..app.compare import Settings, compare_refs
from ..errors import UsageError
from ..render.compare import emit
from .gate_options import add_gate_options

HELP = ("compare two runs (change of the fast quartile and of the median with CIs,"
        " significance test, verdict per key)")

EPILOG = f"""\
BASE and CAND are run ids (or a unique prefix), labels (their newest run), `last`, `last~N`
(N runs before the last), or results files written by `edge-bench run --json FILE`.

A key (device, model, variant, threads) is `slower` only when its fast quartile (the
{DECISION_QUANTILE * 100:g}th percentile of all the samples, pooled over the worker processes) grew by
at least --threshold, the {DEFAULT_CONFIDENCE * 100:g}% interval of that ratio lies above 1 and the
Mann-Whitney U test on the blocks' {DECISION_QUANTILE * 100:g}th percentiles gives p < --alpha;
`faster` mirrors it. The change of the median is shown next to it, not judged: other load on
the device only adds time, and moves the median far more than the fast quartile.
`accuracy-drop` when top-1 or agreement with the fp32 reference falls by more than
--accuracy-threshold. Different environments (runtime, agent, governor, CPU, model sha256)
are listed on the row. When the store holds >= {MIN_HISTORY_RUNS} earlier runs of a key in the same
environment, the change must also exceed the run-to-run noise those runs show
(z(1-alpha) * sqrt(2) * sigma of their log fast quartiles); --no-history turns that off.

exit codes: 0 no regression (or no --fail-on-regression; keys that could not be judged
            only warn), 1 a regression with --fail-on-regression (or an unjudged key with
            --fail-on-inconclusive), 2 usage error (unknown run, bad file)

examples:
  edge-bench compare last~1 last
  edge-bench compare nightly-2024-05-01 last --markdown comment.md --fail-on-regression
  edge-bench compare base.json cand.json --json -
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("compare", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", metavar="BASE", help="baseline: run id, label, last, last~N, or a .json file")
    p.add_argument("cand", metavar="CAND", help="candidate: run id, label, last, last~N, or a .json file")
    p.add_argument("--db", metavar="PATH", default=None,
                   help="results store (default: $EDGE_BENCH_DB or ~/.local/share/edge-bench/results.sqlite)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="FRACTION",
                   help="minimum effect size counted as a change"
                        f" (default {DEFAULT_THRESHOLD:g} = {DEFAULT_THRESHOLD * 100:g}%%)")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, metavar="P",
                   help=f"significance level of the test (default {DEFAULT_ALPHA:g})")
    p.add_argument("--accuracy-threshold", type=float, default=DEFAULT_ACCURACY_THRESHOLD,
                   metavar="FRACTION", help="top-1/agreement drop counted as accuracy-drop"
                        f" (default {DEFAULT_ACCURACY_THRESHOLD:g} ="
                        f" {DEFAULT_ACCURACY_THRESHOLD * 100:g} point)")
    p.add_argument("--json", dest="json_out", metavar="FILE|-", default=None,
                   help="write the comparison as JSON (- for stdout)")
    p.add_argument("--markdown", dest="markdown_out", metavar="FILE|-", default=None,
                   help="write the comparison as Markdown, e.g. for a CI comment (- for stdout)")
    p.add_argument("--no-history", action="store_true",
                   help="ignore the run-to-run noise of earlier stored runs (see below)")
    add_gate_options(p, "of the two runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.json_out == "-" and args.markdown_out == "-":
        raise UsageError("--json - and --markdown - cannot both go to stdout")
    settings = Settings(threshold=args.threshold, alpha=args.alpha,
                        accuracy_threshold=args.accuracy_threshold, use_history=not args.no_history)
    cmp = compare_refs(args.base, args.cand, db=args.db, settings=settings)
    emit(cmp, json_out=args.json_out, markdown_out=args.markdown_out)
    return gate_exit(cmp, args)


def gate_exit(cmp: Dict[str, Any], args: argparse.Namespace) -> int:
    """1 when --fail-on-regression fails this comparison, else 0; the line that says which
    (analysis/gate.py) on stderr."""
    from ..analysis.gate import gate
    from .gate_options import print_gate
    print_gate(cmp, args)
    return gate(cmp, args.fail_on_regression, args.fail_on_inconclusive)["code"]
