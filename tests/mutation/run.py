"""Mutation testing of edge-bench's core: one command, one score per module.

    python tests/mutation/run.py                 # every module in MODULES
    python tests/mutation/run.py stats verdict   # some of them
    python tests/mutation/run.py --list          # the modules, their scope and their tests

Tool: cosmic-ray (`pip install -e '.[mutation]'`). For each module, the runner
1. copies the work tree (tracked and untracked, not ignored files) into a scratch directory, so
   the mutated file is never the one in your checkout, and points the `edge_bench*` packages at
   that copy (PYTHONPATH, read from pyproject's package-dir: the agent subprocesses and the
   `python -m edge_bench.cli` runs of the tests import the mutated copy too);
2. `cosmic-ray init` + `baseline` (the chosen tests must pass on the unmutated code);
3. marks as skipped the mutants outside the module's scope (`functions`) and the operators in
   SKIPPED_OPERATORS (see there why), then `cosmic-ray exec` runs the module's own tests
   (`-x`, no random order, so a mutant dies at its first failing test);
4. prints killed / survived / equivalent and the score = killed / (killed + survived), the
   equivalent ones left out; survivors are listed with line, operator and source line; a
   survivor that matches an entry of tests/mutation/equivalent.toml (module, operator, source
   line and, when given, the mutated line) is counted as equivalent (the file says why).

`--workers N` (at most 2) runs N modules at a time, each in its own scratch copy. Results stay in
--out (default: a temp dir, kept; `--out DIR` reuses a session and resumes where it stopped).
Exit 0 when every module reaches --min-score (default 0.9), else 1; 2 on a setup error.
How often it runs, and the last scores: docs/testing.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.toml")


@dataclass(frozen=True)
class Module:
    path: str                      # the file mutated, relative to the repo
    tests: Tuple[str, ...]         # pytest arguments: the tests that cover it
    functions: Tuple[str, ...] = ()  # only mutants inside these functions (empty: the whole file)
    timeout: float = 300.0         # seconds per mutant (an endless loop counts as killed)


# The unit tests of the statistics and the verdict rules, fastest first (a mutant dies at its
# first failing test). Not here: the CLI runs of test_compare.py and its 120-pair false-alarm
# calibration (18 s alone), which exercise the same functions end to end.
_COMPARE_UNIT = tuple("tests/test_compare.py::" + t for t in (
    "test_run_level_is_the_pooled_fast_quartile", "test_one_unlucky_process_is_set_aside",
    "test_a_slowdown_of_every_process_is_slower",
    "test_two_unlucky_processes_of_three_move_the_pooled_fast_quartile_little",
    "test_block_test_is_not_fooled_by_drift"))
STATS_TESTS = ("tests/test_stats.py", "tests/test_stats_rules.py",
               "tests/test_thresholds.py::test_the_verdict_is_decided_on_the_fast_quartile",
               *_COMPARE_UNIT)
VERDICT_TESTS = ("tests/test_verdict_rules.py", "tests/test_thresholds.py",
                 "tests/test_compare.py::test_environment_mismatch_is_reported",
                 "tests/test_compare.py::test_accuracy_drop_missing_new_error", *_COMPARE_UNIT)

# The core named in issue 17. Each module runs only the tests that cover it.
MODULES: Dict[str, Module] = {
    "stats": Module("host/analysis/stats.py", STATS_TESTS),
    "verdict": Module("host/analysis/verdict.py", VERDICT_TESTS),
    "accuracy": Module("host/models/accuracy.py", (
        "tests/test_accuracy_rules.py",
        "tests/test_thresholds.py::test_agreement_just_above_and_below_each_variants_tolerance",
        "tests/test_thresholds.py::test_snr_just_above_and_below_each_variants_tolerance",
        "tests/test_thresholds.py::test_identical_outputs_have_infinite_snr_and_no_flag",
        "tests/test_thresholds.py::test_a_single_non_finite_value_flags",
        "tests/test_thresholds.py::test_small_eval_sets_allow_exactly_one_mismatch",
        "tests/test_thresholds.py::test_top1_drop_of_more_than_5_points_flags",
        "tests/test_accuracy.py::test_reference_shape_and_top1",
        "tests/test_accuracy.py::test_flag_fires_on_corrupted_weights",
        "tests/test_accuracy.py::test_flag_fires_on_wrong_runtime_output",
        "tests/test_accuracy.py::test_score_without_labels_and_explicit_tolerance",
        "tests/test_accuracy.py::test_score_shape_mismatch"),
        functions=("tolerance_for", "_as_list", "_argmax", "score")),
    "quantcache": Module("host/models/quantcache.py", (
        "tests/test_integrity.py::test_a_cached_variant_changed_on_disk_is_rebuilt_not_served",
        "tests/test_integrity.py::test_a_cache_entry_without_its_sidecar_or_with_a_broken_one_is_rebuilt",
        "tests/test_integrity.py::test_a_sidecar_that_disagrees_with_its_file_is_rebuilt",
        "tests/test_integrity.py::test_write_atomic_makes_parents_and_leaves_no_temp_file",
        "tests/test_quantize.py::test_cache_hit_does_not_requantize",
        "tests/test_quantize.py::test_cache_dir_env")),
    "deploy": Module("host/fleet/deploy.py", (
        "tests/test_integrity.py::test_a_blob_corrupted_on_the_device_after_an_ssh_push_is_refused",
        "tests/test_integrity.py::test_blob_names_are_the_sha256_and_the_last_extension",
        "tests/test_integrity.py::test_ensure_blobs_makes_each_directory_before_pushing",
        "tests/test_integrity.py::test_a_blob_cannot_be_changed_after_its_sha256_was_computed",
        "tests/test_run_local.py::test_second_run_pushes_nothing_new")),
    "agent-timing": Module("agent/task.py", ("tests/test_timing_clock.py",),
                           functions=("timing_loop",), timeout=60.0),
    "agent-verify": Module("agent/task.py", (
        "tests/test_agent_integrity.py",
        "tests/test_agent.py::test_checksum_mismatch_and_missing_file_do_not_stop_the_job"),
        functions=("verify_file",)),
    # the lock functions in process; test_lock.py runs them end to end (its agent zipapp is
    # rebuilt for every mutant: seconds of CPU each, for rules the unit tests already pin)
    # (`-o timeout=20`: a mutant that makes the wait loop endless fails its test in 20 s, not
    # after cosmic-ray's per-mutant timeout)
    "agent-lock": Module("agent/lock.py", ("-o", "timeout=20", "tests/test_lock_rules.py"),
                         timeout=120.0),
    # the shared-board rules (the Python walk, file checks); the sh spelling of the walk is
    # compared with it on every layout by the `agree` tests
    "safepath": Module("agent/safepath.py", (
        "-k", "agree or refuses_a_model or loads_the_model or bootstrap",
        "tests/test_shared_board.py"),
        functions=("others_can_write", "_make_dir", "safe_workdir", "_final", "file_problem",
                   "open_checked", "hash_fd", "fd_path"), timeout=90.0),
    "protocol": Module("agent/protocol.py", ("tests/test_protocol_rules.py",
                                             "tests/test_protocol.py"),
                       functions=("_num", "task_processes", "task_params", "parse_job",
                                  "speaks_proto", "parse_line"), timeout=90.0),
    "exit-policy": Module("host/app/run.py", ("tests/test_exit_policy.py",),
                          functions=("run_status", "failed_results", "exit_code")),
}

# Replacing a binary operator by each of the 12 others multiplies the mutants ~10x; most of the
# extra ones (`a - b` -> `a ^ b`, `a << b`, ...) raise TypeError on floats and die at once. We keep
# one arithmetic neighbour per operator (+ - * /) and every comparison, number, boolean,
# break/continue and exception mutant.
SKIPPED_OPERATORS = re.compile(
    r"core/ReplaceBinaryOperator_\w+_(FloorDiv|Mod|Pow|RShift|LShift|BitOr|BitAnd|BitXor)$")

# Plugins are not auto-loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD in run_module): hypothesis' and
# jaxtyping's plugins alone cost ~3 s of CPU per pytest start, i.e. per mutant. Only
# pytest-timeout is loaded (the tests' timeout marks); @given works without hypothesis' plugin.
PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "pytest_timeout",
          "-p", "no:cacheprovider", "--no-header", "-o", "addopts="]


def package_dirs() -> Dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return dict(data["tool"]["setuptools"]["package-dir"])


def scratch_copy(dest: Path) -> Path:
    """The work tree (tracked + untracked, not ignored) under dest/repo, and dest/import with one
    link per top-level package (edge_bench -> repo/host, ...)."""
    repo = dest / "repo"
    if not repo.is_dir():
        files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                               capture_output=True, check=True).stdout.decode().split("\0")
        for rel in filter(None, files):
            src = REPO / rel
            if src.is_file() and not rel.startswith(("mutants/", ".venv/")):
                (repo / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, repo / rel)
    imp = dest / "import"
    imp.mkdir(exist_ok=True)
    for pkg, rel in package_dirs().items():
        link = imp / pkg
        if not link.exists():
            link.symlink_to(repo / rel, target_is_directory=True)
    return repo


def load_equivalent() -> List[Dict[str, str]]:
    if not EQUIVALENT.is_file():
        return []
    return list(tomllib.loads(EQUIVALENT.read_text()).get("mutant", []))


def run_module(name: str, mod: Module, out: Path, log, retest: bool = False) -> Dict[str, object]:
    work = out / name
    parked = False
    if retest and (work / "session.sqlite").exists():
        began = work / "module.sha256"  # the module the session's mutants were made from
        now = hashlib.sha256((REPO / mod.path).read_bytes()).hexdigest()
        if began.is_file() and began.read_text() == now:
            # same module, better tests: a fresh copy of the tree, the survivors run again
            log(f"{name}: running the survivors again with the current tests")
            shutil.rmtree(work / "repo")
            # mutants not run yet stay not run: parked (as skipped) while the survivors run
            parked = park_pending(work / "session.sqlite", True)
            forget_survivors(work / "session.sqlite")
        else:  # the module changed: its mutants are other mutants, start over
            log(f"{name}: {mod.path} changed since the session began: a new session")
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    repo = scratch_copy(work)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(work / "import")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("CI", None)  # a scratch run is not CI: a missing system package may skip here
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # see PYTEST (also: no random order)
    cfg = work / "cosmic-ray.toml"
    test_cmd = " ".join(shlex.quote(a) for a in PYTEST + list(mod.tests))
    cfg.write_text("\n".join([
        "[cosmic-ray]", f"module-path = {json.dumps(mod.path)}", f"timeout = {mod.timeout}",
        "excluded-modules = []", f"test-command = {json.dumps(test_cmd)}",
        "[cosmic-ray.distributor]", 'name = "local"', ""]))
    db = work / "session.sqlite"

    def cr(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "cosmic_ray.cli", *args], cwd=repo, env=env,
                           capture_output=True, text=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"{name}: cosmic-ray {' '.join(args)} failed:\n"
                               f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p

    if not db.exists():
        log(f"{name}: baseline ({test_cmd})")
        base = subprocess.run(shlex.split(test_cmd), cwd=repo, env=env, capture_output=True,
                              text=True)
        if base.returncode != 0:
            raise RuntimeError(f"{name}: the tests fail on the unmutated code:\n"
                               f"{base.stdout[-4000:]}")
        cr("init", str(cfg), str(db))
        shutil.copy2(REPO / mod.path, work / "module.orig")
        (work / "module.sha256").write_text(
            hashlib.sha256((REPO / mod.path).read_bytes()).hexdigest())
        mark_out_of_scope(db, mod)
    # a run stopped mid-mutant (Ctrl-C, a killed session) may leave the mutant on disk
    shutil.copy2(REPO / mod.path, repo / mod.path)
    log(f"{name}: running mutants")
    try:
        cr("exec", str(cfg), str(db))
    finally:
        if parked:
            park_pending(db, False)
    return summarize(name, mod, db, repo)


PARKED = "parked by --retest-survivors: not run yet"


def park_pending(db: Path, park: bool) -> bool:
    """park=True: mark the mutants not run yet as skipped (so that `exec` runs only the
    survivors just forgotten); park=False: make them pending again. True if any were parked."""
    import sqlite3
    con = sqlite3.connect(str(db))
    with con:
        if park:
            n = con.execute("INSERT INTO work_results (worker_outcome, output, job_id) "
                            "SELECT 'SKIPPED', ?, job_id FROM work_items WHERE job_id NOT IN "
                            "(SELECT job_id FROM work_results)", (PARKED,)).rowcount
        else:
            n = con.execute("DELETE FROM work_results WHERE output = ?", (PARKED,)).rowcount
    con.close()
    return n > 0


def forget_survivors(db: Path) -> None:
    import sqlite3
    con = sqlite3.connect(str(db))
    with con:
        con.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")
    con.close()


def mark_out_of_scope(db: Path, mod: Module) -> None:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult
    skip: Dict[str, List[str]] = {}
    with use_db(str(db), WorkDB.Mode.open) as work_db:
        for item in work_db.pending_work_items:
            m = item.mutations[0]
            if SKIPPED_OPERATORS.match(m.operator_name):
                skip.setdefault("operator not in the chosen set", []).append(item.job_id)
            elif mod.functions and m.definition_name not in mod.functions:
                skip.setdefault("outside the module's scope", []).append(item.job_id)
        for why, ids in skip.items():  # one transaction each: a commit per mutant is slow
            work_db.set_multiple_results(ids, WorkResult(output=why,
                                                         worker_outcome=WorkerOutcome.SKIPPED))


def summarize(name: str, mod: Module, db: Path, repo: Path) -> Dict[str, object]:
    from cosmic_ray.work_db import WorkDB, use_db
    # the module the mutants were made from (the scratch copy may hold a mutant right now)
    orig = db.parent / "module.orig"
    lines = (orig if orig.is_file() else repo / mod.path).read_text().splitlines()
    equivalent = [e for e in load_equivalent() if e.get("module") == name]
    killed = survived = equiv = pending = 0
    survivors: List[str] = []
    with use_db(str(db), WorkDB.Mode.open) as work_db:
        results = dict(work_db.results)
        for item in work_db.work_items:
            res = results.get(item.job_id)
            m = item.mutations[0]
            if res is None:
                pending += 1
                continue
            if res.worker_outcome == "skipped":
                continue
            if res.test_outcome == "survived":
                line_no = m.start_pos[0]
                text = lines[line_no - 1].strip() if line_no <= len(lines) else ""
                op = m.operator_name.split("/")[-1]
                mutated = next((ln[1:].strip() for ln in (res.diff or "").splitlines()
                                if ln.startswith("+") and not ln.startswith("+++")), "")
                if any(e["operator"] == op and e["line"].strip() == text
                       and e.get("mutated", mutated).strip() == mutated for e in equivalent):
                    equiv += 1
                    continue
                survived += 1
                survivors.append(f"  {mod.path}:{line_no} {op} in {m.definition_name}: {text}")
            else:  # killed, incompetent (the mutant cannot even import), timeout
                killed += 1
    live = killed + survived
    return {"module": name, "path": mod.path, "killed": killed, "survived": survived,
            "equivalent": equiv, "pending": pending,
            "score": killed / live if live else 1.0, "survivors": survivors}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"some of: {', '.join(MODULES)} (default: all)")
    ap.add_argument("--workers", type=int, default=1, choices=(1, 2))
    ap.add_argument("--out", type=Path, help="session directory (reused to resume)")
    ap.add_argument("--min-score", type=float, default=0.9)
    ap.add_argument("--json", type=Path, help="also write the summary here")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--retest-survivors", action="store_true",
                    help="with --out of an earlier session: run its survivors again with the "
                         "current tests (its mutants not run yet stay not run)")
    args = ap.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        print(f"unknown module(s) {', '.join(unknown)}: choose from {', '.join(MODULES)}",
              file=sys.stderr)
        return 2
    if args.list:
        for k, m in MODULES.items():
            scope = f" ({', '.join(m.functions)})" if m.functions else ""
            print(f"{k:12} {m.path}{scope}\n{'':12} tests: {' '.join(m.tests)}")
        return 0
    try:
        import cosmic_ray  # noqa: F401
    except ImportError:
        print("cosmic-ray is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="edge-bench-mutation-"))
    out.mkdir(parents=True, exist_ok=True)
    names = args.modules or list(MODULES)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"session: {out}")
    with ThreadPoolExecutor(args.workers) as pool:
        futures = {n: pool.submit(run_module, n, MODULES[n], out, log,
                                       args.retest_survivors) for n in names}
        summaries, failed = [], []
        for n, f in futures.items():
            try:
                summaries.append(f.result())
            except RuntimeError as e:
                failed.append(str(e))
    print(f"{'module':12} {'file':28} {'killed':>6} {'survived':>8} {'equiv.':>6} {'score':>6}")
    for s in summaries:
        print(f"{s['module']:12} {s['path']:28} {s['killed']:6} {s['survived']:8} "
              f"{s['equivalent']:6} {s['score']:6.1%}"
              + (f"  ({s['pending']} not run)" if s["pending"] else ""))
    for s in summaries:
        if s["survivors"]:
            print(f"\nsurviving in {s['module']}:")
            print("\n".join(s["survivors"]))
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=1))
    for msg in failed:
        print(msg, file=sys.stderr)
    if failed:
        return 2
    return 0 if all(s["score"] >= args.min_score and not s["pending"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
