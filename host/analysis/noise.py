"""Run-to-run noise of a key from its stored history (pure: the store is queried by the service,
app/compare.py, which hands the rows in).

Two runs of the same model on the same device differ even when nothing changed (a new process,
memory layout, another tenant). When the store holds enough earlier runs of a key in the same
environment, their spread sets a floor a change must clear (see verdict.compare_results).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from .verdict import ENV_FIELDS, run_level

#: how many stored runs of a key the noise is estimated from
HISTORY_RUNS = 20
#: fewer stored runs than this: no noise floor for the key
MIN_HISTORY_RUNS = 5


def environment(result: Dict[str, Any], model_sha256: Optional[str] = None) -> List[Any]:
    """The facts two runs of a key must share for their levels to be comparable: runtime name,
    version, XNNPACK, agent version and the model's sha256."""
    return [get(result) for _, get in ENV_FIELDS[:4]] + [model_sha256 if model_sha256 is not None
                                                          else result.get("model_sha256")]


def history_levels(baseline: Dict[str, Any], history: Iterable[Dict[str, Any]],
                   exclude: Sequence[str] = (), last: int = HISTORY_RUNS) -> List[float]:
    """The decision levels (`run_level`, else the stored median) of the `history` rows
    (store.history(..., samples=True), oldest first) that ran in the same environment as the
    `baseline` result, leaving out the runs in `exclude`; the newest `last` of them."""
    env = environment(baseline)
    levels = [run_level(h["result"]) or h["median_ms"] for h in history
              if h["run_id"] not in exclude and environment(h["result"], h["model_sha256"]) == env]
    return [x for x in levels if x][-last:]


def noise_from_medians(medians: Sequence[float]) -> Optional[Dict[str, Any]]:
    """{"sigma", "runs"} of a key's stored per-run levels (`run_level`, oldest first), or None
    when fewer than MIN_HISTORY_RUNS: the run-to-run spread (sigma of the log level), estimated
    from successive differences (sigma = 1.4826 * median |d log level| / sqrt(2)) so that a
    one-off step (a real regression in the history) barely moves it."""
    meds = [float(m) for m in medians if m and m > 0]
    if len(meds) < MIN_HISTORY_RUNS:
        return None
    d = np.diff(np.log(np.asarray(meds, dtype=np.float64)))
    sigma = 1.4826 * float(np.median(np.abs(d))) / math.sqrt(2.0)
    return {"sigma": sigma, "runs": len(meds)}
