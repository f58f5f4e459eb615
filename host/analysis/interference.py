"""Was the device busy while a result was timed? (pure: the numbers come from the agent,
agent/interference.py, in each result's `interference`).

A slowdown that other processes on the device can explain is not evidence of a regression:
measured on a 2-core machine, two LiteRT inference loops and two memory-bandwidth loops beside
the benchmark moved the fast quartile of builtin:digits by +44% with every sample slower, which
no rule on the samples alone can tell from a real regression. So `compare` (and everything
that uses its verdicts) turns a `slower` into `inconclusive` when the candidate ran on a busy
device (other processes' CPU time of at least BUSY_CORES cores, hypervisor steal included),
also when the baseline was busy too (the same CPU time of other processes can interfere very
differently: on a machine whose other tenants kept 1.7 of its 2 cores busy during both runs,
builtin:digits measured +17% twice in a row), unless the slowdown is larger than that load can explain
(`explains`: up to 1 + the busy cores), and a `faster` the same way when the baseline was the
busy one. The row says why: `device busy: other processes used 1.3 of 2 cores during the
candidate`. A result without the numbers (older runs, a device without /proc) is never
judged busy.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

#: other processes' CPU time (in cores: CPU-seconds per second of timing) from which a device
#: counts as busy. Half a core: well above an idle board's background (< 0.05 on a quiet Pi or
#: VM) and far below what another benchmark or build beside ours takes (>= 1).
BUSY_CORES = 0.5


def _cores(info: Dict[str, Any]) -> Optional[float]:
    other = info.get("other_cores")
    if other is None:
        return None
    return float(other) + float(info.get("steal_cores") or 0.0)


def load(result: Optional[Dict[str, Any]]) -> Optional[float]:
    """Other processes' CPU time plus hypervisor steal during the timing, in cores, in the
    busiest of the result's worker processes (one busy process of three is enough to move
    its samples); None when the result does not say."""
    info = (result or {}).get("interference") or {}
    per = [x for x in (_cores(p) for p in info.get("processes") or [] if isinstance(p, dict))
           if x is not None]
    return max(per) if per else _cores(info)


def is_busy(result: Optional[Dict[str, Any]]) -> bool:
    x = load(result)
    return x is not None and x >= BUSY_CORES


def describe(result: Optional[Dict[str, Any]], who: str) -> str:
    """`other processes used 1.3 of 2 cores during the candidate` (+ steal when there was)."""
    info = (result or {}).get("interference") or {}
    total = load(result) or 0.0
    steal = float(info.get("steal_cores") or 0.0)
    other = max(0.0, total - steal)
    cores = info.get("cores")
    text = f"other processes used {other:.1f}" + (f" of {cores} cores" if cores else " cores")
    if steal >= 0.05:
        text += f" (and the hypervisor took {steal:.1f})"
    return f"{text} during the {who}"


def explains(busy_cores: float, ratio: float) -> bool:
    """Whether other processes' `busy_cores` can explain a slowdown by `ratio` (>= 1): up to
    1 + busy_cores (others keeping 1.3 cores busy can stretch an invoke to 2.3x, e.g. by
    taking our core for that share of the time, or the caches and memory bandwidth it needs;
    measured: +44% with about 1.5 cores of other inference and memory loops). A larger change
    stands out of any interference that small: a 3x slower model is still `slower`."""
    return ratio <= 1.0 + busy_cores


def busy_reason(base: Dict[str, Any], cand: Dict[str, Any], ratio: float) -> Optional[str]:
    """Why interference can explain this change of the fast quartile (`ratio` = cand/base):
    a slowdown when the candidate was busy and the change is no larger than that load explains
    (`explains`); a speed-up the same way with the baseline busy. None when it cannot."""
    a, b = load(base), load(cand)
    if ratio > 1 and b is not None and b >= BUSY_CORES and explains(b, ratio):
        return "device busy: " + describe(cand, "candidate")
    if ratio < 1 and a is not None and a >= BUSY_CORES and explains(a, 1.0 / ratio):
        return "device busy: " + describe(base, "baseline")
    return None


def busy_note(result: Dict[str, Any]) -> Optional[str]:
    """What `run` says while it runs (once per device) when a result was timed on a busy
    device; None when it was not busy."""
    if not is_busy(result):
        return None
    return (f"{result.get('device')} is busy: {describe(result, 'timing')}; slowdowns that"
            " load can explain will not be judged")
