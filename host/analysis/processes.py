"""Processes as the unit (pure): when can the pooled fast quartile of a result be trusted?

A fresh worker process sometimes runs at its own, slower level for all of its samples (memory
layout, the core it lands on): in quiet runs of builtin:digits, 4 of 6 runs had one of their
three processes ~40% above the others. Pooling the samples and taking the fast quartile
shrugs off part of it, not all: with a microsecond model's spread of samples one slow process
of three still moved the pooled fast quartile by ~6%, and two by as much as they are slow,
with an interval of +-1% (the interval counts samples, not processes): quiet pairs were judged
`faster -20.5% [-20.9, -20.5]`. So the fast quartile is pooled over the processes at the
side's fast level only (`fast_processes`: p25 within the threshold of its fastest process;
slow processes are never faster, and a real slowdown moves every process, the fastest too),
and a `slower`/`faster` verdict needs those to be a strict majority of the side's processes
(else it is `inconclusive`, saying which side and what to do), unless the processes themselves
separate: every candidate process beyond every baseline process by the threshold (`separated`:
an 8x slower model timed while processes disagree by 30% is `slower`).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np


def at_fast_level(process_p25: Sequence[float], threshold: float) -> int:
    """How many processes have a p25 within `threshold` of the fastest one."""
    vals = [float(x) for x in process_p25 if x is not None and x > 0]
    if not vals:
        return 0
    fast = min(vals)
    return sum(1 for x in vals if x <= fast * (1.0 + threshold))


def fast_processes(groups: Sequence[np.ndarray], q: float,
                   threshold: float) -> List[np.ndarray]:
    """The processes (their samples) whose q-quantile is within `threshold` of the fastest
    process's: the ones the pooled fast quartile is taken over."""
    gs = [np.asarray(g, dtype=np.float64) for g in groups if np.asarray(g).size]
    if len(gs) < 2:
        return gs
    levels = [float(np.quantile(g, q)) for g in gs]
    fast = min(levels)
    return [g for g, lv in zip(gs, levels) if lv <= fast * (1.0 + threshold)]


def minority_note(who: str, process_p25: Optional[Sequence[float]],
                  threshold: float) -> Optional[str]:
    """Why `who`'s pooled fast quartile cannot carry a verdict (the processes at its fast level
    are not a strict majority), or None (fewer than 2 processes: nothing to tell)."""
    vals = [float(x) for x in process_p25 or [] if x is not None and x > 0]
    if len(vals) < 2:
        return None
    n = at_fast_level(vals, threshold)
    if 2 * n > len(vals):
        return None
    return (f"only {n} of the {who}'s {len(vals)} worker processes ran at its fast level: its"
            " fast quartile depends on which processes happened to run slow; not judged"
            " (time more processes: --processes)")


def separated(base_p25: Optional[Sequence[float]], cand_p25: Optional[Sequence[float]],
              threshold: float) -> bool:
    """Every candidate process's p25 above every baseline process's by more than `threshold`
    (or below, mirrored): a change no disagreement between processes can explain."""
    a = [float(x) for x in base_p25 or [] if x is not None and x > 0]
    b = [float(x) for x in cand_p25 or [] if x is not None and x > 0]
    if not a or not b:
        return False
    return min(b) > max(a) * (1.0 + threshold) or max(b) * (1.0 + threshold) < min(a)
