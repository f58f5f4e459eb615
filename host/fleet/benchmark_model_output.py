"""Parsing benchmark_model's output into edge-bench result fields (see benchmark_model.py for
the formats handled: INFO:-prefixed, unprefixed and logcat logs, stat lines, timing summaries,
memory footprint and op-profiling tables)."""
from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Optional

from ..errors import error_detail

SAMPLES_SOURCE = "benchmark_model-summary"


_PREFIXES = [
    re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+\S+\s*:\s?"),   # logcat threadtime
    re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+[VDIWEF]/\S+\s*\(\s*\d+\):\s?"),         # logcat time
    re.compile(r"^[VDIWEF]/\S+\s*\(\s*\d+\):\s?"),                                          # logcat brief
    re.compile(r"^(INFO|WARN|WARNING|ERROR|VERBOSE|DEBUG):\s?"),                            # tools/logging.h
]
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STAT = re.compile(r"^count=(\d+)(.*)$")
_KV = re.compile(r"(\w+)=(" + _NUM + r")(\(all same\))?")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations and at least (" + _NUM
                      + r") seconds but terminate if exceeding (" + _NUM + r") seconds")
_TIMINGS = re.compile(r"(?:Average )?[Ii]nference timings in us:\s*(.*)$")
_MEM_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\):\s*init=(" + _NUM
                        + r")\s+overall=(" + _NUM + r")")
_MEM_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*(" + _NUM + ")")
_MODEL_SIZE = re.compile(r"The input model file size \(MB\):\s*(" + _NUM + ")")
_INIT_SESSION = re.compile(r"Initialized session in (" + _NUM + r")\s*ms")
_PARAM = re.compile(r"^([^:\[\]]+):\s*\[(.*)\]\s*$")
_TABLE_TITLE = re.compile(r"^=+\s*(.+?)\s*=+$")
_NODES = re.compile(r"^Number of nodes executed:\s*(\d+)")

_COLS = {"node type": "node_type", "start": "start_ms", "first": "first_ms", "avg ms": "avg_ms",
         "%": "pct", "avg %": "pct", "cdf%": "cdf_pct", "cdf %": "cdf_pct", "mem kb": "mem_kb",
         "times called": "times_called", "name": "name", "count": "count"}


def strip_prefix(line: str) -> str:
    s = line.strip()
    for rx in _PREFIXES:
        m = rx.match(s)
        if m:
            s = s[m.end():]
            break
    return s.strip()


def parse_stat(line: str) -> Optional[Dict[str, Any]]:
    """A `count=N first=.. curr=.. min=.. max=.. avg=.. std=.. [p5=.. median=.. p95=..]` line
    (tensorflow Stat::OutputToStream), values in microseconds. `count=N curr=X(all same)` and
    `count=1 curr=X` mean every sample was X."""
    m = _STAT.match(line.strip())
    if not m:
        return None
    out: Dict[str, Any] = {"count": int(m.group(1))}
    all_same = False
    for k, v, same in _KV.findall(m.group(2)):
        out[k] = float(v)
        all_same = all_same or bool(same)
    if out["count"] > 0 and "curr" in out and "avg" not in out:
        all_same = True
    if all_same and "curr" in out:
        for k in ("first", "min", "max", "avg", "median", "p5", "p95"):
            out.setdefault(k, out["curr"])
        out.setdefault("std", 0.0)
    return out


def _cell(v: str) -> Any:
    v = v.strip()
    if v.endswith("%"):
        try:
            return float(v[:-1])
        except ValueError:
            return v
    if re.fullmatch(r"[-+]?\d+", v):
        return int(v)
    if re.fullmatch(_NUM, v):
        return float(v)
    return v


def _parse_table(header: str, rows: List[str]) -> List[Dict[str, Any]]:
    cols = [c.strip() for c in re.findall(r"\[([^\]]+)\]", header)]
    keys = [_COLS.get(c.lower(), re.sub(r"\W+", "_", c.lower()).strip("_")) for c in cols]
    out = []
    for row in rows:
        cells = [c.strip() for c in re.split(r"\t+|\s{2,}", row.strip()) if c.strip() != ""]
        if not cells:
            continue
        if len(cells) > len(keys) and keys and keys[-1] == "name":
            cells = cells[: len(keys) - 1] + ["  ".join(cells[len(keys) - 1:])]
        rec = {k: _cell(c) for k, c in zip(keys, cells)}
        if "name" in rec:
            rec["name"] = str(rec["name"])
        if "node_type" in rec:
            rec["node_type"] = str(rec["node_type"])
        out.append(rec)
    return out


def _table_key(title: str) -> str:
    t = title.lower()
    if "run order" in t:
        return "run_order"
    if "top by computation" in t:
        return "top_by_computation_time"
    if "top by memory" in t:
        return "top_by_memory"
    if "summary by node type" in t:
        return "summary_by_node_type"
    return re.sub(r"\W+", "_", t).strip("_")


def parse_output(text: str) -> Dict[str, Any]:
    """Everything benchmark_model printed, as numbers. Times in microseconds as printed
    (see result_fields for milliseconds). Missing items are None / absent, never an error."""
    raw_lines = text.splitlines()
    lines = [strip_prefix(raw) for raw in raw_lines]
    out: Dict[str, Any] = {"params": {}, "phases": [], "timings_us": {}, "memory_mb": {},
                           "model_size_mb": None, "init_session_ms": None, "op_profile": None,
                           "errors": []}
    pending_phase: Optional[Dict[str, Any]] = None
    profile: Dict[str, Dict[str, Any]] = {}
    section = "regular"
    i = 0
    n = len(lines)
    while i < n:
        s = lines[i]
        raw = raw_lines[i]
        i += 1
        if not s:
            continue
        if raw.lstrip().startswith("ERROR") or re.search(r"\bE tflite\b|E/tflite", raw):
            out["errors"].append(s)
        m = _RUNNING.search(s)
        if m:
            pending_phase = {"min_runs": int(m.group(1)), "min_secs": float(m.group(2)),
                             "max_secs": float(m.group(3))}
            continue
        st = parse_stat(s)
        if st is not None:
            ph = dict(pending_phase or {})
            ph.update(st)
            out["phases"].append(ph)
            pending_phase = None
            continue
        m = _TIMINGS.search(s)
        if m:
            for part in m.group(1).split(","):
                if ":" in part:
                    k, v = part.rsplit(":", 1)
                    try:
                        out["timings_us"][k.strip()] = float(v.strip())
                    except ValueError:
                        pass
            continue
        m = _MEM_DELTA.search(s)
        if m:
            out["memory_mb"]["init"] = float(m.group(1))
            out["memory_mb"]["overall"] = float(m.group(2))
            continue
        m = _MEM_PEAK.search(s)
        if m:
            out["memory_mb"]["peak"] = float(m.group(1))
            continue
        m = _MODEL_SIZE.search(s)
        if m:
            out["model_size_mb"] = float(m.group(1))
            continue
        m = _INIT_SESSION.search(s)
        if m:
            out["init_session_ms"] = float(m.group(1))
            continue
        if "Profiling Info for Benchmark Initialization" in s:
            section = "init"
            continue
        if "Profiling Info for Regular Benchmark Runs" in s:
            section = "regular"
            continue
        m = _TABLE_TITLE.match(s)
        if m and i < n and "[" in lines[i]:
            header = lines[i]
            i += 1
            rows = []
            while i < n and lines[i].strip() and not _TABLE_TITLE.match(lines[i].strip()):
                rows.append(lines[i])
                i += 1
            profile.setdefault(section, {})[_table_key(m.group(1))] = _parse_table(header, rows)
            continue
        if s.startswith("Timings (microseconds):"):
            st = parse_stat(s.split(":", 1)[1])
            if st is not None:
                profile.setdefault(section, {})["timings_us"] = st
            continue
        m = _NODES.match(s)
        if m:
            profile.setdefault(section, {})["nodes_executed"] = int(m.group(1))
            continue
        m = _PARAM.match(s)
        if m and len(out["params"]) < 200:
            out["params"][m.group(1).strip()] = m.group(2)
    # the stat lines: the first is the warmup phase, the last the regular runs (op-profiling
    # "Timings (microseconds): count=..." lines do not start with count= and are skipped)
    out["warmup"] = out["phases"][0] if len(out["phases"]) >= 2 else None
    out["inference"] = out["phases"][-1] if out["phases"] else None
    if out["inference"] is None and (profile.get("regular") or {}).get("timings_us"):
        # old builds printed no stat lines, only the profiler's per-run totals of regular runs
        out["inference"] = profile["regular"]["timings_us"]
    out["op_profile"] = profile or None
    return out


def _ms(us: Optional[float]) -> Optional[float]:
    return None if us is None or not math.isfinite(us) else us / 1000.0


def result_fields(parsed: Dict[str, Any]) -> Dict[str, Any]:
    """The result-record fields (milliseconds) from a parse: the same names as agent results."""
    t = parsed.get("timings_us") or {}
    inf = parsed.get("inference") or {}
    wu = parsed.get("warmup") or {}
    init_us = t.get("Init")
    init_ms = _ms(init_us) if init_us is not None else parsed.get("init_session_ms")
    first_us = t.get("First inference", wu.get("first"))
    warm_avg_us = t.get("Warmup (avg)", t.get("Warmup", wu.get("avg")))
    # the tool's own summary line is the mean; the stat line (or, in old builds, the profiler's
    # per-run totals) gives std/min/max and, in new builds, median/p95
    mean_us = t.get("Inference (avg)", t.get("Inference", inf.get("avg")))
    std_us = inf.get("std")
    mean = _ms(mean_us)
    std = _ms(std_us)
    latency = {"mean": mean, "std": std, "min": _ms(inf.get("min")), "median": _ms(inf.get("median")),
               "p90": None, "p95": _ms(inf.get("p95")), "p99": None, "max": _ms(inf.get("max")),
               "cov": (std / mean) if (std is not None and mean) else None}
    mem = parsed.get("memory_mb") or {}
    wcount = wu.get("count")
    return {
        "init_ms": init_ms,
        "first_inference_ms": _ms(first_us),
        "warmup": (wcount - 1) if wcount else None,    # benchmark_model's warmup includes the first
        "warmup_avg_ms": _ms(warm_avg_us),
        "runs": inf.get("count"),
        "latency_ms": latency,
        "samples_ms": [],
        "samples_source": SAMPLES_SOURCE,
        "memory_mb": {"init": mem.get("init"), "overall": mem.get("overall"), "peak": mem.get("peak")},
        "peak_rss_mb": mem.get("peak"),
        "model_size_mb": parsed.get("model_size_mb"),
        "op_profile": parsed.get("op_profile"),
    }


def result_record(device: str, task: Any, parsed: Dict[str, Any], device_info: Optional[Dict[str, Any]] = None,
                  runtime: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A full "edge-bench/run/1" result for a runner.Task from a benchmark_model parse."""
    from ..results.record import base_result
    r = base_result(device, task)
    fields = result_fields(parsed)
    if fields["runs"] is None or fields["latency_ms"]["mean"] is None:
        r["status"] = "error"
        errs = parsed.get("errors") or []
        r["error"] = "benchmark_model printed no timing summary" + (f": {errs[-1]}" if errs else "")
        r["error_detail"] = error_detail("NoTimingSummary", r["error"])
        return r
    from ..results.record import sample_problem
    lat = fields["latency_ms"]
    why = sample_problem([v for v in (lat["mean"], lat["median"], lat["min"]) if v is not None])
    if why or not fields["runs"] or fields["runs"] < 1:
        r["status"] = "error"
        r["error"] = (why or "the device reported no timed runs").replace("sample(s)", "figure(s)")
        r["error_detail"] = error_detail("BadSamples", r["error"])
        return r
    r.update(fields)
    r["median_ci_ms"] = None   # needs raw samples, which benchmark_model does not print
    r["runtime"] = runtime or {"name": "benchmark_model", "version": None, "xnnpack": None,
                               "threads": task.threads}
    r["device_info"] = device_info
    return r
