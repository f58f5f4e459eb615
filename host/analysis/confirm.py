"""Confirming a slowdown by measuring again (pure: the re-measurement is made by the run
service, app/run.py `confirm_regressions`).

One run of a key on a shared machine can land in a slow spell (another tenant, a frequency
drop) that lasts longer than the run itself: every process of it is slower, and no statistic
over that run alone can tell the spell from a real regression. Performance CI systems answer
with a re-trigger before they alarm; so does `run --fail-on-regression`: a key judged `slower`
is measured once more, and stays a regression only when the re-measurement is slower too.
When it is not, the two measurements disagree: the key is `inconclusive` (evidence both
ways), which `--fail-on-regression` reports as a warning (and fails with --fail-on-inconclusive).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Set

from edge_bench_agent.accel_spec import result_accelerator

from .verdict import Key, recount

#: the verdicts a re-measurement can confirm (an accuracy drop or an error is not timing noise)
CONFIRMABLE = ("slower",)


def row_key(row: Dict[str, Any]) -> Key:
    return (row["device"], row["model"], row["variant"], row["threads"], result_accelerator(row))


def keys_to_confirm(cmp: Dict[str, Any]) -> Set[Key]:
    """The keys of a comparison whose verdict a re-measurement can confirm."""
    return {row_key(r) for r in cmp.get("rows", []) if r.get("verdict") in CONFIRMABLE}


def _pct(ratio: Optional[float]) -> str:
    return "?" if ratio is None else f"{(ratio - 1) * 100:+.1f}%"


def apply_confirmation(cmp: Dict[str, Any], again: Optional[Dict[str, Any]],
                       run_id: Optional[str] = None, failure: Optional[str] = None,
                       only_listed: bool = False) -> Dict[str, Any]:
    """`cmp` (baseline vs the run) with each `slower` key checked against `again` (baseline vs
    the re-measurement; None when it could not be made, `failure` saying why; `only_listed`:
    keys `again` does not list are left as they are): confirmed keys stay `slower`, the
    others become `inconclusive`. The counts are redone; each changed row says why and keeps
    the re-measurement under "confirmation"."""
    by_key = {row_key(r): r for r in (again or {}).get("rows", [])}
    for row in cmp.get("rows", []):
        if row.get("verdict") not in CONFIRMABLE:
            continue
        second = by_key.get(row_key(row))
        if second is None and only_listed:
            continue
        first = _pct(row.get("p25_ratio") if row.get("p25_ratio") is not None else row.get("ratio"))
        if second is None:
            row["confirmation"] = {"run_id": run_id, "verdict": None, "error": failure}
            row["verdict"], row["regression"] = "inconclusive", False
            row["notes"].insert(0, f"slower in this run (p25 {first}) but the re-measurement"
                                   f" failed ({failure or 'no result'}): not confirmed")
            continue
        ratio = second.get("p25_ratio") if second.get("p25_ratio") is not None else second.get("ratio")
        row["confirmation"] = {"run_id": run_id, "verdict": second.get("verdict"),
                               "p25_ratio": second.get("p25_ratio"), "ratio": second.get("ratio"),
                               "p_value": second.get("p_value")}
        if second.get("verdict") in CONFIRMABLE:
            row["notes"].append(f"confirmed by a re-measurement (p25 {_pct(ratio)})")
        else:
            row["verdict"], row["regression"] = "inconclusive", False
            row["notes"].insert(0, f"slower in this run (p25 {first}), not in a re-measurement"
                                   f" (p25 {_pct(ratio)}, {second.get('verdict')}): a slow spell"
                                   " of the machine, or a change too small to show every time")
    recount(cmp)
    return cmp



def confirmations(cmp: Dict[str, Any]) -> List[Dict[str, Any]]:
    """What to keep with the candidate run: per re-measured key, the re-measurement's verdict
    and ratios against this baseline (`apply_stored` reads them back)."""
    base = (cmp.get("base") or {}).get("run_id")
    out = []
    for r in cmp.get("rows", []):
        c = r.get("confirmation")
        if c is not None:
            out.append({"device": r["device"], "model": r["model"], "variant": r["variant"],
                        "threads": r["threads"], "accelerator": result_accelerator(r),
                        "base_run_id": base, "verdict": c.get("verdict"),
                        "p25_ratio": c.get("p25_ratio"), "ratio": c.get("ratio"),
                        "p_value": c.get("p_value"), "error": c.get("error")})
    return out


def apply_stored(cmp: Dict[str, Any], cand_doc: Dict[str, Any]) -> Dict[str, Any]:
    """`compare` of a stored run that `run --fail-on-regression` re-measured against the same
    baseline: its `confirmations` give the same verdicts `run` gave (a stored slowdown that the
    re-measurement did not show is `inconclusive` here too)."""
    base = (cmp.get("base") or {}).get("run_id")
    kept = [c for c in cand_doc.get("confirmations") or []
            if isinstance(c, dict) and c.get("base_run_id") == base and c.get("verdict")]
    if not kept:
        return cmp
    return apply_confirmation(cmp, {"rows": kept}, run_id=None, only_listed=True)
