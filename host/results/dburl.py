"""What a `--db` / EDGE_BENCH_DB reference is, and how to name it safely.

A reference is either a path (the embedded SQLite store, results/store.py) or a PostgreSQL URL
`postgresql://USER@HOST[:PORT]/DB` (or `postgres://`), the shared store (results/pg.py).
Passwords come from libpq's standard sources (PGPASSWORD, ~/.pgpass, PGPASSFILE, PG* variables)
or the URL itself; `redact()` is the only form of a URL that may be printed or logged.
"""
from __future__ import annotations

import os
import re
from typing import Optional, Union

PG_SCHEMES = ("postgresql://", "postgres://")
_PASSWORD_IN_URL = re.compile(r"^(postgres(?:ql)?://[^:@/?#]*):[^@/?#]*@", re.IGNORECASE)
_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def db_ref(ref: Union[str, "os.PathLike[str]", None]) -> Optional[str]:
    """The reference in force: `ref`, else EDGE_BENCH_DB, else None (the default SQLite path)."""
    if ref is not None and str(ref) != "":
        return os.fspath(ref)
    return os.environ.get("EDGE_BENCH_DB") or None


def is_pg_url(ref: Union[str, "os.PathLike[str]", None]) -> bool:
    r = db_ref(ref)
    return bool(r) and str(r).lower().startswith(PG_SCHEMES)


def redact(url: str) -> str:
    """The URL with any password replaced by `***` (user, host, port, database are kept)."""
    out = _PASSWORD_IN_URL.sub(r"\1:***@", str(url))
    return _PASSWORD_PARAM.sub(r"\1***", out)


def scrub(text: str, *secrets: Optional[str]) -> str:
    """`text` with every non-empty secret replaced by `***` (for driver error messages)."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text
