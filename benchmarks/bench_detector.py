"""How good is the regression detector (edge_bench.compare) on the real agent, on this machine?

What it measures
  * false positives: many runs of the SAME model on `local` (real `edge-bench run`, real agent,
    real LiteRT), each compared with the run before it (the nightly `--baseline last` case),
    with and without the store's history guard; also every pair of runs (random pairs far apart
    in time) and two identical copies of the model timed in the same run.
  * detection: the same model with honest extra work (depthwise 3x3 conv layers inserted after
    the 12x12x128 stage of the MobileNet-style model, so every invoke() really does more
    arithmetic) calibrated for nominal slowdowns of 5%, 10%, 20%. The slowdown actually achieved
    is measured from the runs themselves (same-run median ratio) and reported next to the
    nominal one. Each slow run is compared with the previous round's base run (yesterday's
    baseline), with and without history.

Every round is ONE `edge-bench run --model base_a --model base_b --model slow05 --model slow10
--model slow20` (order shuffled per round, each model timed in its own worker process, the
CLI's default --runs/--min-seconds unless given), stored in a fresh SQLite store. Verdicts come
from `edge_bench.compare.compare_results`, the code `compare` and `run --baseline` use; the
history guard gets only the runs stored BEFORE the candidate (as it would at night).

Why not a cgroup CPU quota (not tried): CFS bandwidth control throttles in whole periods (100 ms
by default), so a quota of 90% would leave most sub-millisecond invokes untouched and stall a
few by up to a period (a tail effect, not a slowdown). Extra layers slow every invoke by a
known, measured amount.

Run:
    python benchmarks/bench_detector.py                  # ~5 min: 40 rounds
    python benchmarks/bench_detector.py --quick          # ~1.5 min: 10 rounds, shorter runs
    python benchmarks/bench_detector.py --write-doc      # also update docs/benchmarks.md
    python benchmarks/bench_detector.py --analyze DIR    # re-evaluate a kept run (--keep DIR)
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LEVELS = (0.05, 0.10, 0.20)
BASES = ("base_a", "base_b")
SEED = 96


# ---- models -----------------------------------------------------------------------------------
def build_model(extra: int) -> bytes:
    """The MobileNet-v1-style 96x96 model of builtin:mobilenet (same weights, no feature
    centring) with `extra` additional 3x3 depthwise conv + ReLU6 layers after block 4 (12x12x128).
    extra=0 is the base model."""
    from edge_bench.builtin.make_models import MOBILENET_BLOCKS, _he, _mobilenet_graph
    from edge_bench.tflite_builder import ModelBuilder
    mb = ModelBuilder(f"edge-bench detector benchmark: mobilenet + {extra} extra depthwise layers")
    extra_rng = np.random.default_rng(SEED + 1)

    def add_extra(i: int, h: int, c: int) -> int:
        if i == 4:
            for j in range(extra):
                h = mb.depthwise_conv2d(h, 0.3 * _he(extra_rng, (1, 3, 3, c), 9),
                                        0.05 * extra_rng.standard_normal(c), stride=1,
                                        activation="relu6", name=f"extra_{j}")
        return h

    h = _mobilenet_graph(mb, SEED, after_block=add_extra)  # pooled [1, c] features
    c = MOBILENET_BLOCKS[-1][0]
    w = (np.random.default_rng(SEED + 1000).standard_normal((1000, c)) * 0.05).astype(np.float32)
    h = mb.fully_connected(h, w, np.zeros(1000, np.float32), name="classifier")
    mb.output(mb.softmax(h), "probabilities")
    return mb.build()


def calibrate(targets: Sequence[float], max_extra: int = 16, reps: int = 15,
              block: int = 60) -> Tuple[Dict[float, int], Dict[int, float]]:
    """Pick the number of extra layers for each target slowdown: every candidate model in one
    process, timed in alternating blocks of `block` invokes (so load changes hit all alike).
    Returns ({target: extra}, {extra: measured ratio})."""
    from ai_edge_litert.interpreter import Interpreter
    ks = list(range(0, max_extra + 1))
    its = []
    for k in ks:
        it = Interpreter(model_content=build_model(k), num_threads=1)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.random.default_rng(0).uniform(-1, 1, d["shape"]).astype(np.float32))
        for _ in range(10):
            it.invoke()
        its.append(it)
    meds: Dict[int, List[float]] = {k: [] for k in ks}
    for _ in range(reps):
        for k, it in zip(ks, its):
            s = []
            for _ in range(block):
                t0 = time.perf_counter_ns()
                it.invoke()
                s.append(time.perf_counter_ns() - t0)
            meds[k].append(float(np.median(s)))
    base = np.asarray(meds[0])
    ratio = {k: float(np.median(np.asarray(meds[k]) / base)) for k in ks}
    pick = {t: min(ks[1:], key=lambda k: abs(ratio[k] - 1 - t)) for t in targets}
    return pick, ratio


# ---- measuring -----------------------------------------------------------------------------
def machine_facts() -> Dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "machine": platform.machine()}


def other_processes() -> List[str]:
    """Other busy processes right now (a snapshot of `ps` by CPU), to document the load."""
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,pid,args", "--sort=-pcpu"], capture_output=True,
                             text=True, timeout=10).stdout.splitlines()[1:]
    except (OSError, subprocess.SubprocessError):
        return []
    me = {str(os.getpid())}
    busy = []
    for line in out:
        parts = line.split(None, 2)
        if len(parts) < 3 or parts[1] in me:
            continue
        if float(parts[0]) >= 5.0:
            busy.append(f"{parts[0]}% {parts[2][:90]}")
    return busy[:8]


def run_round(work: Path, i: int, models: Dict[str, Path], runs: int, min_seconds: float,
              rng: random.Random) -> Dict[str, Any]:
    names = list(models)
    rng.shuffle(names)
    cmd = [sys.executable, "-m", "edge_bench.cli", "run", "--variants", "fp32", "--threads", "1",
           "--runs", str(runs), "--min-seconds", str(min_seconds), "--db", str(work / "bench.sqlite"),
           "--label", f"round-{i:03d}", "--quiet", "--lock-wait", "900"]
    for n in names:
        cmd += ["--model", str(models[n])]
    env = dict(os.environ, EDGE_BENCH_CACHE=str(work / "cache"))
    env.pop("EDGE_BENCH_CONFIG", None)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(work), timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"round {i}: edge-bench run exited {p.returncode}\n{p.stderr[-3000:]}")
    return {"round": i, "order": names, "seconds": time.monotonic() - t0,
            "load1": os.getloadavg()[0]}


# ---- evaluating ----------------------------------------------------------------------------
def load_rounds(work: Path, manifest: Dict[str, Any]) -> List[Dict[str, Dict[str, Any]]]:
    """[{model name: result}] per round, oldest first, from the store."""
    from edge_bench.store import Store
    by_path = {str(v): k for k, v in manifest["models"].items()}
    out = []
    with Store(work / "bench.sqlite", create=False) as st:
        for r in manifest["rounds"]:
            doc = st.get_run(f"round-{r['round']:03d}")
            res = {by_path[x["model"]]: x for x in doc["results"] if x.get("status") == "ok"}
            out.append(res)
    return out


def _median(r: Dict[str, Any]) -> float:
    return float(np.median(np.asarray(r["samples_ms"], dtype=np.float64)))


def _p25(r: Dict[str, Any]) -> float:
    return float(np.quantile(np.asarray(r["samples_ms"], dtype=np.float64), 0.25))


#: at most this many same-vs-same pairs per base model in the all-pairs figure (sampled, seeded)
MAX_PAIRS = 1000


def evaluate(rounds: List[Dict[str, Dict[str, Any]]], levels: Sequence[float],
             threshold: Optional[float] = None, alpha: Optional[float] = None) -> Dict[str, Any]:
    from edge_bench import compare as C
    kw = {"threshold": C.DEFAULT_THRESHOLD if threshold is None else threshold,
          "alpha": C.DEFAULT_ALPHA if alpha is None else alpha}

    def noise_before(key: str, i: int) -> Optional[Dict[str, Any]]:
        meds = [_median(rounds[j][key]) for j in range(max(0, i - C.HISTORY_RUNS), i)
                if key in rounds[j]]
        return C.noise_from_medians(meds)

    def verdict(base: Dict[str, Any], cand: Dict[str, Any], noise: Any = None) -> Dict[str, Any]:
        return C.compare_results(base, cand, noise=noise, **kw)

    def tally(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
        n = len(rows)
        slower = sum(r["verdict"] == "slower" for r in rows)
        faster = sum(r["verdict"] == "faster" for r in rows)
        return {"n": n, "slower": slower, "faster": faster,
                "slower_rate": slower / n if n else None,
                "ratios": [r["ratio"] for r in rows]}

    R = len(rounds)
    out: Dict[str, Any] = {"rounds": R, "settings": kw, "decision_quantile": C.DECISION_QUANTILE}
    # same vs same
    succ, succ_h, within, pairs = [], [], [], []
    for key in BASES:
        for i in range(1, R):
            if key in rounds[i - 1] and key in rounds[i]:
                succ.append(verdict(rounds[i - 1][key], rounds[i][key]))
                n = noise_before(key, i)
                if n is not None:
                    succ_h.append(verdict(rounds[i - 1][key], rounds[i][key], n))
        all_pairs = list(itertools.combinations(range(R), 2))
        if len(all_pairs) > MAX_PAIRS:  # O(rounds^2) bootstrap comparisons: sample them
            all_pairs = random.Random(0).sample(all_pairs, MAX_PAIRS)
        for i, j in all_pairs:
            if key in rounds[i] and key in rounds[j]:
                pairs.append(verdict(rounds[i][key], rounds[j][key]))
    for i in range(R):
        if all(k in rounds[i] for k in BASES):
            within.append(verdict(rounds[i]["base_a"], rounds[i]["base_b"]))
    out["same_successive"] = tally(succ)
    out["same_successive_history"] = tally(succ_h)
    out["same_all_pairs"] = tally(pairs)
    out["same_within_run"] = tally(within)
    # run-to-run spread of the base model
    meds = np.asarray([_median(r["base_a"]) for r in rounds if "base_a" in r])
    out["base_medians_ms"] = meds.tolist()
    out["run_to_run_cov"] = float(meds.std(ddof=1) / meds.mean()) if meds.size > 1 else None
    out["run_to_run_range"] = [float(meds.min()), float(meds.max())] if meds.size else None
    q25 = np.asarray([_p25(r["base_a"]) for r in rounds if "base_a" in r])
    out["run_to_run_cov_p25"] = float(q25.std(ddof=1) / q25.mean()) if q25.size > 1 else None
    same = [v for key in BASES for i in range(1, R) if key in rounds[i - 1] and key in rounds[i]
            for v in [(_median(rounds[i][key]) / _median(rounds[i - 1][key]) - 1,
                       _p25(rounds[i][key]) / _p25(rounds[i - 1][key]) - 1)]]
    out["same_successive_max_abs_change"] = ({"median": max(abs(m) for m, _ in same),
                                              "p25": max(abs(q) for _, q in same)} if same else None)
    # detection
    det = {}
    for lv in levels:
        name = f"slow{int(round(lv * 100)):02d}"
        achieved = [_median(r[name]) / _median(r["base_a"]) - 1 for r in rounds
                    if name in r and "base_a" in r]
        achieved_q = [_p25(r[name]) / _p25(r["base_a"]) - 1 for r in rounds
                      if name in r and "base_a" in r]
        prev, prev_h, same_run = [], [], []
        for i in range(R):
            if name not in rounds[i]:
                continue
            if "base_a" in rounds[i]:
                same_run.append(verdict(rounds[i]["base_a"], rounds[i][name]))
            if i >= 1 and "base_a" in rounds[i - 1]:
                prev.append(verdict(rounds[i - 1]["base_a"], rounds[i][name]))
                n = noise_before("base_a", i)
                if n is not None:
                    prev_h.append(verdict(rounds[i - 1]["base_a"], rounds[i][name], n))
        det[name] = {"nominal": lv,
                     "achieved_median": float(np.median(achieved)) if achieved else None,
                     "achieved_range": [float(min(achieved)), float(max(achieved))] if achieved else None,
                     "achieved_p25": float(np.median(achieved_q)) if achieved_q else None,
                     "achieved_p25_range": [float(min(achieved_q)), float(max(achieved_q))] if achieved_q else None,
                     "vs_previous": tally(prev), "vs_previous_history": tally(prev_h),
                     "vs_same_run": tally(same_run)}
    out["detection"] = det
    return out


# ---- reporting ---------------------------------------------------------------------------------
def _pct(x: Optional[float], digits: int = 1) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def _rate(t: Dict[str, Any], key: str = "slower") -> str:
    if not t["n"]:
        return "- (0)"
    return f"{t[key] / t['n'] * 100:.1f}% ({t[key]}/{t['n']})"


def report_markdown(ev: Dict[str, Any], meta: Dict[str, Any]) -> str:
    m = meta["machine"]
    det = ev["detection"]
    fp = ev["same_successive"]
    fp_h = ev["same_successive_history"]
    d10 = det.get("slow10", {})
    def goal(t: Optional[Dict[str, Any]], ok: Any) -> str:
        if not t or t["slower_rate"] is None:
            return "not measured"
        return "met" if ok(t["slower_rate"]) else "NOT met"

    fp_ok = goal(fp, lambda r: r <= 0.01)
    fp_h_ok = goal(fp_h, lambda r: r <= 0.01)
    det_ok = goal(d10.get("vs_previous"), lambda r: r >= 0.95)
    det_h_ok = goal(d10.get("vs_previous_history"), lambda r: r >= 0.95)
    lines = [
        "How often does `compare` / `run --baseline ... --fail-on-regression` cry wolf, and how"
        " reliably does it catch a real slowdown? `benchmarks/bench_detector.py` measures it with"
        " the real CLI, agent and LiteRT on `local`. Each round is one `edge-bench run` of five"
        " models, each timed in its own worker process in a shuffled order: two identical copies"
        " of a MobileNet-style 96x96 model (`base_a`, `base_b`) and three versions of it with extra"
        " 3x3 depthwise layers, calibrated for +5%, +10% and +20% latency (every invoke really"
        " does more arithmetic; the slowdown achieved is measured in the runs and reported). Same"
        " vs same: each run of a base model against the previous round's run (the nightly"
        " `--baseline last` case), with and without the history guard (which only sees earlier"
        " rounds), every pair of rounds, and the two copies within a round. Detection: each slow"
        " model against the previous round's `base_a`. Verdicts come from"
        " `edge_bench.compare.compare_results`, the code `compare` and `run --baseline` use.",
        "",
        "```sh",
        "python benchmarks/bench_detector.py [--quick] [--write-doc] [--keep DIR]",
        "python benchmarks/bench_detector.py --analyze DIR [--quantile 0.5]   # re-judge kept runs",
        "```",
        "",
        "Slowdowns are made with extra layers rather than a cgroup CPU quota (not tried here):"
        " CFS bandwidth control throttles in whole periods (100 ms by default), so a 90% quota"
        " would leave most sub-millisecond invokes untouched and stall a few by up to a period, a"
        " tail effect rather than a slowdown of every invoke.",
        "",
        f"Measured {meta['date']} with `python benchmarks/bench_detector.py{' --quick' if meta['quick'] else ''}`"
        f" ({ev['rounds']} rounds, {meta['minutes']:.1f} min).",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']};"
        f" LiteRT on `local`, fp32, 1 thread, XNNPACK on.",
        f"- Load: shared machine, other sessions' jobs running throughout (load average"
        f" {meta['load_min']:.1f}-{meta['load_max']:.1f}, mean {meta['load_mean']:.1f} on {m['cores']} cores;"
        f" busy processes at start: {len(meta['busy_start'])}, e.g. `{(meta['busy_start'] or ['none'])[0][:70]}`).",
        f"- Each run: `--runs {meta['runs']} --min-seconds {meta['min_seconds']:g}`; detector settings:"
        f" threshold {ev['settings']['threshold'] * 100:g}%, alpha {ev['settings']['alpha']:g},"
        f" verdict on the {ev['decision_quantile'] * 100:g}th percentile"
        f"{' (the fast quartile)' if ev['decision_quantile'] == 0.25 else ''}.",
        f"- Base model median over the rounds: {ev['run_to_run_range'][0]:.4f}-{ev['run_to_run_range'][1]:.4f} ms;"
        f" run-to-run CoV of the median {_pct(ev['run_to_run_cov'])}, of the 25th percentile"
        f" {_pct(ev['run_to_run_cov_p25'])}; largest change between successive runs of the same model:"
        f" median {_pct((ev['same_successive_max_abs_change'] or {}).get('median'))},"
        f" p25 {_pct((ev['same_successive_max_abs_change'] or {}).get('p25'))}.",
        "",
        "| comparison | n | `slower` (false positive for same-vs-same) | `faster` |",
        "|---|---|---|---|",
        f"| same model, run vs previous run (nightly), no history | {fp['n']} | {_rate(fp)} | {_rate(fp, 'faster')} |",
        f"| same model, run vs previous run, history guard (>= 5 earlier runs) | {fp_h['n']} | {_rate(fp_h)} | {_rate(fp_h, 'faster')} |",
        f"| same model, every pair of runs, no history | {ev['same_all_pairs']['n']} | {_rate(ev['same_all_pairs'])} | {_rate(ev['same_all_pairs'], 'faster')} |",
        f"| two identical copies timed in the same run | {ev['same_within_run']['n']} | {_rate(ev['same_within_run'])} | {_rate(ev['same_within_run'], 'faster')} |",
        "",
        "| slowdown nominal | achieved: p25 ratio in the same run, median (range) | achieved: median ratio (range) | detected vs previous run, no history | with history guard | vs base in the same run |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in det.items():
        rng_ = d["achieved_range"] or [None, None]
        rq = d["achieved_p25_range"] or [None, None]
        lines.append(f"| {_pct(d['nominal'], 0)} | {_pct(d['achieved_p25'])} ({_pct(rq[0])} .. {_pct(rq[1])})"
                     f" | {_pct(d['achieved_median'])} ({_pct(rng_[0])} .. {_pct(rng_[1])})"
                     f" | {_rate(d['vs_previous'])} | {_rate(d['vs_previous_history'])} | {_rate(d['vs_same_run'])} |")
    thr = ev["settings"]["threshold"]
    for name, d in det.items():
        a = d.get("achieved_p25")
        if a is not None and a < thr * 1.2:
            lines += ["", f"The nominal {_pct(d['nominal'], 0)} model achieved {_pct(a)} here, at or"
                          f" below the {_pct(thr, 0)} threshold (minimum effect) itself: the rule"
                          f" calls a change `slower` only when its estimate reaches the threshold,"
                          f" so a slowdown of about the threshold is flagged at most about half of"
                          f" the time by construction, and one below it should not be."]
    mr = ev.get("median_rule")
    if mr:
        m10 = mr["detection"].get("slow10", {})
        lines += [
            "",
            f"The same runs judged on the median instead (the rule before this benchmark):"
            f" false positives {_rate(mr['same_successive'])} run vs previous run,"
            f" {_rate(mr['same_successive_history'])} with history,"
            f" {_rate(mr['same_all_pairs'])} over all pairs;"
            f" 10% slowdown detected {_rate(m10['vs_previous'])} vs previous run"
            f" ({_rate(m10['vs_previous_history'])} with history);"
            f" 5%: {_rate(mr['detection']['slow05']['vs_previous'])}.",
        ]
    lines += [
        "",
        "Why the verdict is taken on the fast quartile: the first full run of this benchmark"
        " (2026-11-27, 40 rounds, load average 1.7-5.3 from other sessions' test suites) judged"
        " on the median, as `compare` then did. It found 5.1% false `slower` verdicts run vs"
        " previous run (4.3% with the history guard, 3.1% over all 1560 pairs) and caught only"
        " 89.7% of the 10% slowdowns. Every false alarm was one run whose median had been raised"
        " 6-13% by a burst of other load while its 25th percentile stayed within 2.3% of the"
        " typical one; most misses were the mirror image (a baseline run raised by load). Over all 1560"
        " same-vs-same pairs the p25 ratio never left +-2.8%, while the 10% model's p25 ratio"
        " never fell below +8.6%. Load only adds time, a real slowdown moves every invoke, so"
        " `compare` now decides on the 25th percentile (same rule: effect >= threshold, 95%"
        " interval clear of 1, Mann-Whitney on block p25s with p < alpha; the history guard on"
        " the log p25) and still reports the median next to it. Re-judged with that rule the"
        " same runs gave 0 false positives and 97% detection of 10%; the numbers above are from"
        " a fresh run made after the change. Nothing else was tuned (threshold 5%, alpha 0.01,"
        " blocks and history guard as before); `--analyze DIR --quantile 0.5` re-judges kept"
        " runs with the median rule.",
    ]
    lines += [
        "",
        "A lower threshold trades false alarms for sensitivity on a machine this busy: the"
        " 2026-11-27 07:42 runs re-judged with `--threshold 0.03` (`--analyze DIR --threshold"
        " 0.03`) gave 2.6% (2/78) false `slower` verdicts run vs previous run and 2.2% (35/1560)"
        " over all pairs, while catching 87% of the 4% slowdowns. 5% stays the default; a quiet,"
        " dedicated board can afford less (measure it with this script on that board's own runs).",
    ]
    lines += [
        "",
        f"Goals (<= 1% false positives, >= 95% detection of a 10% slowdown): without history"
        f" FP {fp_ok}, detection {det_ok}; with the history guard FP {fp_h_ok}, detection {det_h_ok}."
        f" Resolution: with {fp['n']} run-vs-previous comparisons, 0 false positives only bounds"
        f" the rate below {_pct(3.0 / fp['n'] if fp['n'] else None)} (95%, rule of three); the"
        f" {ev['same_all_pairs']['n']} all-pairs comparisons are not independent (each run is in"
        f" many pairs) but cover {ev['rounds'] * len(BASES)} runs.",
    ]
    return "\n".join(lines) + "\n"


SECTION = "## Regression detector"


def write_doc_section(path: Path, body: str) -> None:
    """Replace (or append) the "## Regression detector" section of docs/benchmarks.md, leaving
    the other sections alone. `body` is everything under the heading."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{SECTION}\n\n{body.strip()}\n"
    pat = re.compile(rf"^{re.escape(SECTION)}\s*\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        text = pat.sub(lambda _m: block + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


# ---- main ----------------------------------------------------------------------------------
def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 40; 10 with --quick)")
    ap.add_argument("--runs", type=int, default=50, help="--runs of each edge-bench run (default 50)")
    ap.add_argument("--min-seconds", type=float, default=None,
                    help="--min-seconds of each run (default 1.0, the CLI default; 0.5 with --quick)")
    ap.add_argument("--quick", action="store_true", help="10 rounds of 0.5 s runs (~1.5 min)")
    ap.add_argument("--keep", metavar="DIR", default=None, help="keep models, store and manifest here")
    ap.add_argument("--analyze", metavar="DIR", default=None,
                    help="no measuring: re-evaluate the runs kept in DIR with the current detector")
    ap.add_argument("--threshold", type=float, default=None, help="override the detector threshold")
    ap.add_argument("--alpha", type=float, default=None, help="override the detector alpha")
    ap.add_argument("--quantile", type=float, default=None,
                    help="override the quantile the verdict is decided on (0.5 = the median)")
    ap.add_argument("--json", metavar="FILE", default=None, help="write all numbers as JSON")
    ap.add_argument("--write-doc", action="store_true",
                    help="write the results into docs/benchmarks.md (section '## Regression detector')")
    a = ap.parse_args(argv)
    rounds_n = a.rounds or (10 if a.quick else 40)
    min_s = a.min_seconds if a.min_seconds is not None else (0.5 if a.quick else 1.0)

    if a.analyze:
        work = Path(a.analyze)
        meta = json.loads((work / "manifest.json").read_text())
    else:
        work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="eb-detector-"))
        work.mkdir(parents=True, exist_ok=True)
        if (work / "bench.sqlite").exists():
            (work / "bench.sqlite").unlink()
        t_start = time.monotonic()
        busy = other_processes()
        print(f"calibrating extra layers for {', '.join(_pct(x, 0) for x in LEVELS)} ...", flush=True)
        pick, ratios = calibrate(LEVELS)
        models = {}
        for n in BASES:
            models[n] = work / f"{n}.tflite"
            models[n].write_bytes(build_model(0))
        for lv in LEVELS:
            n = f"slow{int(round(lv * 100)):02d}"
            models[n] = work / f"{n}.tflite"
            models[n].write_bytes(build_model(pick[lv]))
            print(f"  {n}: {pick[lv]} extra layers (in-process calibration {_pct(ratios[pick[lv]] - 1)})")
        meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": machine_facts(), "quick": a.quick, "runs": a.runs, "min_seconds": min_s,
                "models": {k: str(v) for k, v in models.items()},
                "calibration": {"pick": {str(k): v for k, v in pick.items()},
                                "ratios": {str(k): v for k, v in ratios.items()}},
                "busy_start": busy, "rounds": []}
        rng = random.Random(SEED)
        for i in range(rounds_n):
            r = run_round(work, i, models, a.runs, min_s, rng)
            meta["rounds"].append(r)
            print(f"round {i + 1}/{rounds_n}: {r['seconds']:.1f} s, load {r['load1']:.2f}", flush=True)
        loads = [r["load1"] for r in meta["rounds"]]
        meta.update(load_min=min(loads), load_max=max(loads), load_mean=sum(loads) / len(loads),
                    busy_end=other_processes(), minutes=(time.monotonic() - t_start) / 60)
        (work / "manifest.json").write_text(json.dumps(meta, indent=1))

    if a.quantile is not None:
        from edge_bench import compare as C
        C.DECISION_QUANTILE = a.quantile
    rounds = load_rounds(work, meta)
    ev = evaluate(rounds, LEVELS, threshold=a.threshold, alpha=a.alpha)
    from edge_bench import compare as C
    q_now = C.DECISION_QUANTILE
    if q_now != 0.5:  # the same runs judged on the median, for comparison
        C.DECISION_QUANTILE = 0.5
        try:
            ev["median_rule"] = evaluate(rounds, LEVELS, threshold=a.threshold, alpha=a.alpha)
        finally:
            C.DECISION_QUANTILE = q_now
    md = report_markdown(ev, meta)
    print()
    print(md)
    if a.json:
        Path(a.json).write_text(json.dumps({"meta": meta, "evaluation": ev}, indent=1))
    if a.write_doc:
        write_doc_section(REPO / "docs" / "benchmarks.md", md)
        print(f"wrote {REPO / 'docs' / 'benchmarks.md'} ({SECTION})")
    if not a.keep and not a.analyze:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
