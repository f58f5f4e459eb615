"""Issue 25 item 9: no traceback from a damaged or hostile store, results file, devices.yaml or
site cache. Each is one line naming what is wrong (exit 2), and the site's verdict cache is
validated, not trusted: an edited or malformed cache entry is recomputed."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Dict, List

import pytest

from test_run_local import edge_bench
from test_store import add_run, make_result
from edge_bench.results.store import Store

READERS = [["history"], ["history", "--device", "local", "--variant", "fp32"],
           ["compare", "last~1", "last"], ["report", "last", "--html", "r.html"],
           ["report", "--site", "site"]]


def _store(tmp_path: Path) -> Path:
    db = tmp_path / "r.sqlite"
    st = Store(db)
    for d in (1, 2):
        add_run(st, f"n{d}", f"2024-07-0{d}T00:00:00+00:00", [make_result("fp32", seed=d)])
    st.close()
    return db


DEEP = "[" * 100_000 + "]" * 100_000
DAMAGE = {
    "doc-not-json": "UPDATE results SET doc = '{not json' WHERE id = 2",
    "doc-deep": f"UPDATE results SET doc = '{DEEP}' WHERE id = 2",
    "doc-a-list": "UPDATE results SET doc = '[1, 2]' WHERE id = 2",
    "host-not-json": "UPDATE runs SET host = 'x{' WHERE id = 2",
    "argv-deep": f"UPDATE runs SET argv = '{DEEP}' WHERE id = 2",
    "extra-a-list": "UPDATE runs SET extra = '[]' WHERE id = 2",
    "samples-odd-length": "UPDATE results SET samples = X'0102030405' WHERE id = 2",
    "median-text": "UPDATE results SET median_ms = 'fast' WHERE id = 2",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE), ids=sorted(DAMAGE))
def test_damaged_store_cells_are_one_line_not_a_traceback(tmp_path: Path, damage: str) -> None:
    db = _store(tmp_path)
    with sqlite3.connect(db) as c:
        c.execute(DAMAGE[damage])
    for args in READERS:
        p = edge_bench([*args, "--db", str(db)], tmp_path)
        assert "Traceback" not in p.stderr, (args, p.stderr[-2000:])
        assert p.returncode in (0, 1, 2), (args, p.returncode, p.stderr)
        if p.returncode == 2:
            assert len(p.stderr.strip().splitlines()) <= 2, p.stderr


def test_results_file_of_deep_nested_arrays(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text(DEEP)
    p = edge_bench(["compare", "deep.json", "deep.json"], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "deep.json" in p.stderr


def test_huge_integer_in_devices_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n  box:\n    transport: local\n"
                   f"    timeout_s: {'9' * 4400}\n")
    p = edge_bench(["devices", "--config", str(cfg)], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "timeout_s" in p.stderr and len(p.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize("cache", ["[]", "{\"a\": 1}", "not json", DEEP],
                         ids=["list", "other-object", "not-json", "deep"])
def test_site_cache_of_the_wrong_shape_is_rebuilt(tmp_path: Path, cache: str) -> None:
    db = _store(tmp_path)
    assert edge_bench(["report", "--site", "site", "--db", str(db)], tmp_path).returncode == 0
    caches = list((tmp_path / "site").rglob("verdicts.json"))
    assert caches
    for c in caches:
        c.write_text(cache)
    p = edge_bench(["report", "--site", "site", "--db", str(db)], tmp_path)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]


@pytest.mark.parametrize("edit", [{"verdict": "faster"}, {"verdict": "faster", "ratio": 0.01},
                                  {"verdict": "slower", "p25_ratio": 9.0}],
                         ids=["verdict", "verdict-and-ratio", "verdict-and-p25"])
def test_edited_site_verdict_is_not_published(tmp_path: Path, edit: Dict[str, Any]) -> None:
    """Editing the cache does not change a published verdict: entries are checked against the
    pair of results they claim to judge."""
    db = _store(tmp_path)
    assert edge_bench(["report", "--site", "site", "--db", str(db)], tmp_path).returncode == 0
    (cache,) = list((tmp_path / "site").rglob("verdicts.json"))
    data = json.loads(cache.read_text())
    entries = _entries(data)
    assert entries, data
    before = _badges(tmp_path / "site")
    assert sum(before.values()) > 0
    for v in entries:
        v.update(edit)
    cache.write_text(json.dumps(data))
    p = edge_bench(["report", "--site", "site", "--db", str(db)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert _badges(tmp_path / "site") == before and before[">faster<"] == before[">slower<"] == 0


def _badges(site: Path) -> Dict[str, int]:
    pages = "".join(q.read_text() for q in sorted(site.rglob("*.html")))
    return {b: pages.count(b) for b in (">faster<", ">slower<", ">same<", ">inconclusive<")}


def _entries(data: Any) -> List[dict]:
    out: List[dict] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if "verdict" in x:
                out.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(data)
    return out
