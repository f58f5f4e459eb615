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
    assert "local" not in p.stdout                 # no result row: refused before the benchmark
    assert not list((tmp_path / "home").glob(".cache/edge-bench/*"))   # nothing pushed to local
