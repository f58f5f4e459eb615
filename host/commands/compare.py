"""`edge-bench compare BASE CAND`: did the candidate get slower or less accurate than the base?"""
from __future__ import annotations

import argparse
from typing import Any

from ..analysis.compare import (DEFAULT_ACCURACY_THRESHOLD, DEFAULT_ALPHA, DEFAULT_THRESHOLD, compare_docs,
                       emit, history_noise, load_doc)
from ..errors import UsageError

HELP = "compare two runs (ratio of medians with CI, significance test, verdict per key)"

EPILOG = """\
BASE and CAND are run ids (or a unique prefix), labels (their newest run), `last`, `last~N`
(N runs before the last), or results files written by `edge-bench run --json FILE`.

A key (device, model, variant, threads) is `slower` only when the median grew by at least
--threshold, the 95% interval of the ratio lies above 1 and the Mann-Whitney U test on block
medians gives p < --alpha; `faster` mirrors it. `accuracy-drop` when top-1 or agreement with the
fp32 reference falls by more than --accuracy-threshold. Different environments (runtime, agent,
governor, CPU, model sha256) are listed on the row. When the store holds >= 5 earlier runs of a
key in the same environment, the change must also exceed the run-to-run noise those runs show
(z(1-alpha) * sqrt(2) * sigma of their log medians); --no-history turns that off.

exit codes: 0 no regression (or no --fail-on-regression), 1 a regression with
            --fail-on-regression, 2 usage error (unknown run, bad file)

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
                   help="minimum effect size counted as a change (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, metavar="P",
                   help="significance level of the test (default 0.01)")
    p.add_argument("--accuracy-threshold", type=float, default=DEFAULT_ACCURACY_THRESHOLD,
                   metavar="FRACTION", help="top-1/agreement drop counted as accuracy-drop "
                                            "(default 0.01 = 1 point)")
    p.add_argument("--json", dest="json_out", metavar="FILE|-", default=None,
                   help="write the comparison as JSON (- for stdout)")
    p.add_argument("--markdown", dest="markdown_out", metavar="FILE|-", default=None,
                   help="write the comparison as Markdown, e.g. for a CI comment (- for stdout)")
    p.add_argument("--no-history", action="store_true",
                   help="ignore the run-to-run noise of earlier stored runs (see below)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when any key is slower, lost accuracy, or newly fails")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in ("threshold", "alpha", "accuracy_threshold"):
        v = getattr(args, name)
        if not (v >= 0) or (name == "alpha" and not 0 < v < 1):
            raise UsageError(f"--{name.replace('_', '-')} {v} is out of range")
    if args.json_out == "-" and args.markdown_out == "-":
        raise UsageError("--json - and --markdown - cannot both go to stdout")
    store = None
    docs = []
    for ref in (args.base, args.cand):
        import os
        if store is None and not (os.path.isfile(ref) or ref.endswith(".json") or ref == "-"):
            from ..results.store import Store
            store = Store(args.db, create=False)
        docs.append(load_doc(ref, store=store))
    noise = None
    if store is not None and not args.no_history:
        noise = history_noise(store, docs, exclude=[str(docs[1].get("run_id"))])
    cmp = compare_docs(docs[0], docs[1], threshold=args.threshold, alpha=args.alpha,
                       accuracy_threshold=args.accuracy_threshold, noise=noise)
    emit(cmp, json_out=args.json_out, markdown_out=args.markdown_out)
    if store is not None:
        store.close()
    return 1 if (cmp["regressed"] and args.fail_on_regression) else 0
