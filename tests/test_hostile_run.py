"""`edge-bench run` with hostile outputs and inputs (issue 16): refused before any work, with one
line; never a traceback after the benchmark."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_hostile_config import one_clean_line
from test_run_local import edge_bench

FAST = ["--model", "builtin:digits", "--variants", "fp32", "--runs", "3", "--warmup", "0",
        "--min-seconds", "0", "--processes", "1"]


@pytest.mark.parametrize("flag,where", [
    ("--json", "blocker/out.json"),      # its parent is a regular file
    ("--json", "adir"),                  # a directory
    ("--db", "blocker/r.sqlite"),
])
def test_unwritable_outputs_fail_before_any_work(tmp_path: Path, flag: str, where: str) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory\n")
    (tmp_path / "adir").mkdir()
    extra = [] if flag == "--db" else ["--no-store"]
    p = edge_bench(["run", *FAST, *extra, flag, str(tmp_path / where)], tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    one_clean_line(p)
    assert str(tmp_path / where) in p.stderr
    assert "result device=" not in p.stdout        # no result row: refused before the benchmark
    assert not list((tmp_path / "home").glob(".cache/edge-bench/*"))   # nothing pushed to local


def test_truncated_and_unreadable_models_are_errors_not_tracebacks(tmp_path: Path) -> None:
    from test_run_local import REPO
    good = (REPO / "host" / "models" / "builtin" / "data" / "digits.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(good[:len(good) // 2])
    p = edge_bench(["run", "--no-store", "--model", str(cut), "--variants",
                    "fp32,fp16,dynamic-int8", *FAST[4:]], tmp_path)
    # a .tflite is read at plan time (its float baseline, issue 11): a truncated file is refused
    # before any work, with one line naming it
    assert p.returncode == 2, p.stdout + p.stderr
    one_clean_line(p)
    assert "cut.tflite" in p.stderr and "flatbuffer cannot be read" in p.stderr
    # a model file that cannot be read (EIO here; EACCES for a normal user's unreadable file)
    p = edge_bench(["run", "--no-store", "--model", "/proc/self/mem", *FAST[2:]], tmp_path)
    assert p.returncode == 2
    one_clean_line(p)
    assert "/proc/self/mem cannot be read" in p.stderr


def test_non_utf8_paths_are_refused_before_any_work(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    from test_run_local import REPO
    name = os.fsdecode(b"m\xff.tflite")
    (tmp_path / name).write_bytes((REPO / "host" / "models" / "builtin" / "data" /
                                   "digits.tflite").read_bytes())
    env = dict(os.environ, HOME=str(tmp_path / "home"), EDGE_BENCH_CACHE=str(tmp_path / "c"))
    p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--model", name,
                        "--db", str(tmp_path / "r.sqlite"), *FAST[2:]],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    one_clean_line(p)
    assert "not valid UTF-8" in p.stderr
    assert not (tmp_path / "r.sqlite").exists()             # no run recorded as ok with 0 results


def test_binary_file_given_to_compare_is_one_line(tmp_path: Path) -> None:
    import os
    f = tmp_path / "bin.json"
    f.write_bytes(os.urandom(2000) + b"\xff\xfe")
    p = edge_bench(["compare", str(f), str(f)], tmp_path)
    assert p.returncode == 2
    one_clean_line(p)
    assert str(f) in p.stderr


@pytest.mark.parametrize("how", ["read-only role", "read-only database"])
def test_unwritable_postgresql_store_fails_before_any_work(tmp_path: Path, pg_cluster: object,
                                                           pg_url: str, how: str) -> None:
    """A PostgreSQL store this login may read but not write (a role granted SELECT only, or a
    database whose transactions are read-only, as on a standby) fails before the benchmark,
    like an unwritable SQLite file: one line, exit 2, nothing run."""
    from edge_bench.results.backend import open_store
    open_store(pg_url).close()                      # the store exists, with its schema
    db = pg_url.rsplit("/", 1)[1]
    url = pg_url
    if how == "read-only role":
        role = "eb_reader_" + db[-6:]
        pg_cluster.sql(f"CREATE ROLE {role} LOGIN")                          # type: ignore[attr-defined]
        # it may create in the schema (so opening the store, CREATE TABLE IF NOT EXISTS, works)
        # but only read the tables: the store's own write check must catch it
        pg_cluster.sql(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}", db=db)  # type: ignore[attr-defined]
        pg_cluster.sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}", db=db)  # type: ignore[attr-defined]
        url = pg_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    else:
        pg_cluster.sql(f'ALTER DATABASE "{db}" SET default_transaction_read_only = on')  # type: ignore[attr-defined]
    p = edge_bench(["run", *FAST, "--db", url], tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    one_clean_line(p)
    assert "results store" in p.stderr and db in p.stderr
    assert "result device=" not in p.stdout        # refused before the benchmark
    assert not list((tmp_path / "home").glob(".cache/edge-bench/*"))   # nothing pushed to local
