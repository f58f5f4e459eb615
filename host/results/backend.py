"""Which results store a `--db` / EDGE_BENCH_DB reference means: a path is the embedded SQLite
store (results/store.py), a postgresql:// URL the shared store (results/pg.py)."""
from __future__ import annotations

import os
from typing import Any, Type, Union

from .dburl import db_ref, is_pg_url


def store_class(ref: Union[str, "os.PathLike[str]", None]) -> Type[Any]:
    """The Store class for a reference: PgStore for a PostgreSQL URL, else the SQLite Store."""
    if is_pg_url(ref):
        from .pg import PgStore
        return PgStore
    from .store import Store
    return Store


def open_store(ref: Union[str, "os.PathLike[str]", None] = None, *, create: bool = True) -> Any:
    """The store a `--db` value (or EDGE_BENCH_DB) names."""
    return store_class(ref)(db_ref(ref), create=create)
