"""The SQLite results store: roundtrip, migrations, crash safety, refs, history, threads."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from synth import fake_result
from edge_bench.cli import main
from edge_bench.errors import StoreError, UsageError
from edge_bench.results.document import validation_errors
from edge_bench.results.store import MIGRATIONS, SCHEMA_VERSION, Store, default_db_path


def make_result(variant: str = "fp32", threads: int = 1, median: float = 2.0, seed: int = 0,
                n: int = 300, device: str = "local", model: str = "builtin:digits") -> Dict[str, Any]:
    rng = np.random.default_rng(seed)
    s = median * np.exp(0.05 * rng.normal(size=n))
    r = fake_result(s, device=device, model=model, variant=variant, threads=threads,
                    model_sha256="ab" * 32, model_bytes=12345, init_ms=1.5,
                    first_inference_ms=3.25, peak_rss_mb=55.5,
                    accuracy={"top1": 0.97, "top1_ref": 0.975, "agreement_vs_ref": 0.99,
                              "max_abs_err": 0.01})
    r["device_info"].update(temp_c_before=41.5, temp_c_after=43.0)
    return r


def add_run(store: Store, label: str, started: str, results: Any = None, status: str = "finished") -> str:
    rid = store.begin_run({"label": label, "started_at": started, "argv": ["run", "--label", label],
                           "host": {"edge_bench": "0.1.0", "python": "3.11.2"}})
    for r in results if results is not None else [make_result()]:
        store.add_result(rid, r)
    store.finish_run(rid, status)
    return rid


def test_roundtrip_keeps_everything(tmp_path: Path) -> None:
    st = Store(tmp_path / "r.sqlite")
    r = make_result(variant="int8", threads=2, seed=3)
    r["median_ci_ms"] = [1.9, 2.1]
    r["cooldown_s"] = 2.0  # keys the store does not know are kept as well
    rid = st.begin_run({"run_id": "run-a", "label": "nightly", "started_at": "2024-05-01T00:00:00+00:00",
                        "host": {"edge_bench": "0.1.0", "python": "3.11.2"}, "argv": ["run"],
                        "config": "devices.yaml"})
    assert rid == "run-a"
    st.add_result(rid, r)
    st.finish_run(rid, "finished")
    doc = st.get_run("run-a")
    assert doc["schema"] == "edge-bench/run/1"
    assert doc["label"] == "nightly" and doc["status"] == "finished" and doc["finished_at"]
    assert doc["host"] == {"edge_bench": "0.1.0", "python": "3.11.2"}
    assert doc["argv"] == ["run"] and doc["config"] == "devices.yaml"
    (got,) = doc["results"]
    assert got["samples_ms"] == r["samples_ms"]  # raw samples bit-exact (float64)
    for k in ("device", "model", "variant", "threads", "status", "runtime", "device_info",
              "agent_version", "model_sha256", "model_bytes", "init_ms", "first_inference_ms",
              "warmup", "runs", "latency_ms", "peak_rss_mb", "accuracy", "median_ci_ms", "cooldown_s"):
        assert got[k] == r[k], k
    assert got["latency_ms"]["cov"] == r["latency_ms"]["cov"]
    assert got["device_info"]["temp_c_after"] == 43.0 and got["device_info"]["throttled"] is False
    assert validation_errors(doc) == []
    st.close()
    # WAL mode, one file
    con = sqlite3.connect(tmp_path / "r.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_error_result_and_missing_ci_is_computed(tmp_path: Path) -> None:
    st = Store(tmp_path / "r.sqlite")
    rid = st.begin_run({"label": None})
    st.add_result(rid, {"device": "pi4", "model": "m.tflite", "variant": "int4", "threads": 1,
                        "status": "error", "error": "Segfault in invoke()", "samples_ms": []})
    st.add_result(rid, make_result())
    doc = st.get_run(rid)
    assert doc["results"][0]["status"] == "error" and doc["results"][0]["samples_ms"] == []
    lo, hi = doc["results"][1]["median_ci_ms"]
    assert lo < doc["results"][1]["latency_ms"]["median"] < hi
    with pytest.raises(StoreError):
        st.add_result("no-such-run", make_result())


def test_default_path_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EDGE_BENCH_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "edge-bench" / "results.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_db_path() == tmp_path / "home" / ".local" / "share" / "edge-bench" / "results.sqlite"
    monkeypatch.setenv("EDGE_BENCH_DB", str(tmp_path / "x.sqlite"))
    st = Store()
    assert st.path == tmp_path / "x.sqlite" and st.path.exists()
    with pytest.raises(UsageError, match="no results store"):
        Store(tmp_path / "absent.sqlite", create=False)


def test_migrates_old_database_and_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(MIGRATIONS[0])
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO runs(run_id, label, started_at, status) VALUES ('old-1', 'v1', '2024-01-01', 'finished')")
    r = make_result()
    samples = np.asarray(r.pop("samples_ms"), "<f8").tobytes()
    con.execute("INSERT INTO results(run_id, device, model, variant, threads, status, median_ms,"
                " n_samples, added_at, doc, samples) VALUES ('old-1', 'local', 'builtin:digits', 'fp32',"
                " 1, 'ok', ?, 300, '2024-01-01', ?, ?)", (r["latency_ms"]["median"], json.dumps(r), samples))
    con.commit()
    con.close()
    st = Store(db)
    assert st.schema_version == SCHEMA_VERSION >= 2
    doc = st.get_run("v1")
    assert len(doc["results"][0]["samples_ms"]) == 300
    cols = [row[1] for row in sqlite3.connect(db).execute("PRAGMA table_info(results)")]
    assert "median_ci_lo" in cols
    st.add_result(doc["run_id"], make_result(seed=2))  # the migrated schema takes new results
    assert len(st.get_run("v1")["results"]) == 2


def test_accelerator_is_part_of_the_key_and_old_rows_ran_on_the_cpu(tmp_path: Path) -> None:
    """Schema 4: results stored before accelerators read back as `cpu`; history picks a key's
    rows per accelerator, so a GPU-only regression is compared with GPU rows."""
    db = tmp_path / "v3.sqlite"
    con = sqlite3.connect(db)
    for m in MIGRATIONS[:3]:
        con.executescript(m)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    con.execute("INSERT INTO runs(run_id, label, started_at, status) VALUES ('old-1', 'v3',"
                " '2024-01-01', 'finished')")
    r = make_result()
    con.execute("INSERT INTO results(run_id, device, model, variant, threads, status, median_ms,"
                " n_samples, added_at, doc) VALUES ('old-1', 'local', 'builtin:digits', 'fp32',"
                " 1, 'ok', 2.0, 0, '2024-01-01', ?)", (json.dumps(r),))
    con.commit()
    con.close()
    st = Store(db)
    gpu = dict(make_result(median=9.0, seed=3), accelerator="gpu",
               placement={"asked": "gpu", "ran": "gpu", "ops_placed": 2, "ops_total": 2,
                          "partitions": 1})
    st.add_result("old-1", gpu)
    both = st.history(model="builtin:digits")
    assert sorted(h["accelerator"] for h in both) == ["cpu", "gpu"]
    (only,) = st.history(model="builtin:digits", accelerator="gpu")
    assert only["median_ms"] == pytest.approx(gpu["latency_ms"]["median"])
    assert only["result"]["placement"]["ops_placed"] == 2
    (old,) = st.history(model="builtin:digits", accelerator="cpu")
    assert old["run_id"] == "old-1" and "accelerator" not in old["result"]


def test_newer_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    Store(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="upgrade edge-bench"):
        Store(db)
    assert main(["history", "--db", str(db)]) == 2


def test_not_a_database(tmp_path: Path) -> None:
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable"):
        Store(p)


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_store import make_result
    from edge_bench.results.store import Store
    st = Store({db!r})
    rid = st.begin_run({{"run_id": "killed-run", "label": "nightly"}})
    for i in range(3):
        st.add_result(rid, make_result(variant="v%d" % i, seed=i))
    # a 4th result is being prepared when the process dies: no close(), no finish_run()
    print("added", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_killed_run_keeps_finished_results(tmp_path: Path) -> None:
    db = tmp_path / "k.sqlite"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), db=str(db))
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert "added" in p.stdout
    st = Store(db)
    doc = st.get_run("killed-run")
    # its controller is gone: the run is marked abandoned (finished at its last result)
    assert doc["status"] == "abandoned" and doc["finished_at"] is not None
    assert [r["variant"] for r in doc["results"]] == ["v0", "v1", "v2"]
    for i, r in enumerate(doc["results"]):
        assert r["samples_ms"] == make_result(variant=f"v{i}", seed=i)["samples_ms"]


def test_refs_resolve(tmp_path: Path) -> None:
    st = Store(tmp_path / "r.sqlite")
    a = add_run(st, "nightly", "2024-05-01T00:00:00+00:00")
    b = add_run(st, "nightly", "2024-05-02T00:00:00+00:00")
    c = add_run(st, "experiment", "2024-05-03T00:00:00+00:00")
    assert st.resolve("last") == c
    assert st.resolve("last~0") == c
    assert st.resolve("last~1") == b
    assert st.resolve("last~2") == a
    assert st.resolve("nightly") == b  # a label is its newest run
    assert st.resolve(a) == a
    assert st.resolve(a[:-3]) == a or len({x[:-3] for x in (a, b, c)}) < 3
    assert st.resolve("last", exclude=c) == b  # `--baseline last` never picks the new run itself
    with pytest.raises(UsageError) as e:
        st.resolve("last~5")
    assert c in str(e.value) and "experiment" in str(e.value)  # lists recent runs
    with pytest.raises(UsageError, match="recent runs"):
        st.resolve("no-such-label")
    runs = st.list_runs(limit=2)
    assert [r["run_id"] for r in runs] == [c, b] and runs[0]["n_results"] == 1
    assert [r["run_id"] for r in st.list_runs(label="nightly")] == [b, a]
    empty = Store(tmp_path / "e.sqlite")
    with pytest.raises(UsageError, match="no runs yet"):
        empty.resolve("last")


def test_history_filters_and_last(tmp_path: Path) -> None:
    st = Store(tmp_path / "r.sqlite")
    ids = []
    for day in range(1, 7):
        ids.append(add_run(st, f"n{day}", f"2024-05-0{day}T00:00:00+00:00",
                           [make_result("fp32", median=2.0 + day / 100, seed=day),
                            make_result("int8", median=1.0, seed=day + 10),
                            make_result("fp32", device="pi4", seed=day + 20)]))
    rows = st.history(device="local", variant="fp32")
    assert [r["run_id"] for r in rows] == ids  # oldest first
    assert all(r["device"] == "local" and r["variant"] == "fp32" for r in rows)
    last3 = st.history(device="local", model="builtin:digits", variant="fp32", threads=1, last=3)
    assert [r["run_id"] for r in last3] == ids[-3:]
    r = last3[-1]
    assert r["ci_lo"] < r["median_ms"] < r["ci_hi"] and r["n_samples"] == 300
    assert r["result"]["samples_ms"] == []  # samples only on request
    assert len(st.history(last=2)) == 6
    assert st.history(device="nope") == []


def test_threads_share_a_store(tmp_path: Path) -> None:
    st = Store(tmp_path / "t.sqlite")
    rid = st.begin_run({"label": "fleet"})
    errors = []

    def device(name: str) -> None:
        try:
            for i in range(15):
                st.add_result(rid, make_result(device=name, variant=f"v{i}", seed=i, n=50))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=device, args=(f"dev{j}",)) for j in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert len(st.get_run(rid)["results"]) == 60


def test_history_command_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "h.sqlite"
    st = Store(db)
    for day in range(1, 4):
        add_run(st, f"n{day}", f"2024-05-0{day}T00:00:00+00:00",
                [make_result("fp32", median=2.0 + day / 10, seed=day), make_result("int8", seed=day)])
    st.close()
    out_csv = tmp_path / "h.csv"
    assert main(["history", "--db", str(db), "--variant", "fp32", "--last", "2", "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "trend per key" in out and "n3" in out and "n1" not in out
    import csv
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["label"] for r in rows] == ["n2", "n3"]
    assert float(rows[-1]["median_ms"]) > 0 and rows[-1]["variant"] == "fp32"
    assert main(["history", "--db", str(db)]) == 0
    assert "runs (newest first)" in capsys.readouterr().out
    assert main(["history", "--db", str(tmp_path / "none.sqlite")]) == 2
