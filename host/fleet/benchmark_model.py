"""`runner: benchmark_model`: TFLite's official native benchmark binary instead of the Python agent.

The user downloads benchmark_model for the phone's ABI once (TFLite's nightly
`android_aarch64_benchmark_model` or a bazel build) and points `benchmark_model:` at it in
devices.yaml; it is pushed content-addressed like any blob (bin/<sha256>), made executable, and
run through the device's transport (taskset prefix included).

This module:
* maps edge-bench run options to its flags (`build_flags`),
* parses its output (`parse_output`) in every format seen in TFLite's source and docs: the
  `INFO: ` prefixed logs of current builds, the unprefixed ones of older builds, logcat lines
  (`I tflite  : ...`), the `count=... first=... curr=... min=... max=... avg=... std=...` stat
  lines (with `p5= median= p95=` in newer builds, `count=1 curr=N` / `(all same)` when every
  sample was equal, scientific notation such as `1.04176e+06`), the final
  `Inference timings in us: Init: .., First inference: .., Warmup (avg): .., Inference (avg): ..`
  line (and the older `Average inference timings in us: Warmup: .., Init: .., Inference: ..`),
  the memory footprint lines, and the op-profiling tables (Run Order, Top by Computation Time,
  Summary by node type; for initialization and for regular runs),
* turns a parse into the same result fields the agent's results get (`result_fields`,
  `result_record`), and
* runs one task on a device (`deploy_binary`, `run_task`).

benchmark_model prints NO per-run samples, only its own summary. Results say so: `samples_ms` is
empty, `samples_source` is "benchmark_model-summary", latency mean/std/min/max (and median/p95
when the binary prints them) come from that summary, p90/p99 are null, and host-side statistics
that need samples (bootstrap CI, comparisons with real statistics) are not available for them.
"""
from __future__ import annotations

import math
import posixpath
import re
import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..errors import DeviceBusy, DeviceError, EdgeBenchError, RemoteCommandError, detail_of

SAMPLES_SOURCE = "benchmark_model-summary"

#: edge-bench option -> benchmark_model flag
FLAGS = {
    "graph": "--graph", "threads": "--num_threads", "runs": "--num_runs",
    "warmup_runs": "--warmup_runs", "warmup_min_secs": "--warmup_min_secs",
    "min_seconds": "--min_secs", "max_seconds": "--max_secs", "xnnpack": "--use_xnnpack",
    "gpu": "--use_gpu", "nnapi": "--use_nnapi", "op_profiling": "--enable_op_profiling",
    "peak_memory": "--report_peak_memory_footprint",
}


def _b(v: bool) -> str:
    return "true" if v else "false"


def _num(v: float) -> str:
    return repr(float(v)).rstrip("0").rstrip(".") if float(v) != int(v) else str(int(v))


def build_flags(graph: str, threads: int, runs: int, warmup: int, min_seconds: float,
                max_seconds: float, xnnpack: Optional[bool] = True, gpu: bool = False,
                nnapi: bool = False, op_profiling: bool = False, peak_memory: bool = False,
                exact_warmup: bool = True, extra: Sequence[str] = ()) -> List[str]:
    """benchmark_model flags for one task.

    `warmup` is edge-bench's count of warmup runs AFTER the first inference; benchmark_model's
    warmup phase includes the first inference, hence --warmup_runs=warmup+1. Its warmup phase
    also runs for at least --warmup_min_secs (0.5 s by default); exact_warmup sets it to 0 so
    the count is honoured (the flag exists since 2020 builds; pass exact_warmup=False for older
    binaries). xnnpack=None leaves the binary's default (XNNPACK on in current builds);
    False passes --use_xnnpack=false, which the docs say forces the non-delegated CPU kernels."""
    if threads < 1 and threads != -1:
        raise ValueError("threads must be >= 1 (or -1 for the platform default)")
    f = [f"--graph={graph}", f"--num_threads={int(threads)}", f"--num_runs={int(runs)}",
         f"--warmup_runs={int(warmup) + 1}", f"--min_secs={_num(min_seconds)}",
         f"--max_secs={_num(max_seconds)}"]
    if exact_warmup:
        f.append("--warmup_min_secs=0")
    if xnnpack is not None:
        f.append(f"--use_xnnpack={_b(xnnpack)}")
    if gpu:
        f.append("--use_gpu=true")
    if nnapi:
        f.append("--use_nnapi=true")
    if op_profiling:
        f.append("--enable_op_profiling=true")
    if peak_memory:
        f.append("--report_peak_memory_footprint=true")
    return f + list(extra)


# --- parsing --------------------------------------------------------------------------------
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
        return r
    r.update(fields)
    r["median_ci_ms"] = None   # needs raw samples, which benchmark_model does not print
    r["runtime"] = runtime or {"name": "benchmark_model", "version": None, "xnnpack": None,
                               "threads": task.threads}
    r["device_info"] = device_info
    return r


# --- binaries ---------------------------------------------------------------------------------
_ELF_ABI = {(2, 0xB7): "arm64-v8a", (1, 0x28): "armeabi-v7a", (2, 0x3E): "x86_64",
            (1, 0x03): "x86", (2, 0xF3): "riscv64"}


def elf_abi(path: Path) -> Optional[str]:
    """The Android ABI of an ELF executable (arm64-v8a, armeabi-v7a, x86_64, x86), None when the
    file is not ELF (e.g. a script)."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    ei_class, ei_data = head[4], head[5]
    machine = struct.unpack("<H" if ei_data == 1 else ">H", head[18:20])[0]
    return _ELF_ABI.get((ei_class, machine), f"elf{32 if ei_class == 1 else 64}-machine-{machine:#x}")


def check_local_binary(device: str, path: Optional[str]) -> Path:
    if not path:
        raise DeviceError(device, "runner benchmark_model needs `benchmark_model:` (a host path to"
                          " TFLite's benchmark_model binary for this phone)",
                          hint="download android_aarch64_benchmark_model from TFLite's benchmark tool"
                               " page (or build it with bazel) and set benchmark_model: PATH")
    p = Path(path).expanduser()
    if not p.is_file():
        raise DeviceError(device, f"benchmark_model {path} does not exist",
                          hint="point benchmark_model: at the downloaded binary")
    return p


def check_abi(device: str, binary: Path, abilist: Sequence[str]) -> Optional[str]:
    """Raise when an ELF binary's ABI is not one the phone runs (arm64 binary on a 32-bit phone)."""
    abi = elf_abi(binary)
    if abi is None or not abilist:
        return abi
    if abi not in abilist:
        raise DeviceError(device, f"ABI mismatch: {binary.name} is an {abi} binary but the phone"
                          f" runs {', '.join(abilist)}",
                          hint=f"use the benchmark_model build for {abilist[0]}"
                               " (android_arm for armeabi-v7a, android_aarch64 for arm64-v8a)")
    return abi


def deploy_binary(transport: Any, workdir: str, local: Path) -> str:
    """Push the binary content-addressed (bin/<sha256>), check its ABI, chmod 755. -> remote path."""
    from .deploy import Blob, ensure_blobs, remote_path
    name = transport.device.name
    abilist = transport.abilist() if hasattr(transport, "abilist") else []
    check_abi(name, local, abilist)
    blob = Blob.for_file(local, prefix="bin/")
    ensure_blobs(transport, workdir, [blob])
    remote = remote_path(workdir, blob)
    res = transport.run(["chmod", "755", remote], timeout=30)
    if res.exit_code != 0:
        raise RemoteCommandError(name, f"chmod 755 {remote}", res.exit_code, res.stderr,
                                 hint="the workdir must be on an exec-capable filesystem:"
                                      " /data/local/tmp is, /sdcard is not")
    return remote


BUSY_EXIT = 75
BUSY_MARKER = "EDGE_BENCH_DEVICE_BUSY"
LOCKED_SCRIPT = (
    'lock=$0\n'
    'if command -v flock >/dev/null 2>&1; then\n'
    '  exec 9>>"$lock" || exit 1\n'
    '  flock -n 9 || { echo ' + BUSY_MARKER + '; exit ' + str(BUSY_EXIT) + '; }\n'
    'fi\n'
    'exec "$@" 2>&1\n')


def run_task(transport: Any, task: Any, binary_remote: str, model_remote: str, *,
             gpu: bool = False, nnapi: bool = False, op_profiling: bool = False,
             peak_memory: bool = False, exact_warmup: bool = True,
             idle_timeout: Optional[float] = None, device_info: Optional[Dict[str, Any]] = None,
             extra: Sequence[str] = (), lock_path: Optional[str] = None) -> Dict[str, Any]:
    """Run benchmark_model for one runner.Task and return its result record.

    Runs `sh -c 'exec "$0" "$@" 2>&1' BIN FLAGS...` so its log (stderr in current builds) and
    stdout arrive as one ordered stream; the transport adds the device's taskset prefix."""
    dev = transport.device
    tm = task.timing
    flags = build_flags(model_remote, task.threads, tm.runs, tm.warmup, tm.min_seconds,
                        tm.max_seconds, xnnpack=dev.xnnpack, gpu=gpu, nnapi=nnapi,
                        op_profiling=op_profiling, peak_memory=peak_memory,
                        exact_warmup=exact_warmup, extra=extra)
    argv = ["sh", "-c", 'exec "$0" "$@" 2>&1', binary_remote, *flags]
    if lock_path:
        # the same lock file the agent flocks: one benchmark at a time on the device, whichever
        # runner. fd-form flock is what both util-linux and Android's toybox understand.
        argv = ["sh", "-c", LOCKED_SCRIPT, lock_path, binary_remote, *flags]
    proc = transport.start(argv)
    out_lines = list(proc.lines(idle_timeout=idle_timeout or dev.idle_timeout_s))
    code = proc.wait(60)
    text = "\n".join(out_lines)
    if code == BUSY_EXIT and BUSY_MARKER in text + proc.stderr_tail(500):
        raise DeviceBusy(dev.name, f"device {dev.name} is busy: another benchmark holds"
                                   f" {lock_path}",
                         hint="it runs one benchmark at a time; try again when it is done")
    if code != 0:
        tail = "\n".join(out_lines[-8:]) + proc.stderr_tail(500)
        hint = None
        low = tail.lower()
        if code in (126, 127) or "not executable" in low or "permission denied" in low \
                or "no such file" in low:
            hint = ("benchmark_model is missing or cannot execute on this phone: check the ABI"
                    " (arm64-v8a vs armeabi-v7a) and that the workdir allows exec (/data/local/tmp)")
        raise RemoteCommandError(dev.name, f"benchmark_model --graph={posixpath.basename(model_remote)}",
                                 code, tail, hint=hint)
    parsed = parse_output(text)
    rt = {"name": "benchmark_model", "version": None,
          "xnnpack": dev.xnnpack and not gpu and not nnapi, "threads": task.threads,
          "delegate": "gpu" if gpu else ("nnapi" if nnapi else ("xnnpack" if dev.xnnpack else "cpu"))}
    return result_record(dev.name, task, parsed, device_info=device_info, runtime=rt)


def run_tasks(transport: Any, tasks: Sequence[Any], emit: Any, *, workdir: Optional[str] = None,
              cancelled: Any = lambda: False, status: Any = lambda text: None,
              **options: Any) -> None:
    """A device's share of a run with `runner: benchmark_model`, for runner.DeviceRun to call
    in place of the agent: deploy the binary once, push each model content-addressed (sha256
    checked on the device), run the tasks one at a time and emit one result record per task the
    moment it is known, as emit(task, record). A failing model (bad graph, delegate error) is that task's error result;
    a transport failure (phone gone) propagates so the caller fails the remaining tasks."""
    from .deploy import Blob, ensure_blobs, remote_path
    from ..errors import TransportError
    from ..results.record import error_result
    dev = transport.device
    wd = workdir or transport.resolve_workdir(dev.workdir)
    binary = deploy_binary(transport, wd, check_local_binary(dev.name, dev.benchmark_model))
    info = transport.facts() if hasattr(transport, "facts") else None
    for i, task in enumerate(tasks):
        if cancelled():
            return
        status(f"running {i}/{len(tasks)}")
        art = task.artifact
        blob = Blob.for_file(art.path)
        ensure_blobs(transport, wd, [blob])
        try:
            rec = run_task(transport, task, binary, remote_path(wd, blob), device_info=info,
                           lock_path=posixpath.join(wd, "lock"), **options)
        except TransportError:
            raise
        except EdgeBenchError as e:
            rec = error_result(dev.name, task, e.detail(), detail=detail_of(e))
        emit(task, rec)
    status(f"running {len(tasks)}/{len(tasks)}")


__all__ = ["FLAGS", "run_tasks", "SAMPLES_SOURCE", "build_flags", "parse_output", "parse_stat", "result_fields",
           "result_record", "elf_abi", "check_abi", "check_local_binary", "deploy_binary", "run_task",
           "strip_prefix", "EdgeBenchError"]
