"""The compare service: load two runs, add the store's run-to-run noise, judge them.

One service for `edge-bench compare BASE CAND` and for `edge-bench run --baseline X`: both
load the documents here, take the noise floor from the same store queries and get the verdicts
from analysis/verdict.py. Showing the result is render/compare.py's job.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ..analysis.noise import HISTORY_RUNS, history_levels, noise_from_medians
from ..analysis.verdict import (DEFAULT_ACCURACY_THRESHOLD, DEFAULT_ALPHA, DEFAULT_THRESHOLD, Key,
                                compare_docs, result_key)
from ..errors import UsageError


@dataclass(frozen=True)
class Settings:
    """How strict a comparison is (the flags of `compare`; `run --baseline` sets threshold)."""
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    accuracy_threshold: float = DEFAULT_ACCURACY_THRESHOLD
    use_history: bool = True

    def check(self) -> None:
        for name in ("threshold", "alpha", "accuracy_threshold"):
            v = getattr(self, name)
            if not (v >= 0) or (name == "alpha" and not 0 < v < 1):
                raise UsageError(f"--{name.replace('_', '-')} {v} is out of range")


def is_file_ref(ref: str) -> bool:
    """A reference names a results file (rather than a run in the store)."""
    return os.path.isfile(ref) or ref == "-" or ref.endswith(".json")


def load_doc(ref: str, store: Any = None, db: Optional[str] = None,
             exclude: Optional[str] = None) -> Dict[str, Any]:
    """A results document from a --json file path, or from the store by run id / label /
    last / last~N. `store` is an open Store (opened from `db` when None and needed)."""
    if is_file_ref(ref):
        from ..results.document import read_json
        doc = read_json(ref)
        doc["_source"] = ref
        return doc
    if store is None:
        from ..results.backend import open_store
        store = open_store(db, create=False)
    run_id = store.resolve(ref, exclude=exclude)
    doc = store.get_run(run_id)
    doc["_source"] = ref
    from ..results.store import COMPLETE
    if doc.get("status") not in COMPLETE:
        print(f"edge-bench: warning: run {run_id} is {doc.get('status')}, not complete: keys it"
              " never measured show as missing", file=sys.stderr)
    return doc


def history_noise(store: Any, docs: Sequence[Dict[str, Any]], exclude: Sequence[str] = (),
                  last: int = HISTORY_RUNS, before: Optional[str] = None
                  ) -> Dict[Key, Dict[str, Any]]:
    """Per key of `docs[0]`: the run-to-run spread (analysis/noise.py) over the stored runs of
    that key in the baseline's environment that started at or `before` the candidate, leaving
    out the runs in `exclude`. Keys with fewer than MIN_HISTORY_RUNS such runs are left out.
    Only earlier runs count, so a pair of runs gets one verdict whenever it is judged (by
    `compare` today, or by the history site the night it was made)."""
    out: Dict[Key, Dict[str, Any]] = {}
    for r in docs[0].get("results") or []:
        if r.get("status") != "ok":
            continue
        k = result_key(r)
        rows = store.history(device=k[0], model=k[1], variant=k[2], threads=k[3],
                             accelerator=k[4], last=last + len(exclude), status="ok", samples=True,
                             before=before)
        n = noise_from_medians(history_levels(r, rows, exclude=exclude, last=last))
        if n is not None:
            out[k] = n
    return out


def compare(store: Any, base_doc: Dict[str, Any], cand_doc: Dict[str, Any],
            settings: Settings = Settings()) -> Dict[str, Any]:
    """The comparison of two loaded documents (verdict.compare_docs), with the noise floor of
    the store's history when there is a store and `settings.use_history`."""
    noise = None
    if store is not None and settings.use_history:
        noise = history_noise(store, [base_doc, cand_doc], exclude=[str(cand_doc.get("run_id"))],
                              before=cand_doc.get("started_at"))
    cmp = compare_docs(base_doc, cand_doc, threshold=settings.threshold, alpha=settings.alpha,
                       accuracy_threshold=settings.accuracy_threshold, noise=noise)
    from ..analysis.confirm import apply_stored
    return apply_stored(cmp, cand_doc)


def compare_refs(base_ref: str, cand_ref: str, db: Optional[str] = None,
                 settings: Settings = Settings()) -> Dict[str, Any]:
    """`edge-bench compare BASE CAND`: each a run id, label, last, last~N or a .json file; the
    store is opened only when a reference needs it."""
    settings.check()
    store = None
    try:
        docs: List[Dict[str, Any]] = []
        for ref in (base_ref, cand_ref):
            if store is None and not is_file_ref(ref):
                from ..results.backend import open_store
                store = open_store(db, create=False)
            docs.append(load_doc(ref, store=store))
        return compare(store, docs[0], docs[1], settings)
    finally:
        if store is not None:
            store.close()


def compare_with_baseline(store: Any, base_ref: str, cand_doc: Dict[str, Any],
                          settings: Settings = Settings()) -> Optional[Dict[str, Any]]:
    """`run --baseline X`: compare the run just made (`cand_doc`) with `base_ref` (run id,
    label, last, last~N or a --json path; `last` and labels never resolve to the candidate run
    itself). None when `last`/`last~N` finds no earlier run: on the first night that is not an
    error (an unknown label or run id still is: UsageError)."""
    try:
        base_doc = load_doc(base_ref, store=store, exclude=cand_doc.get("run_id"))
    except UsageError:
        if store is None or not re.match(r"^last(~\d+)?$", str(base_ref).strip()):
            raise
        return None
    return compare(store, base_doc, cand_doc, settings)
