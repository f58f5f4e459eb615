"""analysis/confirm.py: a `slower` key stays a regression only when its re-measurement is slower
too (the end-to-end path is in test_regression_e2e.py)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from edge_bench.analysis.confirm import (apply_confirmation, apply_stored, confirmations,
                                         keys_to_confirm)
from edge_bench.analysis.gate import gate_failures


def row(model: str, verdict: str, p25: Optional[float] = 1.2) -> Dict[str, Any]:
    return {"device": "local", "model": model, "variant": "fp32", "threads": 1,
            "verdict": verdict, "regression": verdict in ("slower", "accuracy-drop", "error"),
            "p25_ratio": p25, "ratio": p25, "p_value": 1e-6, "notes": ["earlier note"]}


def cmp_of(*rows: Dict[str, Any]) -> Dict[str, Any]:
    c = {"rows": list(rows)}
    summary: Dict[str, int] = {}
    for r in rows:
        summary[r["verdict"]] = summary.get(r["verdict"], 0) + 1
    c["summary"], c["regressed"] = summary, any(r["regression"] for r in rows)
    c["inconclusive"] = summary.get("inconclusive", 0)
    return c


def test_only_slower_keys_are_measured_again() -> None:
    c = cmp_of(row("a", "slower"), row("b", "same", 1.0), row("c", "accuracy-drop", 1.0),
               row("d", "faster", 0.8))
    assert keys_to_confirm(c) == {("local", "a", "fp32", 1, "cpu")}


def test_confirmed_stays_a_regression_unconfirmed_is_inconclusive() -> None:
    first = cmp_of(row("a", "slower", 1.30), row("b", "slower", 1.12), row("c", "accuracy-drop", 1.0))
    again = cmp_of(row("a", "slower", 1.28), row("b", "same", 1.01))
    out = apply_confirmation(first, again, run_id="R2")
    a, b, c = out["rows"]
    assert (a["verdict"], a["regression"]) == ("slower", True)
    assert a["confirmation"]["verdict"] == "slower" and a["confirmation"]["run_id"] == "R2"
    assert "confirmed by a re-measurement (p25 +28.0%)" in a["notes"]
    assert (b["verdict"], b["regression"]) == ("inconclusive", False)
    assert b["notes"][0].startswith("slower in this run (p25 +12.0%), not in a re-measurement"
                                    " (p25 +1.0%, same)")
    assert b["notes"][1] == "earlier note"
    assert (c["verdict"], c["regression"]) == ("accuracy-drop", True)   # not timing: untouched
    assert "confirmation" not in c
    assert out["summary"]["slower"] == 1 and out["summary"]["inconclusive"] == 1
    assert out["summary"]["accuracy-drop"] == 1 and out["inconclusive"] == 1
    assert out["regressed"] is True


def test_a_spell_only_is_no_regression_and_fails_only_a_strict_gate() -> None:
    out = apply_confirmation(cmp_of(row("a", "slower", 1.4)), cmp_of(row("a", "faster", 0.9)))
    assert out["regressed"] is False and out["inconclusive"] == 1
    assert gate_failures(out) == []
    assert gate_failures(out, fail_on_inconclusive=True) == ["1 inconclusive key(s)"]


def test_a_failed_or_missing_remeasurement_does_not_confirm() -> None:
    out = apply_confirmation(cmp_of(row("a", "slower")), None, failure="net.tflite is not a model")
    (r,) = out["rows"]
    assert r["verdict"] == "inconclusive" and "net.tflite is not a model" in r["notes"][0]
    out = apply_confirmation(cmp_of(row("a", "slower")), cmp_of(row("other", "slower")))
    assert out["rows"][0]["verdict"] == "inconclusive" and out["regressed"] is False


def test_stored_confirmations_give_compare_the_runs_verdicts() -> None:
    first = cmp_of(row("a", "slower", 1.30), row("b", "slower", 1.12))
    first["base"] = {"run_id": "BASE"}
    made = apply_confirmation(first, cmp_of(row("a", "slower", 1.28), row("b", "same", 1.01)))
    kept = confirmations(made)
    assert [(c["model"], c["verdict"], c["base_run_id"]) for c in kept] == \
        [("a", "slower", "BASE"), ("b", "same", "BASE")]
    # compare, later: the same two stored runs give the same verdicts
    again = cmp_of(row("a", "slower", 1.30), row("b", "slower", 1.12), row("c", "slower", 1.5))
    again["base"] = {"run_id": "BASE"}
    out = apply_stored(again, {"confirmations": kept})
    assert [r["verdict"] for r in out["rows"]] == ["slower", "inconclusive", "slower"]
    assert "confirmation" not in out["rows"][2]      # never re-measured: left as it is
    # against another baseline they say nothing
    other = cmp_of(row("b", "slower", 1.12))
    other["base"] = {"run_id": "OTHER"}
    assert apply_stored(other, {"confirmations": kept})["rows"][0]["verdict"] == "slower"
