"""compare: verdicts, exit codes, environment mismatches, the statistics' false-alarm behaviour,
and the JSON results document (schema validation, unknown schema refused)."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

from synth import fake_result
from edge_bench.cli import main
from edge_bench.analysis.verdict import compare_docs, compare_results
from edge_bench.app.compare import compare_with_baseline, history_noise
from edge_bench.render.compare import emit, to_markdown
from edge_bench.errors import StoreError, UsageError
from edge_bench.results.document import (build_doc, load_schema, read_json, validate, validation_errors,
                                    write_json)
from edge_bench.analysis.stats import block_mannwhitney, block_medians, summarize
from edge_bench.results.store import Store


def synth_samples(median: float, n: int, seed: int, sigma: float = 0.08, drift: float = 0.02,
                  rho: float = 0.97, spikes: float = 0.01) -> np.ndarray:
    """Latencies as a timing loop produces them: lognormal jitter, a slowly wandering
    (autocorrelated) component, and rare 1.5-4x spikes (preemption)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n)
    ar = np.empty(n)
    ar[0] = e[0]
    k = np.sqrt(1 - rho ** 2)
    for i in range(1, n):
        ar[i] = rho * ar[i - 1] + k * e[i]
    s = median * np.exp(sigma * rng.normal(size=n) + drift * ar)
    m = rng.random(n) < spikes
    s[m] *= rng.uniform(1.5, 4.0, int(m.sum()))
    return s


def make_result(median: float = 2.0, seed: int = 0, n: int = 400, variant: str = "fp32",
                threads: int = 1, device: str = "local", model: str = "builtin:digits",
                **kw: Any) -> Dict[str, Any]:
    s = synth_samples(median, n, seed, **kw)
    return fake_result(s, device=device, model=model, variant=variant, threads=threads)


def make_doc(run_id: str, results: List[Dict[str, Any]], label: str = "x") -> Dict[str, Any]:
    return build_doc({"run_id": run_id, "label": label, "started_at": "2024-05-01T00:00:00+00:00",
                      "finished_at": "2024-05-01T00:05:00+00:00", "status": "finished",
                      "host": {"edge_bench": "0.1.0", "python": "3.11.2"}, "argv": ["run"]}, results)


KEYS = [("fp32", 1, 2.0), ("int8", 1, 0.8), ("fp32", 2, 1.1), ("int8", 2, 0.45)]


def fleet(seed: int, factor: float = 1.0) -> List[Dict[str, Any]]:
    return [make_result(median=m * factor, seed=seed * 100 + i, variant=v, threads=t)
            for i, (v, t, m) in enumerate(KEYS)]


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    """A store with a baseline, a same-distribution rerun, and a 10% slower run."""
    path = tmp_path / "c.sqlite"
    st = Store(path)
    for label, seed, factor, day in (("base", 1, 1.0, 1), ("rerun", 2, 1.0, 2), ("slow", 3, 1.10, 3)):
        rid = st.begin_run({"run_id": label + "-id", "label": label,
                            "started_at": f"2024-05-0{day}T00:00:00+00:00"})
        for r in fleet(seed, factor):
            st.add_result(rid, r)
        st.finish_run(rid, "finished")
    st.close()
    return path


def test_same_distribution_exits_0(db: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "base", "rerun", "--db", str(db), "--fail-on-regression"]) == 0
    assert "no regression: 4 same" in capsys.readouterr().out
    assert main(["compare", "base", "rerun", "--db", str(db), "--json", "-"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert [r["verdict"] for r in cmp["rows"]] == ["same"] * 4
    assert all(r["ci_lo"] < 1.0 < r["ci_hi"] or abs(r["ratio"] - 1) < 0.05 for r in cmp["rows"])


def test_ten_percent_slower_exits_1_only_with_flag(db: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out_json = tmp_path / "cmp.json"
    assert main(["compare", "base", "slow", "--db", str(db), "--fail-on-regression",
                 "--json", str(out_json)]) == 1
    cmp = json.loads(out_json.read_text())
    assert cmp["regressed"] is True
    assert [r["verdict"] for r in cmp["rows"]] == ["slower"] * 4
    for r in cmp["rows"]:
        assert 1.05 < r["ratio"] < 1.16 and r["ci_lo"] > 1.0 and r["p_value"] < 0.01
    assert main(["compare", "base", "slow", "--db", str(db)]) == 0  # reported, not failed
    assert main(["compare", "slow", "base", "--db", str(db), "--fail-on-regression"]) == 0  # faster
    assert "faster" in capsys.readouterr().out
    # refs: last / last~N
    assert main(["compare", "last~2", "last", "--db", str(db), "--fail-on-regression"]) == 1


def test_json_files_as_refs_and_markdown(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    st = Store(db)
    base, slow = st.get_run("base"), st.get_run("slow")
    st.close()
    write_json(base, tmp_path / "base.json")
    write_json(slow, tmp_path / "slow.json")
    md = tmp_path / "c.md"
    assert main(["compare", str(tmp_path / "base.json"), str(tmp_path / "slow.json"),
                 "--db", str(tmp_path / "nonexistent.sqlite"), "--markdown", str(md),
                 "--fail-on-regression"]) == 1
    text = md.read_text()
    assert text.startswith("### edge-bench compare")
    assert text.count("🔴 slower") == 4 and "REGRESSION" in text
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "base.json"), str(tmp_path / "base.json"), "--json", "-"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert cmp["summary"]["same"] == 4 and cmp["regressed"] is False


def test_threshold_is_configurable(db: Path) -> None:
    assert main(["compare", "base", "slow", "--db", str(db), "--fail-on-regression",
                 "--threshold", "0.25"]) == 0


def test_environment_mismatch_is_reported() -> None:
    base = make_doc("a", fleet(1))
    cand = make_doc("b", fleet(2))
    cand["results"][0]["runtime"]["version"] = "2.4.0"
    cand["results"][1]["device_info"]["governor"] = "powersave"
    cand["results"][2]["agent_version"] = "0.2.0"
    cand["results"][3]["model_sha256"] = "ef" * 32
    cand["results"][3]["runtime"]["xnnpack"] = False
    cmp = compare_docs(base, cand)
    fields = [[m["field"] for m in r["mismatches"]] for r in cmp["rows"]]
    assert sorted(sum(fields, [])) == sorted(["runtime_version", "governor", "agent_version",
                                              "model_sha256", "xnnpack"])
    assert all(f for f in fields)  # every row shows its own difference
    assert cmp["mismatched_rows"] == 4
    md = to_markdown(cmp)
    assert "runtime_version: 2.3.0 -> 2.4.0" in md and "governor: performance -> powersave" in md
    assert "different environment" in md


def test_accuracy_drop_missing_new_error() -> None:
    base = make_doc("a", fleet(1) + [make_result(variant="fp16", seed=7)])
    cand_results = fleet(2)
    cand_results[1]["accuracy"] = {"top1": 0.90, "top1_ref": 0.97, "agreement_vs_ref": 0.92,
                                   "max_abs_err": 0.5}
    cand_results[2] = dict(cand_results[2], status="error", error="Segmentation fault",
                           samples_ms=[], latency_ms=summarize([]))
    cand_results.append(make_result(variant="weight-int4", seed=9))
    cmp = compare_docs(base, make_doc("b", cand_results))
    verdicts = {(r["variant"], r["threads"]): r["verdict"] for r in cmp["rows"]}
    assert verdicts == {("fp32", 1): "same", ("int8", 1): "accuracy-drop", ("fp32", 2): "error",
                        ("int8", 2): "same", ("fp16", 1): "missing", ("weight-int4", 1): "new"}
    assert cmp["regressed"]
    acc_row = next(r for r in cmp["rows"] if r["verdict"] == "accuracy-drop")
    assert any("top-1 97.0% -> 90.0%" in n for n in acc_row["notes"])
    # a 0.5-point dip is within the default 1-point tolerance
    ok = copy.deepcopy(cand_results[:2])
    ok[1]["accuracy"]["top1"] = 0.965
    ok[1]["accuracy"]["agreement_vs_ref"] = 0.995
    assert not compare_docs(make_doc("a", fleet(1)[:2]), make_doc("c", ok))["regressed"]


def test_false_alarms_and_detection_on_synthetic_runs() -> None:
    """Same-vs-same pairs (independent runs, same distribution, with drift and spikes) must
    almost never be called slower; 10% slowdowns must almost always be."""
    n_pairs = 120
    false_alarms = detected = 0
    for i in range(n_pairs):
        base = make_result(median=2.0, seed=10_000 + i, n=300)
        same = make_result(median=2.0, seed=20_000 + i, n=300)
        slow = make_result(median=2.2, seed=20_000 + i, n=300)
        false_alarms += compare_results(base, same)["verdict"] != "same"
        detected += compare_results(base, slow)["verdict"] == "slower"
    assert false_alarms / n_pairs <= 0.01
    assert detected / n_pairs >= 0.95


def test_block_test_is_not_fooled_by_drift() -> None:
    """On strongly autocorrelated samples a plain U test on raw samples rejects a true null
    most of the time; the block-median test stays near its nominal level."""
    from scipy.stats import mannwhitneyu
    naive = blocked = 0
    trials = 60
    for i in range(trials):
        a = synth_samples(1.0, 2000, 500 + i, sigma=0.05, drift=0.05, rho=0.995, spikes=0)
        b = synth_samples(1.0, 2000, 900 + i, sigma=0.05, drift=0.05, rho=0.995, spikes=0)
        naive += mannwhitneyu(a, b).pvalue < 0.01
        blocked += block_mannwhitney(a, b) < 0.01
        assert 8 <= block_medians(a).size <= 50
    assert naive / trials > 0.5
    assert blocked / trials < naive / trials / 3


def test_history_noise_raises_the_bar_on_noisy_keys(tmp_path: Path) -> None:
    """A key whose stored runs wander by ~5% run to run is not called slower at +8%;
    a quiet key is."""
    st = Store(tmp_path / "n.sqlite")
    rng = np.random.default_rng(3)
    ids = []
    for night in range(8):
        rid = st.begin_run({"label": f"n{night}", "started_at": f"2024-05-{night + 1:02d}T00:00:00+00:00"})
        noisy = make_result(median=2.0 * float(np.exp(rng.normal(0, 0.05))), seed=night,
                            variant="fp32", drift=0.0, sigma=0.03)
        quiet = make_result(median=1.0, seed=100 + night, variant="int8", drift=0.0, sigma=0.03)
        st.add_result(rid, noisy)
        st.add_result(rid, quiet)
        st.finish_run(rid, "finished")
        ids.append(rid)
    base = st.get_run(ids[-1])
    b_noisy = next(r for r in base["results"] if r["variant"] == "fp32")
    cand = make_doc("cand", [make_result(median=b_noisy["latency_ms"]["median"] * 1.08, seed=77,
                                         variant="fp32", drift=0.0, sigma=0.03),
                             make_result(median=1.08, seed=78, variant="int8", drift=0.0, sigma=0.03)])
    plain = {r["variant"]: r["verdict"] for r in compare_docs(base, cand)["rows"]}
    assert plain == {"fp32": "slower", "int8": "slower"}
    noise = history_noise(st, [base, cand], exclude=["cand"])
    assert set(k[2] for k in noise) == {"fp32", "int8"}
    rows = {r["variant"]: r for r in compare_docs(base, cand, noise=noise)["rows"]}
    assert rows["fp32"]["verdict"] == "same" and "run-to-run noise" in " ".join(rows["fp32"]["notes"])
    assert rows["int8"]["verdict"] == "slower"


def test_compare_with_baseline_for_run_baseline(db: Path, capsys: pytest.CaptureFixture) -> None:
    """What `run --baseline last --fail-on-regression` does once the new run is stored."""
    st = Store(db)
    rid = st.begin_run({"run_id": "new-run", "label": "nightly",
                        "started_at": "2024-05-09T00:00:00+00:00"})
    new = fleet(5, 1.0)
    for r in new:
        st.add_result(rid, r)
    st.finish_run(rid, "finished")
    cand = st.get_run("new-run")
    # `last` is the new run itself: the baseline must be the run before it ("slow")
    cmp = compare_with_baseline(st, "last", cand)
    assert cmp is not None and not cmp["regressed"]
    assert {r["verdict"] for r in cmp["rows"]} == {"faster"}
    emit(cmp)
    assert "compare" in capsys.readouterr().out
    cmp = compare_with_baseline(st, "base", cand)
    assert cmp is not None and not cmp["regressed"]
    assert {r["verdict"] for r in cmp["rows"]} == {"same"}
    # `last~5` before this run does not exist: the first night, not an error; a typo is one
    assert compare_with_baseline(st, "last~5", cand) is None
    with pytest.raises(UsageError):
        compare_with_baseline(st, "no-such-label", cand)


def test_unknown_ref_is_a_usage_error(db: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "nope", "last", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "no run `nope`" in err and "slow-id" in err


# --- the results document ---------------------------------------------------------------

def test_documents_validate_against_schema(db: Path, tmp_path: Path) -> None:
    import jsonschema
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = make_doc("r1", fleet(1) + [{"device": "pi4", "model": "m.tflite", "variant": "int4",
                                      "threads": 1, "status": "error", "error": "boom",
                                      "accuracy": None, "runtime": None, "device_info": None,
                                      "samples_ms": [], "latency_ms": summarize([])}])
    jsonschema.validate(doc, schema)
    st = Store(db)
    jsonschema.validate(st.get_run("base"), schema)
    p = tmp_path / "doc.json"
    write_json(doc, p)
    assert read_json(p)["results"][0]["samples_ms"] == doc["results"][0]["samples_ms"]
    bad = copy.deepcopy(doc)
    bad["results"][0]["status"] = "great"
    del bad["results"][1]["device"]
    errs = validation_errors(bad)
    assert any("results/0/status" in e for e in errs) and any("device" in e for e in errs)
    with pytest.raises(StoreError, match="does not match"):
        validate(bad)


def test_nan_is_written_as_null(tmp_path: Path) -> None:
    doc = make_doc("r1", [make_result()])
    doc["results"][0]["init_ms"] = float("nan")
    write_json(doc, tmp_path / "d.json")
    assert read_json(tmp_path / "d.json")["results"][0]["init_ms"] is None


def test_unknown_schema_is_refused(tmp_path: Path) -> None:
    newer = make_doc("r1", [make_result()])
    newer["schema"] = "edge-bench/run/2"
    p = tmp_path / "newer.json"
    p.write_text(json.dumps(newer))
    with pytest.raises(StoreError, match="upgrade edge-bench"):
        read_json(p)
    other = dict(newer, schema="someone-else/v9")
    p.write_text(json.dumps(other))
    with pytest.raises(StoreError, match="unknown schema"):
        read_json(p)
    p.write_text(json.dumps({"results": []}))
    with pytest.raises(StoreError, match="no `schema`"):
        read_json(p)
    p.write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        read_json(p)
    assert main(["compare", str(p), str(p)]) == 2


# --- several worker processes per result ------------------------------------------------------

def multi_process_result(levels: List[float], seed: int, n: int = 300,
                         **kw: Any) -> Dict[str, Any]:
    """A result timed in len(levels) processes, each process at its own level (one process can
    land at a slower level for ALL its samples, as fresh processes do on a real machine)."""
    parts = [synth_samples(lv, n, seed * 10 + i, **kw) for i, lv in enumerate(levels)]
    r = fake_result(np.concatenate(parts))
    r["processes"], r["process_runs"] = len(levels), [n] * len(levels)
    return r


def test_one_unlucky_process_is_set_aside() -> None:
    base = multi_process_result([2.0, 2.0 * 1.12, 2.0], seed=1)
    same = multi_process_result([2.0, 2.0, 2.0], seed=2)
    row = compare_results(base, same)
    assert row["verdict"] == "same", row
    assert row["processes_base"] == row["processes_cand"] == 3
    assert len(row["base_process_p25_ms"]) == 3
    assert any("baseline processes disagree" in n and "+1" in n and "judged on the 2 of 3 at the fast level" in n
               for n in row["notes"]), row["notes"]
    # ...and the same the other way round (an unlucky candidate process)
    assert compare_results(same, base)["verdict"] == "same"
    # what one process per run would have said if the unlucky one had been the only one
    lone_unlucky = fake_result(synth_samples(2.0 * 1.12, 300, 7))
    lone_ok = fake_result(synth_samples(2.0, 300, 8))
    assert compare_results(lone_ok, lone_unlucky)["verdict"] == "slower"


def test_a_slowdown_of_every_process_is_slower() -> None:
    base = multi_process_result([2.0, 2.0, 2.0], seed=3)
    slow = multi_process_result([2.2, 2.2 * 1.12, 2.2], seed=4)   # one process unlucky as well
    row = compare_results(base, slow)
    assert row["verdict"] == "slower", row
    assert 1.07 < row["p25_ratio"] < 1.13 and row["p25_ci_lo"] > 1.0


def test_two_unlucky_processes_of_three_move_the_pooled_fast_quartile_little() -> None:
    """The median of the per-process p25s would follow two unlucky processes all the way
    (+12%); the pooled p25 comes from the one good process's upper half (its p75), which for
    samples as tight as the real agent's (p75/p25 within 1% for the MobileNet-style model in
    docs/benchmarks.md) is close to its p25: not `slower`."""
    tight = {"sigma": 0.006, "drift": 0.002}
    base = multi_process_result([2.0, 2.0, 2.0], seed=11, **tight)
    cand = multi_process_result([2.0 * 1.12, 2.0, 2.0 * 1.12], seed=12, **tight)
    row = compare_results(base, cand)
    assert row["verdict"] == "same", row
    assert row["p25_ratio"] < 1.05


def test_run_level_is_the_pooled_fast_quartile() -> None:
    from edge_bench.analysis.verdict import run_level
    r = multi_process_result([2.0, 3.0, 2.0], seed=9)
    assert abs(run_level(r) / 2.0 - 1) < 0.1      # the 3.0 process hardly counts
    # pooled over the processes at the fast level (analysis/processes.py): the 3.0 one is out
    s = np.asarray(r["samples_ms"])
    kept = np.concatenate([s[:300], s[600:]])
    assert run_level(r) == pytest.approx(float(np.quantile(kept, 0.25)))
    # counts that do not add up are ignored by the block split, never an error
    bad = dict(r, process_runs=[1, 2])
    assert compare_results(bad, r)["verdict"] == "same"
