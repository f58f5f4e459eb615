"""The nightly regression workflow end to end: the real `edge-bench` CLI, the real agent, real
LiteRT on the `local` device, a real SQLite store.

* two runs of the same model, the second with `--baseline base --fail-on-regression`: exit 0;
* a candidate that really does more work (same model path, the file swapped for a version with
  extra depthwise layers, so every invoke() is slower): exit 1, verdict `slower`, and the changed
  model bytes are shown as an environment difference;
* a run killed with SIGKILL keeps the results that had finished, and `history` shows them;
* `report RUN --html/--csv` on a real run and `history --csv`.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from cli import cli_env as _env, edge_bench  # noqa: F401 (used here and by others)

# exclusive: it compares the speed of two runs; no other test runs beside it (conftest.py)
pytestmark = pytest.mark.exclusive

REPO = Path(__file__).resolve().parents[1]


def _build_model(extra: int) -> bytes:
    """The detector benchmark's model builder (MobileNet-style + `extra` depthwise layers)."""
    spec = importlib.util.spec_from_file_location("bench_detector", REPO / "benchmarks" / "bench_detector.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.build_model(extra)


#: extra depthwise layers of the "slower" model: about 3x the work of the base model. A real
#: regression must stand well clear of this shared machine's noise: the same model has differed
#: by up to 28% (p25) between two runs a minute apart, single worker processes by up to 64%
#: (2026-12-02), and a 25-layer model (~1.55x) was once judged inconclusive (full run 19).
SLOWER_EXTRA = 100

# Enough timed work per run that the median is stable on a shared 2-core box: >= 2 s of
# samples (thousands of invokes of a ~0.4 ms model), as a nightly job would use.
# --lock-wait: `local` is one device for the whole machine; queue behind any other benchmark on it.
TIMING = ["--variants", "fp32", "--threads", "1", "--runs", "200", "--warmup", "20",
          "--min-seconds", "2", "--lock-wait", "600"]


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """Two stored runs of builtin:mobilenet: `base`, then `cand --baseline base --fail-on-regression`."""
    tmp = tmp_path_factory.mktemp("nightly")
    db = tmp / "results.sqlite"
    base = edge_bench(["run", "--model", "builtin:mobilenet", *TIMING, "--db", str(db),
                       "--label", "base"], tmp)
    assert base.returncode == 0, base.stderr + base.stdout
    cand = edge_bench(["run", "--model", "builtin:mobilenet", *TIMING, "--db", str(db),
                       "--label", "cand", "--baseline", "base", "--fail-on-regression",
                       "--allow-inconclusive", "--json", str(tmp / "cand.json")], tmp)
    return {"tmp": tmp, "db": db, "base": base, "cand": cand}


def test_same_model_twice_is_not_a_regression(nightly: Dict[str, Any]) -> None:
    """No false alarm: the same model twice is never `slower`. On a loaded machine (CI, other
    tests in parallel) the two runs' processes can disagree by more than the 5% threshold; the
    honest verdict then is `inconclusive`, which --allow-inconclusive lets pass (without it the
    gate fails, as issue 16 asks: tested in test_hostile_compare)."""
    p = nightly["cand"]
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no regression" in p.stdout
    assert "builtin:mobilenet" in p.stdout
    # and `compare` on the stored runs agrees (a slowdown the run measured again and did not
    # see again is inconclusive here too), with a row per key and no environment difference
    c = edge_bench(["compare", "base", "cand", "--db", str(nightly["db"]), "--json", "-",
                    "--fail-on-regression", "--allow-inconclusive"], nightly["tmp"])
    assert c.returncode == 0, c.stdout + c.stderr
    cmp = json.loads(c.stdout)
    (row,) = cmp["rows"]
    assert row["verdict"] in ("same", "faster", "inconclusive"), row
    assert not row["regression"]
    assert row["mismatches"] == []
    assert row["n_base"] >= 200 and row["n_cand"] >= 200
    assert row["ci_lo"] <= row["ratio"] <= row["ci_hi"]


def test_slower_model_fails_the_nightly(tmp_path: Path) -> None:
    """Same --model path, different bytes: a model that does about 3x the work per invoke."""
    db = tmp_path / "results.sqlite"
    model = tmp_path / "net.tflite"
    model.write_bytes(_build_model(0))
    p = edge_bench(["run", "--model", str(model), *TIMING, "--db", str(db), "--label", "base"], tmp_path)
    assert p.returncode == 0, p.stderr + p.stdout
    model.write_bytes(_build_model(SLOWER_EXTRA))
    p = edge_bench(["run", "--model", str(model), *TIMING, "--db", str(db), "--label", "cand",
                    "--baseline", "base", "--fail-on-regression",
                    "--json", str(tmp_path / "cand.json")], tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "REGRESSION" in p.stdout and "slower" in p.stdout
    # --json is written after the confirmation: it carries the same re-measurement as the store
    doc = json.loads((tmp_path / "cand.json").read_text())
    from edge_bench.results.store import Store
    with Store(db) as st:
        stored = st.get_run(doc["run_id"], samples=False)
    assert len(doc["confirmations"]) == 1 and doc["confirmations"] == stored["confirmations"]
    assert "model_sha256" in p.stdout  # the changed file is shown, not silently compared
    # timed again before failing, and the re-measurement confirmed it (else: inconclusive)
    assert "1 key(s) slower than the baseline: timing again to confirm" in p.stdout
    assert "--fail-on-regression: a regression" in p.stderr and "inconclusive" not in p.stderr
    # without --fail-on-regression the verdict is printed but the exit code stays 0
    c = edge_bench(["compare", "base", "cand", "--db", str(db), "--json", "-"], tmp_path)
    assert c.returncode == 0, c.stderr
    (row,) = json.loads(c.stdout)["rows"]
    assert row["verdict"] == "slower" and row["regression"] is True
    # past the regression threshold; not a fixed size of the slowdown (a CPU-dependent number:
    # a 25-layer model measured 1.17x to 1.5x here, by what else the machine did)
    from edge_bench.analysis.verdict import DEFAULT_THRESHOLD
    assert row["ratio"] > 1 + DEFAULT_THRESHOLD and row["ci_lo"] > 1.0 and row["p_value"] < 0.01
    assert [m["field"] for m in row["mismatches"]] == ["model_sha256"]
    c = edge_bench(["compare", "base", "cand", "--db", str(db), "--fail-on-regression",
                    "--markdown", str(tmp_path / "cmp.md")], tmp_path)
    assert c.returncode == 1
    md = (tmp_path / "cmp.md").read_text()
    assert "| slower" in md.replace("🔴 ", "") and "model_sha256" in md


def test_a_slowdown_not_seen_again_is_inconclusive_not_a_regression(tmp_path: Path) -> None:
    """--fail-on-regression times a key judged slower once more before failing. A slow spell of
    a shared machine (another tenant, a frequency drop) that lasts the whole candidate run is
    not reproducible on purpose here: busy or memory-streaming processes do not move the fast
    quartile the verdict is decided on (measured: `same`). So the spell is played by the model:
    the candidate run times the slower model (the `slower` test's file), and the original file
    is put back the moment edge-bench prints that it times the key again (read as it is
    printed). First measurement slower, second not: `inconclusive`, not a regression; with
    --allow-inconclusive the nightly passes. With --no-confirm the same run is a regression.
    --threshold 50%: the slower model (100 extra layers) is about 3x slower; the same model in
    two runs a minute apart has differed by up to 28% (p25) on the shared 2-core test machine
    (2026-12-01), and a 25-layer model (about 1.55x) by as little as 22%."""
    db = tmp_path / "results.sqlite"
    model = tmp_path / "net.tflite"
    fast, slow = _build_model(0), _build_model(SLOWER_EXTRA)
    model.write_bytes(fast)
    p = edge_bench(["run", "--model", str(model), *TIMING, "--db", str(db), "--label", "base"],
                   tmp_path)
    assert p.returncode == 0, p.stderr + p.stdout
    # (without --allow-inconclusive the inconclusive key fails the gate: test_confirm.py,
    # test_hostile_compare.py)
    for flag in ("--allow-inconclusive", "--no-confirm"):
        model.write_bytes(slow)
        cmd = [sys.executable, "-m", "edge_bench.cli", "run", "--model", str(model), *TIMING,
               "--threshold", "0.5", "--db", str(db), "--label", f"cand{flag}", "--baseline", "base",
               "--fail-on-regression", *([flag] if flag else [])]
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=_env(tmp_path), cwd=str(tmp_path))
        lines = []
        assert run.stdout is not None and run.stderr is not None
        for line in run.stdout:
            lines.append(line)
            if "timing again to confirm" in line:    # the spell is over (atomic swap)
                (tmp_path / "fast.tflite").write_bytes(fast)
                os.replace(tmp_path / "fast.tflite", model)
        err = run.stderr.read()
        rc = run.wait(timeout=600)
        out = "".join(lines)
        if flag == "--no-confirm":
            assert "timing again" not in out, out
            assert rc == 1 and "--fail-on-regression: a regression" in err, out + err
            assert re.search(r"net\.tflite\s+fp32\s.*\bslower\b", out), out
            continue
        assert "1 key(s) slower than the baseline: timing again to confirm" in out, out + err
        assert re.search(r"net\.tflite\s+fp32\s.*\binconclusive\b", out), out + err
        assert "a regression" not in err, err
        assert rc == 0, out + err
    # `compare` of the stored runs gives the verdicts `run` gave: the re-measurement is kept
    # with the run (its `confirmations`); the run made with --no-confirm has none
    for label, verdict in (("cand--allow-inconclusive", "inconclusive"),
                           ("cand--no-confirm", "slower")):
        c = edge_bench(["compare", "base", label, "--db", str(db), "--threshold", "0.5",
                        "--json", "-"], tmp_path)
        assert c.returncode == 0, c.stdout + c.stderr
        (row,) = json.loads(c.stdout)["rows"]
        assert row["verdict"] == verdict, (label, row)
        if verdict == "inconclusive":
            assert "not in a re-measurement" in row["notes"][0], row
    # against another baseline the re-measurement says nothing: the stored run is judged alone
    c = edge_bench(["compare", "cand--no-confirm", "cand--allow-inconclusive", "--db", str(db),
                    "--json", "-"], tmp_path)
    (row,) = json.loads(c.stdout)["rows"]
    assert "confirmation" not in row, row


def _stored(db: Path, label: str) -> int:
    """Results stored so far for the run labelled `label` (read-only, while it is written)."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT count(*) FROM results r JOIN runs u ON u.run_id = r.run_id"
                              " WHERE u.label = ?", (label,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return int(row[0])


def test_killed_run_keeps_finished_results(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    cmd = [sys.executable, "-m", "edge_bench.cli", "run", "--model", "builtin:digits",
           "--model", "builtin:mobilenet", "--variants", "fp32", "--threads", "1,2",
           "--runs", "20", "--min-seconds", "3", "--db", str(db), "--label", "killed", "--quiet",
           "--lock-wait", "600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=_env(tmp_path), cwd=str(tmp_path), start_new_session=True)
    n = 0
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            n = _stored(db, "killed")
            if n >= 1:
                break
            time.sleep(0.05)
        assert n >= 1, f"no result stored before the run ended (rc={proc.poll()})"
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)  # the controller dies mid-run: no cleanup code runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        try:  # its agent and timing workers were left behind: end them too
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    from edge_bench.results.store import Store
    with Store(db, create=False) as st:
        doc = st.get_run("killed")
    kept = doc["results"]
    assert 1 <= len(kept) < 4, [r["model"] for r in kept]
    for r in kept:
        assert r["status"] == "ok"
        assert len(r["samples_ms"]) >= 20  # raw samples survived the kill
    con = sqlite3.connect(str(db))
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()

    h = edge_bench(["history", "--db", str(db)], tmp_path)
    assert h.returncode == 0, h.stderr
    assert doc["run_id"] in h.stdout and "killed" in h.stdout
    assert kept[0]["model"] in h.stdout
    h = edge_bench(["history", "--db", str(db), "--csv", "-"], tmp_path)
    assert h.returncode == 0, h.stderr
    rows = list(csv.DictReader(h.stdout.splitlines()))
    assert len(rows) == len(kept) and {r["run_id"] for r in rows} == {doc["run_id"]}


def test_report_html_and_csv_of_a_real_run(nightly: Dict[str, Any]) -> None:
    tmp, db = nightly["tmp"], nightly["db"]
    html_path, csv_path = tmp / "report.html", tmp / "run.csv"
    p = edge_bench(["report", "cand", "--db", str(db), "--html", str(html_path), "--csv", str(csv_path)], tmp)
    assert p.returncode == 0, p.stderr
    page = html_path.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "builtin:mobilenet" in page and "<svg" in page
    low = page.lower()
    for ref in ("<script", "src=\"http", "href=\"http", "@import", "url(http"):
        assert ref not in low, f"the report must be self-contained ({ref!r} found)"
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert len(rows) == 1
    r = rows[0]
    assert r["label"] == "cand" and r["model"] == "builtin:mobilenet" and r["variant"] == "fp32"
    assert r["status"] == "ok" and float(r["median_ms"]) > 0 and int(r["runs"]) >= 200
    assert float(r["median_ci_lo_ms"]) <= float(r["median_ms"]) <= float(r["median_ci_hi_ms"])
    # the --json document of the same run exports the same row
    p = edge_bench(["report", str(tmp / "cand.json"), "--csv", "-"], tmp)
    assert p.returncode == 0, p.stderr
    (r2,) = list(csv.DictReader(p.stdout.splitlines()))
    assert r2["run_id"] == r["run_id"] and r2["median_ms"] == r["median_ms"]


def test_history_csv_has_every_stored_run(nightly: Dict[str, Any]) -> None:
    tmp, db = nightly["tmp"], nightly["db"]
    out = tmp / "history.csv"
    p = edge_bench(["history", "--db", str(db), "--model", "builtin:mobilenet", "--csv", str(out)], tmp)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert sorted(r["label"] for r in rows) == ["base", "cand"]
    assert all(r["model"] == "builtin:mobilenet" and float(r["median_ms"]) > 0 for r in rows)
    assert "base" in p.stdout and "cand" in p.stdout  # the table is still printed


def test_first_night_has_no_baseline_and_passes(tmp_path: Path) -> None:
    """The nightly recipe on an empty store: nothing to compare with is not a failure; an
    unknown label still is a usage error."""
    db = tmp_path / "results.sqlite"
    args = ["run", "--model", "builtin:digits", "--variants", "fp32", "--runs", "5",
            "--min-seconds", "0", "--db", str(db), "--fail-on-regression", "--lock-wait", "600",
            "--allow-inconclusive"]   # 5 samples a side cannot decide a verdict (issue 16)
    p = edge_bench(args + ["--label", "nightly-1", "--baseline", "last"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no baseline yet" in p.stdout
    p = edge_bench(args + ["--label", "nightly-2", "--baseline", "last"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "nightly-1" in p.stdout and "no regression" in p.stdout
    p = edge_bench(args + ["--label", "nightly-3", "--baseline", "no-such-label"], tmp_path)
    assert p.returncode == 2 and "no run `no-such-label`" in p.stderr
    # refused before benchmarking: no run was started in the store
    from edge_bench.results.store import Store
    with Store(db) as st:
        assert [r["label"] for r in st.list_runs()] == ["nightly-2", "nightly-1"]
