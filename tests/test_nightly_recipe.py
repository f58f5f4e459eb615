"""The README's nightly recipe (issue 27): `run --baseline last --fail-on-regression` twice back
to back on a quiet machine exits 0 (keys it cannot judge warn, they do not fail), the line that
decides the exit code says which outcome decided it, and the history site agrees with
`compare` on every key of the pair. A real regression still fails: tests/test_regression_e2e.py
(`test_slower_model_fails_the_nightly`)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from edge_bench.analysis.gate import gate, gate_line

from cli import edge_bench as _edge_bench


def edge_bench(args: List[str], tmp: Path) -> "subprocess.CompletedProcess[str]":
    return _edge_bench(args, tmp, timeout=900)


@pytest.mark.parametrize("cmp, fail_reg, strict, failed, code, line", [
    ({"regressed": True, "inconclusive": 1}, True, False, 0, 1,
     "exit 1: --fail-on-regression: a regression"),
    ({"inconclusive": 2}, True, False, 0, 0,
     "exit 0: no regression; warning: 2 inconclusive key(s) not judged"),
    ({"inconclusive": 2}, True, True, 0, 1,
     "exit 1: --fail-on-inconclusive: 2 inconclusive key(s) (no regression found)"),
    ({"no_baseline": 1}, False, False, 0, 0,
     "exit 0: not gated (no --fail-on-regression); warning: 1 key(s) missing from the baseline"),
    ({}, True, False, 0, 0, "exit 0: no regression"),
    ({"inconclusive": 1}, True, False, 2, 0,
     "exit 3: 2 result(s) failed; the comparison found no regression; warning: 1 inconclusive"),
])
def test_the_line_names_what_decided_the_exit_code(cmp: Dict[str, Any], fail_reg: bool,
                                                   strict: bool, failed: int, code: int,
                                                   line: str) -> None:
    assert gate(cmp, fail_reg, strict)["code"] == code
    assert gate_line(cmp, fail_reg, strict, failed).startswith(line)


@pytest.mark.exclusive
def test_the_nightly_line_twice_back_to_back_exits_0_and_the_site_agrees(tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite")
    # README "Nightly": edge-bench run --label nightly-... --baseline last --fail-on-regression
    # (on `local`, with the default models and variants)
    outs = []
    for night in ("nightly-1", "nightly-2"):
        p = edge_bench(["run", "--label", night, "--baseline", "last", "--fail-on-regression",
                        "--db", db, "--lock-wait", "600"], tmp_path)
        outs.append(p)
        assert p.returncode == 0, p.stdout + p.stderr
    assert "no baseline yet" in outs[0].stdout
    second = outs[1]
    # the last line on stderr names what decided the exit code
    last = [ln for ln in second.stderr.splitlines() if ln.startswith("edge-bench: exit ")]
    assert len(last) == 1 and last[0].startswith("edge-bench: exit 0: no regression"), second.stderr
    c = edge_bench(["compare", "last~1", "last", "--db", db, "--json", "-"], tmp_path)
    assert c.returncode == 0, c.stderr
    cmp = json.loads(c.stdout)
    assert len(cmp["rows"]) == 4 and not cmp["regressed"]
    if cmp["inconclusive"]:
        assert f"warning: {cmp['inconclusive']} inconclusive key(s) not judged" in last[0]
    s = edge_bench(["report", "--site", str(tmp_path / "site"), "--db", db], tmp_path)
    assert s.returncode == 0, s.stderr
    pairs = json.loads((tmp_path / "site" / "verdicts.json").read_text())["pairs"]
    site = {tuple(pid.split("|")[2:5]): v["verdict"] for pid in pairs for v in [pairs[pid]]}
    assert len(site) == 4
    for row in cmp["rows"]:
        assert site[(row["device"], row["model"], row["variant"])] == row["verdict"], (row, site)
