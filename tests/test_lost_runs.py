"""Issue 25 item 7, runs lost or stuck in the store: a `store copy` taken while a run is still
being made, and a controller whose clock is a year ahead. Real stores (SQLite files, a real
PostgreSQL server), the real CLI."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from test_store import add_run, make_result
from edge_bench.cli import main
from edge_bench.results.backend import open_store


def test_store_copy_during_a_run_then_again_completes_it(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """A copy taken while a run has 2 of its 4 results must not freeze it in the destination:
    the next copy (after the run finished) brings the run whole, with its final status."""
    src_path, dst_path = tmp_path / "src.sqlite", tmp_path / "dst.sqlite"
    src = open_store(src_path)
    done = add_run(src, "before", "2024-06-01T00:00:00+00:00", [make_result("fp32", seed=1)],
                   status="ok")
    rid = src.begin_run({"label": "live", "argv": ["run"], "host": {}})
    for seed in (2, 3):
        src.add_result(rid, make_result("fp32", seed=seed, threads=seed))
    assert main(["store", "copy", str(src_path), str(dst_path)]) == 0
    out = capsys.readouterr().out
    assert "still running" in out and rid in out, out
    dst = open_store(dst_path)
    assert dst.get_run(done) == src.get_run(done)
    for seed in (4, 5):
        src.add_result(rid, make_result("fp32", seed=seed, threads=seed))
    src.finish_run(rid, "ok")
    assert main(["store", "copy", str(src_path), str(dst_path)]) == 0
    out = capsys.readouterr().out
    assert "1 runs (4 results)" in out and "1 runs were already there" in out, out
    got = dst.get_run(rid)
    assert got["status"] == "ok" and len(got["results"]) == 4
    assert got == src.get_run(rid)
    assert dst.resolve("last") == rid


def test_a_run_frozen_by_an_older_copy_is_completed_by_the_next(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """A destination that an older version left with the run `abandoned` and 2 of 4 results
    (the copy was taken mid-run) is brought up to date by the next copy."""
    src_path, dst_path = tmp_path / "src.sqlite", tmp_path / "dst.sqlite"
    src, dst = open_store(src_path), open_store(dst_path)
    rid = add_run(src, "live", "2024-06-02T00:00:00+00:00",
                  [make_result("fp32", seed=s, threads=s) for s in (1, 2, 3, 4)], status="ok")
    frozen = src.get_run(rid)
    dst.begin_run({k: frozen[k] for k in ("run_id", "label", "started_at", "argv", "host")})
    for r in frozen["results"][:2]:
        dst.add_result(rid, r)
    dst.finish_run(rid, "abandoned")
    assert main(["store", "copy", str(src_path), str(dst_path)]) == 0
    out = capsys.readouterr().out
    assert "1 runs (4 results)" in out and "already there" not in out, out
    assert dst.get_run(rid)["status"] == "ok" and len(dst.get_run(rid)["results"]) == 4
    # a complete run in the destination is never touched again
    assert main(["store", "copy", str(src_path), str(dst_path)]) == 0
    assert "0 runs" in capsys.readouterr().out


def _future(days: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).isoformat(timespec="seconds")


def _wrong_clock(store: Any) -> None:
    """Three runs; the middle one from a controller whose clock is 365 days ahead."""
    a = add_run(store, "nightly", _future(0), status="ok")
    skewed = add_run(store, "nightly", _future(365), status="ok")
    b = add_run(store, "nightly", _future(0), status="ok")
    c = add_run(store, "exp", _future(0), status="ok")
    # `last` is the run stored last, whatever its controller's clock said
    assert store.resolve("last") == c
    assert store.resolve("last~1") == b and store.resolve("last~2") == skewed
    assert store.resolve("nightly") == b
    assert store.resolve("last", exclude=c) == b
    assert [r["run_id"] for r in store.list_runs(limit=2)] == [c, b]
    assert {r["run_id"] for r in store.history(last=2)} == {b, c}
    assert a in {r["run_id"] for r in store.history()}


def test_a_wrong_clock_does_not_make_its_run_last_sqlite(tmp_path: Path) -> None:
    _wrong_clock(open_store(tmp_path / "r.sqlite"))


def test_a_wrong_clock_does_not_make_its_run_last_postgresql(pg_url: str) -> None:
    _wrong_clock(open_store(pg_url))


def test_store_copy_keeps_the_order_runs_were_stored_in(tmp_path: Path) -> None:
    """A copy does not re-sort by the controllers' clocks: `last` is the same on both sides."""
    src_path, dst_path = tmp_path / "src.sqlite", tmp_path / "dst.sqlite"
    src = open_store(src_path)
    add_run(src, "skewed", _future(365), status="ok")
    rid = add_run(src, "sane", _future(0), status="ok")
    assert main(["store", "copy", str(src_path), str(dst_path)]) == 0
    assert open_store(dst_path).resolve("last") == src.resolve("last") == rid


def _local_lab(tmp: Path) -> Path:
    cfg = tmp / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n"
                   f"    workdir: {tmp / 'work'}\n")
    return cfg


def _submit(tmp: Path, pg_url: str, cfg: Path) -> str:
    import team
    s = team.main(["submit", "--config", str(cfg), "--devices", "box", *team.FAST], pg_url)
    assert s.returncode == 0, s.stdout + s.stderr
    return s.stdout.split()[0]


def test_worker_once_gives_its_run_a_final_status(tmp_path: Path, pg_url: str) -> None:
    """`worker --once` runs the queue empty and exits; the run it ran is `ok`, not `running`."""
    import team
    cfg = _local_lab(tmp_path)
    rid = _submit(tmp_path, pg_url, cfg)
    w = team.cli(["worker", "--lab", "default", "--config", str(cfg), "--once"], tmp_path, pg_url)
    assert w.returncode == 0, w.stdout + w.stderr
    assert [r[4] for r in team.results(pg_url, rid)] == ["ok"]
    assert team.run_status(pg_url, rid) == "ok"


def test_cancel_last_right_after_a_submit_cancels_it(tmp_path: Path, pg_url: str) -> None:
    """`cancel last` names the run just submitted (queued, so not complete), not the newest
    complete one; a run with nothing left to cancel is said so, exit 2."""
    import team
    from edge_bench.results.pg import PgStore
    with PgStore(pg_url) as st:
        done = add_run(st, "nightly", _future(0), status="ok")
    rid = _submit(tmp_path, pg_url, _local_lab(tmp_path))
    c = team.main(["cancel", "last"], pg_url)
    assert c.returncode == 0 and f"run {rid}: 1 waiting jobs cancelled" in c.stdout, \
        c.stdout + c.stderr
    assert team.run_status(pg_url, rid) == "cancelled"
    for ref, status in (("last", "cancelled"), (done, "ok")):
        c = team.main(["cancel", ref], pg_url)
        assert c.returncode == 2, c.stdout + c.stderr
        err = c.stderr.strip()
        assert len(err.splitlines()) <= 2 and "nothing to cancel" in err and status in err, err
    assert team.run_status(pg_url, done) == "ok"
