"""The results store on a real PostgreSQL server: the same behaviour as SQLite, one schema,
concurrent writers, reconnects, `store copy`, and passwords that never get printed."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List

import pytest

import pgserver
from test_store import add_run, make_result
from edge_bench.cli import main
from edge_bench.errors import StoreError, UsageError
from edge_bench.results.pg import PgStore, table_columns
from edge_bench.results.backend import open_store
from edge_bench.results.store import SCHEMA_VERSION, Store


def _ops(st: Store) -> Dict[str, Any]:
    """One fixed sequence of writes and every kind of read, as plain data."""
    ids = [add_run(st, "nightly" if d < 3 else "exp", f"2024-05-0{d}T00:00:00+00:00",
                   [make_result("fp32", median=2.0 + d / 100, seed=d),
                    make_result("int8", median=1.0, seed=d + 10),
                    make_result("fp32", device="pi4", seed=d + 20, threads=4)])
           for d in range(1, 5)]
    err = make_result("int8", seed=99)
    err.update(status="error", error="DeviceError: pi4: 100% gone_with_%s and ?")
    st.add_result(ids[-1], err)
    # a field set after the run (run --fail-on-regression's re-measurements)
    st.annotate_run(ids[-1], "confirmations", [{"model": "m", "verdict": "same", "ratio": 1.01}])
    return {
        "refs": [st.resolve(r) for r in ("last", "last~1", "nightly", "exp", ids[2][:-2])],
        "exclude": st.resolve("last", exclude=ids[-1]),
        # finished_at is the wall clock of finish_run: it differs between the two stores
        "runs": [{k: v for k, v in r.items() if k not in ("run_id", "finished_at")}
                 for r in st.list_runs(limit=10)],
        "label": len(st.list_runs(label="nightly")),
        "doc": st.get_run("last"),
        "hist": st.history(device="local", variant="fp32", last=2, samples=True),
        "hist_all": st.history(status="error"),
        "ids": ids,
    }


def test_postgresql_behaves_like_sqlite(tmp_path: Path, pg_url: str) -> None:
    lite = open_store(tmp_path / "r.sqlite")
    pg = open_store(pg_url)
    assert isinstance(pg, PgStore) and not isinstance(lite, PgStore)
    a, b = _ops(lite), _ops(pg)
    # run ids are random: map them before comparing everything else exactly
    idmap = dict(zip(b["ids"], a["ids"]))
    assert [idmap[x] for x in b["refs"]] == a["refs"]
    assert idmap[b["exclude"]] == a["exclude"]
    assert b["runs"] == a["runs"] and b["label"] == a["label"] == 2
    for side in (a, b):
        side["doc"].pop("run_id")
        side["doc"].pop("finished_at")
        for h in side["hist"] + side["hist_all"]:
            h.pop("run_id")
    assert b["doc"] == a["doc"]
    assert a["doc"]["confirmations"] == [{"model": "m", "verdict": "same", "ratio": 1.01}]
    assert len(b["doc"]["results"]) == 4 and b["doc"]["results"][3]["status"] == "error"
    assert len(b["doc"]["results"][0]["samples_ms"]) == 300  # raw samples survive as bytea
    assert b["hist"] == a["hist"] and len(a["hist"]) == 2
    assert b["hist_all"] == a["hist_all"] and len(a["hist_all"]) == 1
    with pytest.raises(UsageError, match="no run `nope`"):
        pg.resolve("nope")
    assert "@" in str(pg.path) and pg.schema_version == SCHEMA_VERSION


def test_one_schema_for_both(tmp_path: Path, pg_url: str) -> None:
    """Every migration runs on both; the tables have the same columns with matching types."""
    kinds = {"INTEGER": {"integer", "bigint"}, "TEXT": {"text"}, "REAL": {"double precision"},
             "BLOB": {"bytea"}}
    lite, pg = open_store(tmp_path / "s.sqlite"), open_store(pg_url)
    for table in ("runs", "results", "meta"):
        lc, pc = table_columns(lite, table), table_columns(pg, table)
        assert [c for c, _ in lc] == [c for c, _ in pc], table
        for (col, lt), (_, pt) in zip(lc, pc):
            assert pt in kinds[lt.upper()], (table, col, lt, pt)
    open_store(pg_url).close()  # a second open finds the schema current and changes nothing
    assert pg.schema_version == SCHEMA_VERSION


def test_concurrent_writers_in_processes(pg_url: str, tmp_path: Path) -> None:
    """Four processes open the same fresh database at once (racing the migration) and write."""
    script = tmp_path / "w.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_store import make_result\n"
        "from edge_bench.results.backend import open_store\n"
        "st = open_store(sys.argv[1])\n"
        "rid = st.begin_run({'label': 'w' + sys.argv[2]})\n"
        "for i in range(10):\n"
        "    st.add_result(rid, make_result(device='d' + sys.argv[2], variant=f'v{i}', n=30))\n"
        "st.finish_run(rid, 'ok')\n")
    procs = [subprocess.Popen([sys.executable, str(script), pg_url, str(i)],
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    st = open_store(pg_url)
    runs = st.list_runs()
    assert len(runs) == 4 and all(r["n_results"] == 10 and r["status"] == "ok" for r in runs)
    assert st.schema_version == SCHEMA_VERSION


def test_threads_and_a_server_restart_lose_nothing(pg_cluster: Any, pg_url: str) -> None:
    st = open_store(pg_url)
    rid = st.begin_run({"label": "restart"})
    errors: List[BaseException] = []
    half = threading.Event()

    def device(name: str) -> None:
        try:
            for i in range(20):
                st.add_result(rid, make_result(device=name, variant=f"v{i}", seed=i, n=40))
                if i == 10:
                    half.set()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=device, args=(f"dev{j}",)) for j in range(3)]
    for t in ts:
        t.start()
    assert half.wait(60)
    pg_cluster.restart()  # every connection is dropped mid-run
    for t in ts:
        t.join(120)
    assert not errors, errors
    res = st.get_run(rid)["results"]
    keys = [(r["device"], r["variant"]) for r in res]
    assert len(keys) == 60 and len(set(keys)) == 60  # none lost, none twice
    st.finish_run(rid, "ok")


def test_store_copy_sqlite_to_postgresql(tmp_path: Path, pg_url: str,
                                         capsys: pytest.CaptureFixture) -> None:
    lite_path = tmp_path / "old.sqlite"
    lite = open_store(lite_path)
    ids = [add_run(lite, f"n{d}", f"2024-06-0{d}T00:00:00+00:00",
                   [make_result("fp32", seed=d), make_result("int8", seed=d, device="pi4")],
                   status="ok" if d != 2 else "partial") for d in range(1, 4)]
    assert main(["store", "copy", str(lite_path), pg_url]) == 0
    out = capsys.readouterr().out
    assert "3 runs" in out and "6 results" in out
    pg = open_store(pg_url)
    for rid in ids:
        assert pg.get_run(rid) == lite.get_run(rid)
    raw = "SELECT run_id, device, added_at, samples FROM results ORDER BY run_id, device"
    assert [tuple(r[i] for i in range(4)) for r in pg._read(raw)] == \
        [tuple(r[i] for i in range(4)) for r in lite._read(raw)]
    assert pg.history() == lite.history()
    # copying again adds nothing (runs already there are skipped, not duplicated)
    assert main(["store", "copy", str(lite_path), pg_url]) == 0
    assert "0 runs" in capsys.readouterr().out and len(pg.list_runs()) == 3
    assert len(pg.history()) == 6


def test_password_from_pgpassword_is_never_printed(pg_cluster: Any, pg_url: str,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    db = pg_url.rsplit("/", 1)[1]
    url = pg_cluster.url(db, user=pgserver.SECRET_USER)
    monkeypatch.setenv("PGPASSWORD", pgserver.SECRET_PASSWORD)
    monkeypatch.setenv("EDGE_BENCH_DB", url)
    assert main(["history"]) == 0  # the right password, from PGPASSWORD, via EDGE_BENCH_DB
    monkeypatch.setenv("PGPASSWORD", "wrong-" + pgserver.SECRET_PASSWORD)
    caplog.set_level("DEBUG")
    assert main(["history"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "password authentication failed" in err
    assert pgserver.SECRET_PASSWORD not in err and pgserver.SECRET_PASSWORD not in caplog.text
    # a password written into the URL itself is not echoed either
    monkeypatch.delenv("PGPASSWORD")
    inline = url.replace(f"{pgserver.SECRET_USER}@", f"{pgserver.SECRET_USER}:bad-{pgserver.SECRET_PASSWORD}@")
    assert main(["history", "--db", inline]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and pgserver.SECRET_PASSWORD not in err
    assert ":***@" in err


def test_bad_urls_are_one_line_exit_2(pg_cluster: Any, capsys: pytest.CaptureFixture) -> None:
    from sshd import free_port
    for url, words in [
        (f"postgresql://postgres@127.0.0.1:{free_port()}/x", "cannot connect"),
        (pg_cluster.url("no_such_database"), "no_such_database"),
        ("postgresql://postgres@127.0.0.1:notaport/x", "invalid integer value \"notaport\""),
    ]:
        assert main(["history", "--db", url]) == 2, url
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and words in err, err
        assert "Traceback" not in err


def test_store_error_names_the_redacted_url(pg_url: str) -> None:
    st = open_store(pg_url)
    with pytest.raises(StoreError, match="unknown run"):
        st.finish_run("no-such-run", "ok")
    assert os.environ.get("PGPASSWORD") is None or os.environ["PGPASSWORD"] not in str(st.path)


def test_history_site_from_postgresql(tmp_path: Path, pg_url: str) -> None:
    st = open_store(pg_url)
    for d in (1, 2):
        add_run(st, f"n{d}", f"2024-07-0{d}T00:00:00+00:00", [make_result("fp32", seed=d)])
    assert main(["report", "--site", str(tmp_path / "site"), "--db", pg_url]) == 0
    pages = list((tmp_path / "site").rglob("*.html"))
    assert pages and any("builtin:digits" in p.read_text(encoding="utf-8") for p in pages)
