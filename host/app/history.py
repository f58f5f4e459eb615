"""The history service: the stored results of the matching keys and the runs (newest first),
optionally written as CSV."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple


def load_history(db: Optional[str], *, device: Optional[str] = None, model: Optional[str] = None,
                 variant: Optional[str] = None, threads: Optional[int] = None,
                 last: Optional[int] = None, label: Optional[str] = None,
                 csv_out: Optional[str] = None
                 ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(matching results oldest first, the runs newest first) of the store at `db`."""
    from ..results.backend import open_store
    store = open_store(db, create=False)
    try:
        rows = store.history(device=device, model=model, variant=variant, threads=threads,
                             last=last, label=label)
        runs = store.list_runs(limit=last, label=label)
    finally:
        store.close()
    if csv_out:
        from ..results.document import RESULT_CSV_COLUMNS, result_row, write_rows_csv
        write_rows_csv([result_row(r, r["result"]) for r in rows], RESULT_CSV_COLUMNS, csv_out)
    return rows, runs
