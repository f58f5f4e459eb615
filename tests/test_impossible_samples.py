"""Issue 25 item 4: a device that reports no samples, or impossible ones (NaN, negative, zero
latencies), never yields an `ok` result, and a key with nothing measured is never judged `same`.

The device is the real agent under a hostile interpreter: `python:` is a wrapper that runs the
real one and rewrites the `samples_ns` of every `result` line it prints (as a broken runtime, a
bad clock or a tampered agent on the board would)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from edge_bench.analysis.gate import gate_failures
from edge_bench.analysis.verdict import compare_results
from liar import lying_fleet
from test_run_local import edge_bench

FAST = ["--model", "builtin:digits", "--variants", "fp32", "--runs", "3", "--warmup", "0",
        "--min-seconds", "0", "--processes", "1"]

CASES = {"none": "[]", "nan": "[float('nan')] * 3", "negative": "[-1000, 2000, 3000]",
         "zero": "[0, 0, 0]", "text": "['fast'] * 3", "infinite": "[float('inf')] * 3"}


def _fleet(tmp_path: Path, samples: str) -> Path:
    return lying_fleet(tmp_path, f"msg['samples_ns'] = {samples}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_impossible_samples_are_an_error_row_not_ok(tmp_path: Path, case: str) -> None:
    out = tmp_path / "out.json"
    db = tmp_path / "store.db"
    p = edge_bench(["run", "--config", str(_fleet(tmp_path, CASES[case])), "--devices", "box",
                    *FAST, "--db", str(db), "--json", str(out)], tmp_path)
    assert p.returncode == 3, p.stdout + p.stderr          # a failed result, not a pass
    assert "Traceback" not in p.stderr
    (r,) = json.loads(out.read_text())["results"]
    assert r["status"] == "error" and r["error_detail"]["type"] == "BadSamples", r
    assert "latency sample" in r["error"]
    assert "nanx" not in p.stdout and "-0.00" not in p.stdout and " ms" not in p.stdout
    h = edge_bench(["history", "--db", str(db)], tmp_path)
    assert h.returncode == 0 and "Traceback" not in h.stderr


def _result(samples: List[float]) -> Dict[str, Any]:
    return {"device": "box", "model": "m", "variant": "fp32", "threads": 1, "status": "ok",
            "samples_ms": samples, "process_runs": [len(samples)],
            "latency_ms": {"median": float(samples[len(samples) // 2]) if samples else None}}


@pytest.mark.parametrize("cand", [[], [float("nan")] * 5, [-1.0] * 5, [0.0] * 5])
def test_a_key_with_nothing_measured_is_never_same(cand: List[float]) -> None:
    """A candidate stored as ok with no (or only impossible) samples, as an older store or a
    results file may hold: an error that fails the gate (even without --fail-on-inconclusive),
    never `same` or a mere warning."""
    row = compare_results(_result([1.0, 1.1, 0.9, 1.0, 1.05] * 4), _result(cand))
    assert row["verdict"] == "error" and row["regression"], row
    cmp = {"rows": [row], "regressed": True}
    assert gate_failures(cmp)


@pytest.mark.parametrize("avg", ["0", "-105784", "nan"])
def test_benchmark_model_summary_of_impossible_latency_is_an_error(tmp_path: Path,
                                                                  avg: str) -> None:
    """benchmark_model prints a summary, not samples: an impossible one is an error row too."""
    from edge_bench.fleet import benchmark_model as bm
    from test_benchmark_model import DATA, _task
    text = (DATA / "linux_arm64_mobilenet_quant_cpu.txt").read_text()
    text = text.replace("Inference (avg): 105784", f"Inference (avg): {avg}")
    text = text.replace("avg=105784", f"avg={avg}").replace("median=105718", f"median={avg}")
    m = tmp_path / "m.tflite"
    m.write_bytes(b"\0" * 64)
    rec = bm.result_record("pi", _task(m), bm.parse_output(text))
    assert rec["status"] == "error", rec["latency_ms"]
    assert rec["error_detail"]["type"] in ("BadSamples", "NoTimingSummary")
