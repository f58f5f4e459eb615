"""What a `--db` / EDGE_BENCH_DB reference is, and how to name it safely.

A reference is a path (the embedded SQLite store, results/store.py), a PostgreSQL URL
`postgresql://USER@HOST[:PORT]/DB` (or `postgres://`), or a libpq key=value string
(`host=H dbname=DB user=U`): the last two are the shared store (results/pg.py). Passwords come
from libpq's standard sources (PGPASSWORD, ~/.pgpass, PGPASSFILE, PG* variables) or the
reference itself.

`redact()` is the one home of the rule "a secret never leaves the process": every reference,
command line (`runs.argv`, the --json document, reports, site pages, the queue's run) and
message that may carry one goes through it. It errs on the side of hiding too much: in a URL
everything between `USER:` and the LAST `@` is the password (so `/ # @ : ?` in an unencoded
password are hidden too), a `password=` query value is hidden to the end, and in key=value text
every `password=` value (quoted with '...' and backslash escapes, or bare) is hidden.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, List, Optional, Union
from urllib.parse import quote, unquote

PG_SCHEMES = ("postgresql://", "postgres://")
HIDDEN = "***"
_SCHEME = re.compile(r"postgres(?:ql)?://", re.IGNORECASE)
# `password=` anywhere (PGPASSWORD=, a DSN's password = '...', a URL query's password=)
_PASSWORD_KEY = re.compile(r"password\s*=\s*", re.IGNORECASE)
_URL_QUERY_PASSWORD = re.compile(r"([?&]password=).*", re.IGNORECASE | re.DOTALL)
# a libpq key=value string starts with a keyword and `=` (libpq keywords are [a-z_]+)
_DSN_START = re.compile(r"^\s*[A-Za-z_]+\s*=")


def db_ref(ref: Union[str, "os.PathLike[str]", None]) -> Optional[str]:
    """The reference in force: `ref`, else EDGE_BENCH_DB, else None (the default SQLite path)."""
    if ref is not None and str(ref) != "":
        return os.fspath(ref)
    return os.environ.get("EDGE_BENCH_DB") or None


def is_pg_dsn(ref: Union[str, "os.PathLike[str]", None]) -> bool:
    """A libpq key=value string (`host=H dbname=DB ...`): never a SQLite file name."""
    r = db_ref(ref)
    return bool(r) and bool(_DSN_START.match(str(r)))


def is_pg_url(ref: Union[str, "os.PathLike[str]", None]) -> bool:
    """The shared PostgreSQL store: a postgresql:// URL or a libpq key=value string."""
    r = db_ref(ref)
    return bool(r) and (str(r).lower().startswith(PG_SCHEMES) or is_pg_dsn(r))


def _dsn_value_end(text: str, start: int) -> int:
    """Where a libpq value starting at `start` ends: a '...' value at its unescaped closing
    quote (the end of the text when there is none), a bare one at the next whitespace."""
    i, n = start, len(text)
    if i < n and text[i] == "'":
        i += 1
        while i < n and text[i] != "'":
            i += 2 if text[i] == "\\" else 1
        return min(i + 1, n)
    while i < n and not text[i].isspace():
        i += 2 if text[i] == "\\" else 1
    return min(i, n)


def _redact_pairs(text: str) -> str:
    out: List[str] = []
    pos = 0
    for m in _PASSWORD_KEY.finditer(text):
        if m.start() < pos:
            continue
        end = _dsn_value_end(text, m.end())
        out.append(text[pos:m.end()] + HIDDEN)
        pos = end
    return "".join(out) + text[pos:]


def url_password(url: str) -> Optional[str]:
    """The password section of a postgresql:// URL as redact() sees it: between `USER:` and the
    last `@` (None when there is none)."""
    m = _SCHEME.search(url)
    if not m:
        return None
    rest = url[m.end():]
    at = rest.rfind("@")
    if at < 0 or ":" not in rest[:at]:
        return None
    return rest[rest.index(":") + 1:at]


def _redact_url(rest: str) -> str:
    """The text after `postgresql://` with its credentials hidden."""
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        rest = rest[:rest.index(":") + 1] + HIDDEN + rest[at:]
    return _URL_QUERY_PASSWORD.sub(lambda m: m.group(1) + HIDDEN, rest)


def redact(text: str) -> str:
    """`text` (a --db reference, one command-line word, a line) with every password hidden."""
    text = str(text)
    m = _SCHEME.search(text)
    if m is None:
        return _redact_pairs(text)
    return _redact_pairs(text[:m.start()]) + m.group(0) + _redact_url(text[m.end():])


def redact_argv(argv: Iterable[object]) -> List[str]:
    """A command line as it may be stored or shown: each word redacted (`--db URL`,
    `--db=URL`, `--db 'host=H password=P'`)."""
    return [redact(str(a)) for a in argv]


def scrub(text: str, *secrets: Optional[str]) -> str:
    """`text` with every non-empty secret (as given and percent-encoded) replaced by `***`
    (for driver error messages), then redacted."""
    for s in secrets:
        if s:
            for form in {s, quote(s, safe=""), unquote(s)}:
                if form:
                    text = text.replace(form, HIDDEN)
    return redact(text)
