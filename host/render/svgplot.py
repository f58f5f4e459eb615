"""Small helpers shared by the SVG plots: axis ticks and their labels."""
from __future__ import annotations

import math
from typing import List, Sequence


def nice_ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]."""
    if not (hi > lo):
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 12))
        v += step
    return ticks


def tick_labels(ticks: Sequence[float]) -> List[str]:
    """Labels with just enough decimals that neighbouring ticks read differently
    (0.175 0.18 0.185, not 0.18 0.18 0.18)."""
    if not ticks:
        return []
    if len(ticks) == 1:
        return [f"{ticks[0]:.3g}"]
    step = min(abs(b - a) for a, b in zip(ticks, ticks[1:]) if b != a) if len(set(ticks)) > 1 else 1
    decimals = 0
    while decimals < 12:
        labels = [f"{t:.{decimals}f}" for t in ticks]
        if len(set(labels)) == len(labels) and abs(round(step, decimals) - step) < step * 1e-6:
            return labels
        decimals += 1
    return [f"{t:g}" for t in ticks]
