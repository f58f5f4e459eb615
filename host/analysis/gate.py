"""The --fail-on-regression gate: what a comparison does to the exit code, and the one line
that says so (pure; `run`, `compare` and `submit` print it and exit with its code).

The rule (docs/results.md, "The nightly recipe"):

* a regression (`slower` confirmed, `accuracy-drop`, `error`) fails: exit 1;
* keys that could not be judged (`inconclusive`: a busy device, a slowdown a re-measurement
  did not see again, too few samples; or keys missing from the baseline) do NOT fail by
  default: exit 0 with a warning that names them. Failing on noise teaches a team to ignore
  the nightly; the warning and the verdict in the store, the site and `compare` keep them
  visible. `--fail-on-inconclusive` makes them fail (exit 1) for a gate that must never let an
  unjudged key through. (`--allow-inconclusive`, the old opt-out, is accepted and does nothing.)
"""
from __future__ import annotations

from typing import Any, Dict, List

#: what decided the exit code of a comparison under --fail-on-regression
OUTCOMES = ("regression", "inconclusive", "passed", "not gated")


def unjudged(cmp: Dict[str, Any]) -> List[str]:
    """The keys the comparison could not judge, as phrases ("2 inconclusive key(s)")."""
    out = []
    if cmp.get("inconclusive"):
        out.append(f"{cmp['inconclusive']} inconclusive key(s)")
    if cmp.get("no_baseline"):
        out.append(f"{cmp['no_baseline']} key(s) missing from the baseline")
    return out


def gate_failures(cmp: Dict[str, Any], fail_on_inconclusive: bool = False) -> List[str]:
    """Why `--fail-on-regression` fails this comparison (empty: it passes): a regression, and
    with `fail_on_inconclusive` the keys it could not judge."""
    why = ["a regression"] if cmp.get("regressed") else []
    if fail_on_inconclusive:
        why += unjudged(cmp)
    return why


def gate(cmp: Dict[str, Any], fail_on_regression: bool,
         fail_on_inconclusive: bool = False) -> Dict[str, Any]:
    """{"code": 0|1, "outcome": one of OUTCOMES, "failures": [...], "warnings": [...]}: what
    the comparison does to the exit code and why."""
    why = gate_failures(cmp, fail_on_inconclusive) if fail_on_regression else []
    warn = [] if why and fail_on_inconclusive else unjudged(cmp)
    if not fail_on_regression:
        outcome = "not gated"
    elif cmp.get("regressed"):
        outcome = "regression"
    elif why:
        outcome = "inconclusive"
    else:
        outcome = "passed"
    return {"code": 1 if why else 0, "outcome": outcome, "failures": why, "warnings": warn}


def gate_line(cmp: Dict[str, Any], fail_on_regression: bool,
              fail_on_inconclusive: bool = False, failed: int = 0) -> str:
    """The line that names the outcome that decided the exit code, e.g. `exit 0: no
    regression; warning: 2 inconclusive key(s) not judged (...)`. `failed`: results of the run
    that failed (`run` then exits 3 unless the gate fails)."""
    g = gate(cmp, fail_on_regression, fail_on_inconclusive)
    warn = f"; warning: {', '.join(g['warnings'])} not judged" if g["warnings"] else ""
    if failed and g["code"] == 0:
        return f"exit 3: {failed} result(s) failed" + (
            "; the comparison found no regression" if fail_on_regression else "") + warn
    if g["outcome"] == "not gated":
        return "exit 0: not gated (no --fail-on-regression)" + warn
    if g["outcome"] == "regression":
        return f"exit 1: --fail-on-regression: {', '.join(g['failures'])}"
    if g["outcome"] == "inconclusive":
        return (f"exit 1: --fail-on-inconclusive: {', '.join(g['failures'])} (no regression"
                " found)")
    if g["warnings"]:
        return (f"exit 0: no regression; warning: {', '.join(g['warnings'])} not judged"
                " (see the notes; --fail-on-inconclusive fails on them)")
    return "exit 0: no regression"
