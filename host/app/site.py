"""The history site service (`edge-bench report --site DIR`): read every key's series over the
runs from the store, the environment changes along it and compare's verdicts between
consecutive runs, and write the pages (render/site.py) into DIR.

Verdicts are compare's own (app/compare.compare: the same service as `edge-bench compare` and
`run --baseline`, with the history noise floor of the runs before the candidate and the
re-measurement `run --fail-on-regression` kept with the candidate), between each run and the
previous run of the same key: the site, compare and run give one verdict per pair of runs. A
`slower` that no re-measurement backs says so on the site. One comparison costs a block
bootstrap (most of a second), so they are kept in DIR/verdicts.json and a build only judges
pairs it has not judged before: a site rebuilt after every nightly run judges one new pair per
key and keeps the whole verdict history. A first build over an existing store judges the newest
`verdict_pairs` pairs of each key (default 1). A cache made by another rule (VERDICT_RULE) or
threshold is judged again.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from edge_bench_agent.accel_spec import result_accelerator

Key = Tuple[str, str, str, Optional[int], str]

#: bumped when the verdict rule changes, so that verdicts.json made by an older rule (the
#: screened `same`, no busy-device check, no re-measurement) is judged again
VERDICT_RULE = 2

#: the facts whose change along a series is annotated on the trend
ENV_FACTS = (("runtime", lambda r: " ".join(x for x in (r.get("runtime"), r.get("runtime_version"))
                                            if x) or None),
             ("agent", lambda r: r.get("agent_version")),
             ("quantizer", lambda r: _quantizer(r)))


def _quantizer(row: Dict[str, Any]) -> Optional[str]:
    res = row.get("result") or {}
    name = res.get("quantizer")
    if not name:
        return None
    return f"{name} {res.get('quantizer_version') or ''}".strip()


@dataclass
class Series:
    key: Key
    rows: List[Dict[str, Any]]                                     # oldest first
    verdicts: Dict[int, Dict[str, Any]] = field(default_factory=dict)  # row index -> verdict
    changes: Dict[int, List[str]] = field(default_factory=dict)        # row index -> notes

    @property
    def latest(self) -> Dict[str, Any]:
        return self.rows[-1]


@dataclass
class SiteData:
    runs: List[Dict[str, Any]]          # oldest first
    series: Dict[Key, Series]
    judged: int = 0                     # comparisons run in this build
    cached: int = 0                     # verdicts taken from DIR/verdicts.json


def _pair_id(a: Dict[str, Any], b: Dict[str, Any]) -> str:
    accel = result_accelerator(a)  # cpu pairs keep the id they had before accelerators
    return (f"{a['run_id']}|{b['run_id']}|{a['device']}|{a['model']}|{a['variant']}|{a['threads']}"
            + ("" if accel == "cpu" else f"|{accel}"))


def env_changes(rows: List[Dict[str, Any]]) -> Dict[int, List[str]]:
    out: Dict[int, List[str]] = {}
    for i in range(1, len(rows)):
        for name, get in ENV_FACTS:
            a, b = get(rows[i - 1]), get(rows[i])
            if a != b and (a or b):
                out.setdefault(i, []).append(f"{name} {a or '?'} → {b or '?'}")
    return out


def load(store: Any, out_dir: Path, *, verdict_pairs: int = 1,
         threshold: float = 0.05) -> SiteData:
    runs = list(reversed(store.list_runs(limit=None)))
    series: Dict[Key, Series] = {}
    for row in store.history():
        k = (row["device"], row["model"], row["variant"], row["threads"],
             result_accelerator(row))
        series.setdefault(k, Series(k, [])).rows.append(row)
    cache_path = out_dir / "verdicts.json"
    cache: Dict[str, Any] = {}
    if cache_path.is_file():
        try:
            got = json.loads(cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            got = None
        if isinstance(got, dict) and got.get("threshold") == threshold \
                and got.get("rule") == VERDICT_RULE and isinstance(got.get("pairs"), dict):
            cache = got["pairs"]
    data = SiteData(runs, series)
    for s in series.values():
        s.changes = env_changes(s.rows)
        todo = []
        for i in range(1, len(s.rows)):
            pid = _pair_id(s.rows[i - 1], s.rows[i])
            if pid in cache and _cached_ok(cache[pid], s.rows[i - 1], s.rows[i], threshold):
                s.verdicts[i] = cache[pid]
                data.cached += 1
            elif i >= len(s.rows) - verdict_pairs:
                todo.append(i)
        if todo:
            _judge(store, s, todo, cache, threshold)
            data.judged += len(todo)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"threshold": threshold, "rule": VERDICT_RULE, "pairs": cache},
                              sort_keys=True),
                   encoding="utf-8")
    os.replace(tmp, cache_path)
    return data


def _cached_ok(v: Any, a: Dict[str, Any], b: Dict[str, Any], threshold: float) -> bool:
    """A cached verdict is used only when it has the shape _judge writes and agrees with the
    pair it claims to judge (its ratio with the two stored medians, its direction with its
    ratios): the cache is a file in a published folder, not a trusted source. Else re-judged."""
    from ..analysis.verdict import VERDICTS

    def num(x: Any) -> bool:
        return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)
                             and math.isfinite(x) and x > 0)
    if not isinstance(v, dict) or v.get("verdict") not in VERDICTS:
        return False
    if not all(num(v.get(k)) for k in ("ratio", "p25_ratio")) or \
            not isinstance(v.get("notes", []), list):
        return False
    ma, mb = a.get("median_ms"), b.get("median_ms")
    if ma and mb and v.get("ratio") is not None and abs(math.log(v["ratio"] * ma / mb)) > 0.05:
        return False
    if v.get("ratio") and v.get("p25_ratio") and abs(math.log(v["p25_ratio"] / v["ratio"])) > 0.7:
        return False  # the fast quartile and the median moved by factors 2x apart: not measured
    r = v.get("p25_ratio") if v.get("p25_ratio") is not None else v.get("ratio")
    if r is None:
        return v["verdict"] not in ("same", "faster", "slower")
    up = 1.0 + threshold
    return {"same": 1 / up < r < up, "faster": r <= 1 / up, "slower": r >= up}.get(v["verdict"], True)


def _judge(store: Any, s: Series, todo: List[int], cache: Dict[str, Any],
           threshold: float) -> None:
    """compare's verdict (app/compare.compare: the history noise floor of the runs before the
    candidate, and the re-measurement `run --fail-on-regression` kept with the candidate) of
    each pair in `todo`: what `edge-bench compare BASE CAND` says of the same two runs."""
    from .compare import Settings, compare
    k = s.key
    span = len(s.rows) - min(todo) + 1
    full = {r["run_id"]: r["result"] for r in store.history(
        device=k[0], model=k[1], variant=k[2], threads=k[3], accelerator=k[4],
        last=span, samples=True)}
    for i in todo:
        a, b = s.rows[i - 1], s.rows[i]
        docs = []
        for row in (a, b):
            meta = store.get_run(row["run_id"], samples=False)
            meta["results"] = [full.get(row["run_id"], row["result"])]
            docs.append(meta)
        cmp = compare(store, docs[0], docs[1], Settings(threshold=threshold))
        (row,) = cmp["rows"]
        v = {"verdict": row["verdict"], "ratio": row["ratio"], "p25_ratio": row["p25_ratio"],
             "p_value": row["p_value"], "notes": row["notes"][:3],
             "remeasured": row.get("confirmation") is not None}
        if row["verdict"] == "slower" and not v["remeasured"]:
            v["notes"] = v["notes"] + ["measured once: no re-measurement was kept with the run"]
        cache[_pair_id(a, b)] = v
        s.verdicts[i] = v


@dataclass
class SiteReport:
    path: Path
    pages: int
    bytes: int
    seconds: float
    judged: int
    cached: int


def build_site(store: Any, out_dir: Union[str, Path], *, verdict_pairs: int = 1,
               threshold: float = 0.05) -> SiteReport:
    """Write the site of `store` into out_dir; files whose text did not change are left alone."""
    import time
    from ..render.site import render_site
    t0 = time.perf_counter()
    out_dir = Path(out_dir).expanduser()
    data = load(store, out_dir, verdict_pairs=verdict_pairs, threshold=threshold)
    files = render_site(data)
    total = 0
    for name, text in files.items():
        raw = text.encode("utf-8")
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.stat().st_size != len(raw) or path.read_bytes() != raw:
            path.write_bytes(raw)
        total += len(raw)
    return SiteReport(path=out_dir / "index.html", pages=sum(n.endswith(".html") for n in files),
                      bytes=total, seconds=time.perf_counter() - t0, judged=data.judged,
                      cached=data.cached)


def write_site(out_dir: Union[str, Path], db: Optional[str] = None, *, verdict_pairs: int = 1,
               threshold: float = 0.05) -> SiteReport:
    """`edge-bench report --site DIR [--db PATH|URL]`."""
    from ..errors import StoreError, UsageError
    from ..results.backend import open_store
    if verdict_pairs < 0:
        raise UsageError(f"--verdicts {verdict_pairs}: expected a number >= 0")
    store = open_store(db, create=False)  # a path or a postgresql:// URL
    try:
        return build_site(store, out_dir, verdict_pairs=verdict_pairs, threshold=threshold)
    except OSError as e:
        raise StoreError(f"cannot write the site into {out_dir}: {e.strerror or e}") from e
    finally:
        store.close()
