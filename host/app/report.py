"""The report service: load a run (store or results file), its keys' history, and write the
HTML page (render/html.py) and/or the CSV of its results."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..analysis.verdict import Key, result_key
from ..errors import StoreError, UsageError
from .compare import load_doc

#: stored runs shown in the trend plots
DEFAULT_HISTORY = 20


def collect_history(store: Any, doc: Dict[str, Any], last: int) -> Dict[Key, List[Dict[str, Any]]]:
    """For each key of the run: its stored results over the last `last` runs (oldest first)."""
    out: Dict[Key, List[Dict[str, Any]]] = {}
    for r in doc.get("results") or []:
        k = result_key(r)
        if k in out:
            continue
        out[k] = store.history(device=k[0], model=k[1], variant=k[2], threads=k[3],
                               accelerator=k[4], last=last)
    return out


def load_run(ref: str, db: Optional[str], history: int
             ) -> Tuple[Dict[str, Any], Dict[Key, List[Dict[str, Any]]]]:
    """(the run's document, its keys' history over `history` stored runs). A results file
    needs no store (its trends are then drawn only when the store opens)."""
    from ..results.backend import open_store
    store = None
    if not (os.path.isfile(ref) or ref.endswith(".json")):
        store = open_store(db, create=False)
    else:
        try:
            store = open_store(db, create=False)  # for trends only; optional with a file
        except (UsageError, StoreError):
            store = None
    try:
        doc = load_doc(ref, store=store)
        hist: Dict[Key, List[Dict[str, Any]]] = {}
        if store is not None and history > 0:
            hist = collect_history(store, doc, history)
    finally:
        if store is not None:
            store.close()
    return doc, hist


def write_report(ref: str, db: Optional[str] = None, html_out: Optional[str] = None,
                 csv_out: Optional[str] = None, history: int = DEFAULT_HISTORY) -> Optional[Tuple[Path, int]]:
    """Write the CSV and/or the HTML page of run `ref`; (HTML path, its size) when written."""
    doc, hist = load_run(ref, db, history)
    if csv_out:
        from ..results.document import write_csv
        write_csv(doc, csv_out)
    if not html_out:
        return None
    from ..render.html import render_html
    text = render_html(doc, hist)
    path = Path(html_out).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from e
    return path, len(text)
