"""The exit-code policy of `edge-bench run` (host/app/run.py), case by case from the table in
docs/fleet.md ("Exit codes of edge-bench run") and the order in docs/architecture.md (step 7).
The end-to-end proofs (a real run that exits 3 / 130 / 143) are in test_run_local.py,
test_wrong_output.py and test_fleet_faults.py; this file pins every branch of the rule."""
from __future__ import annotations

import json
import signal
from typing import Any, Dict, List, Optional

import pytest

from edge_bench.app.run import RunOutcome, exit_code, failed_results, run_status

# results as they come back: parsed from JSON (the agent's events, --json, the store), so their
# strings are equal to, not the same objects as, the literals in the code under test
OK: Dict[str, Any] = json.loads('{"status": "ok", "accuracy": null}')
OK_ACCURATE: Dict[str, Any] = json.loads('{"status": "ok", "accuracy": {"flag": null, "top1": 0.97}}')
WRONG: Dict[str, Any] = json.loads('{"status": "ok", "accuracy": {"flag": "agreement 10.9% vs fp32"}}')
FAILED: Dict[str, Any] = json.loads('{"status": "failed", "error": "ChecksumMismatch: ..."}')
SKIPPED: Dict[str, Any] = json.loads('{"status": "skipped", "error": "cancelled"}')


def outcome(results: List[Dict[str, Any]], interrupted: bool = False,
            sig: Optional[int] = None) -> RunOutcome:
    return RunOutcome(doc={"results": results}, failed=failed_results(results),
                      interrupted=interrupted, signal=sig)


REGRESSED = {"regressed": True}
CLEAN = {"regressed": False}


@pytest.mark.parametrize("results, expected", [
    ([], []),
    ([OK, OK_ACCURATE], []),
    ([OK, WRONG], [WRONG]),            # an ok run whose outputs disagree with fp32 failed
    ([FAILED, OK], [FAILED]),
    ([SKIPPED], []),                   # a deliberate skip (its reason is shown) is not a failure
    ([SKIPPED, FAILED], [FAILED]),
    ([json.loads('{"status": "ok"}')], []),  # no accuracy key at all (no eval data)
])
def test_failed_results(results: List[Dict[str, Any]], expected: List[Dict[str, Any]]) -> None:
    assert failed_results(results) == expected


@pytest.mark.parametrize("results, interrupted, status", [
    ([OK], False, "ok"),
    ([], False, "ok"),
    ([OK, WRONG], False, "partial"),
    ([OK, FAILED], False, "partial"),
    ([OK], True, "interrupted"),
    ([FAILED], True, "interrupted"),   # interrupted wins over partial
])
def test_run_status(results: List[Dict[str, Any]], interrupted: bool, status: str) -> None:
    assert run_status(results, interrupted) == status


@pytest.mark.parametrize("results, comparison, fail_on_regression, code", [
    ([OK], None, False, 0),                 # 0: every job ok
    ([OK], CLEAN, True, 0),
    ([OK], REGRESSED, False, 0),            # a regression without --fail-on-regression
    ([OK], REGRESSED, True, 1),             # 1: regression with --fail-on-regression
    ([OK, FAILED], REGRESSED, True, 1),     # the regression is reported before failures
    ([OK, FAILED], None, True, 3),          # 3: some jobs failed
    ([OK, FAILED], CLEAN, True, 3),
    ([OK, WRONG], None, False, 3),          # 3: ... or disagree with fp32
])
def test_exit_code(results: List[Dict[str, Any]], comparison: Optional[Dict[str, Any]],
                   fail_on_regression: bool, code: int) -> None:
    assert exit_code(outcome(results), comparison, fail_on_regression) == code


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (None, 130)])
def test_interrupted_exits_128_plus_signal(sig: Optional[int], code: int) -> None:
    """130 for Ctrl-C, 143 for SIGTERM, whatever else happened (a failure, a regression)."""
    out = outcome([OK, FAILED], interrupted=True, sig=sig)
    assert exit_code(out, REGRESSED, True) == code
    assert exit_code(out, None, False) == code


@pytest.mark.parametrize("comparison", [{"regressed": False, "inconclusive": 1},
                                        {"regressed": False, "no_baseline": 2}])
def test_keys_it_could_not_judge_warn_unless_fail_on_inconclusive(
        comparison: Dict[str, Any]) -> None:
    """docs/results.md "The nightly recipe": `inconclusive` and keys absent from the baseline
    only warn under --fail-on-regression (exit 0); --fail-on-inconclusive makes them fail."""
    assert exit_code(outcome([OK]), comparison, True) == 0
    assert exit_code(outcome([OK]), comparison, True, fail_on_inconclusive=False) == 0
    assert exit_code(outcome([OK]), comparison, True, fail_on_inconclusive=True) == 1
    assert exit_code(outcome([OK]), comparison, False) == 0
    assert exit_code(outcome([OK]), comparison, False, fail_on_inconclusive=True) == 0
