"""The history site service (`edge-bench report --site DIR`): read every key's series over the
runs from the store, the environment changes along it and compare's verdicts between
consecutive runs, and write the pages (render/site.py) into DIR.

Verdicts are compare's own (`compare_results`, the same rule as `edge-bench compare` and
`run --baseline`), between each run and the previous run of the same key. One comparison costs
a block bootstrap (most of a second), so they are kept in DIR/verdicts.json and a build only
judges pairs it has not judged before: a site rebuilt after every nightly run judges one new
pair per key and keeps the whole verdict history. A first build over an existing store judges
the newest `verdict_pairs` pairs of each key (default 1). A pair is marked `same` without the
test when both medians agree within half the threshold and neither run failed or changed
accuracy (compare's fast quartile cannot move by the threshold while the median stays within
half of it, unless interference lifted the median of one run: then it is not a slowdown).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from edge_bench_agent.accel_spec import result_accelerator

Key = Tuple[str, str, str, Optional[int], str]

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


def _screened_same(a: Dict[str, Any], b: Dict[str, Any], threshold: float) -> bool:
    if a["status"] != "ok" or b["status"] != "ok" or not a["median_ms"] or not b["median_ms"]:
        return False
    acc_a = (a.get("result") or {}).get("accuracy") or {}
    acc_b = (b.get("result") or {}).get("accuracy") or {}
    for f in ("top1", "agreement_vs_ref", "flag"):
        if acc_a.get(f) != acc_b.get(f):
            return False
    return abs(b["median_ms"] / a["median_ms"] - 1.0) < threshold / 2


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
            if got.get("threshold") == threshold:
                cache = got.get("pairs") or {}
        except (OSError, ValueError):
            cache = {}
    data = SiteData(runs, series)
    for s in series.values():
        s.changes = env_changes(s.rows)
        todo = []
        for i in range(1, len(s.rows)):
            pid = _pair_id(s.rows[i - 1], s.rows[i])
            if pid in cache:
                s.verdicts[i] = cache[pid]
                data.cached += 1
            elif i >= len(s.rows) - verdict_pairs:
                todo.append(i)
        if todo:
            _judge(store, s, todo, cache, threshold)
            data.judged += len(todo)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"threshold": threshold, "pairs": cache}, sort_keys=True),
                   encoding="utf-8")
    os.replace(tmp, cache_path)
    return data


def _judge(store: Any, s: Series, todo: List[int], cache: Dict[str, Any],
           threshold: float) -> None:
    from ..analysis.verdict import compare_results
    need_samples = [i for i in todo if not _screened_same(s.rows[i - 1], s.rows[i], threshold)]
    full: Dict[str, Dict[str, Any]] = {}
    if need_samples:
        k = s.key
        span = len(s.rows) - min(need_samples) + 1
        for r in store.history(device=k[0], model=k[1], variant=k[2], threads=k[3],
                               accelerator=k[4], last=span, samples=True):
            full[r["run_id"]] = r["result"]
    for i in todo:
        a, b = s.rows[i - 1], s.rows[i]
        pid = _pair_id(a, b)
        if i not in need_samples:
            v = {"verdict": "same", "screened": True,
                 "ratio": b["median_ms"] / a["median_ms"]}
        else:
            row = compare_results(full.get(a["run_id"], a["result"]),
                                  full.get(b["run_id"], b["result"]), threshold=threshold)
            v = {"verdict": row["verdict"], "ratio": row["ratio"], "p25_ratio": row["p25_ratio"],
                 "p_value": row["p_value"], "notes": row["notes"][:3]}
        cache[pid] = v
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
