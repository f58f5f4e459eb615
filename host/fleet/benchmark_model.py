"""`runner: benchmark_model`: TFLite's official native benchmark binary instead of the Python agent.

The user downloads benchmark_model for the phone's ABI once (TFLite's nightly
`android_aarch64_benchmark_model` or a bazel build) and points `benchmark_model:` at it in
devices.yaml; it is pushed content-addressed like any blob (bin/<sha256>), made executable, and
run through the device's transport (taskset prefix included).

This module:
* maps edge-bench run options to its flags (`build_flags`),
* parses its output (`parse_output`, in benchmark_model_output.py) in every format seen in TFLite's source and docs: the
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

import posixpath
import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from edge_bench_agent.protocol import LOCK_NAME
from ..errors import DeviceError, EdgeBenchError, RemoteCommandError
from ..errors import DeviceBusy, detail_of  # noqa: I001 - kept apart: a merge-friendly line
from .benchmark_model_output import (SAMPLES_SOURCE, parse_output, parse_stat, result_fields,
                                     result_record, strip_prefix)


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
#: Runs "$@" (the binary and its flags) with its stderr on stdout, while a watcher reads the
#: controller's stdin (kept open for the whole task, as the agent's job does): EOF there means
#: the controller is gone (kill -9, a dropped link), and the watcher stops the binary, TERM then
#: KILL, so no benchmark is left timing on a phone nobody waits for. The watcher holds neither
#: the output (the session would wait for it) nor the device lock (fd 9); once the binary ends,
#: the watcher is stopped and its `cat` ends at the stdin's EOF the controller then sends.
WATCHED_RUN = (                 # sh -c WATCHED_RUN NAME BIN FLAGS...
    'exec 3<&0 </dev/null\n'
    '"$@" 2>&1 &\n'
    'pid=$!\n'
    '{ cat >/dev/null; kill -TERM "$pid"; sleep 2; kill -KILL "$pid"; } <&3 >/dev/null 2>&1 9>&- &\n'
    'watch=$!\n'
    'exec 3<&-\n'
    'wait "$pid"; rc=$?\n'
    'kill "$watch" 2>/dev/null\n'
    'exit "$rc"\n')
LOCKED_SCRIPT = (               # sh -c LOCKED_SCRIPT LOCK BIN FLAGS...
    'lock=$0\n'
    'if [ -L "$lock" ]; then echo "the device lock $lock is a symlink; refusing to follow it'
    ' (remove it)" >&2; exit 1; fi\n'
    'if command -v flock >/dev/null 2>&1; then\n'
    '  exec 9>>"$lock" || exit 1\n'
    '  flock -n 9 || { echo ' + BUSY_MARKER + '; exit ' + str(BUSY_EXIT) + '; }\n'
    'fi\n' + WATCHED_RUN)


def run_task(transport: Any, task: Any, binary_remote: str, model_remote: str, *,
             delegate: str = "", op_profiling: bool = False,
             peak_memory: bool = False, exact_warmup: bool = True,
             idle_timeout: Optional[float] = None, device_info: Optional[Dict[str, Any]] = None,
             extra: Sequence[str] = (), lock_path: Optional[str] = None) -> Dict[str, Any]:
    """Run benchmark_model for one runner.Task and return its result record.

    Runs the binary under `sh -c` so its log (stderr in current builds) and stdout arrive as
    one ordered stream, under the device lock when `lock_path` is given, and stopped on the
    device if the controller goes away (WATCHED_RUN); the transport adds the device's taskset
    prefix."""
    from .bm_accel import accelerator_flags
    dev = transport.device
    tm = task.timing
    accel = getattr(task, "accelerator", "cpu")
    gpu, nnapi, accel_extra, used = accelerator_flags(accel, getattr(task, "accel", None),
                                                      delegate)
    extra = [*accel_extra, *extra]
    flags = build_flags(model_remote, task.threads, tm.runs, tm.warmup, tm.min_seconds,
                        tm.max_seconds, xnnpack=dev.xnnpack, gpu=gpu, nnapi=nnapi,
                        op_profiling=op_profiling, peak_memory=peak_memory,
                        exact_warmup=exact_warmup, extra=extra)
    argv = ["sh", "-c", WATCHED_RUN, "edge-bench-benchmark_model", binary_remote, *flags]
    if lock_path:
        # the same lock file the agent flocks: one benchmark at a time on the device, whichever
        # runner. fd-form flock is what both util-linux and Android's toybox understand.
        argv = ["sh", "-c", LOCKED_SCRIPT, lock_path, binary_remote, *flags]
    proc = transport.start(argv, stdin=b"", keep_stdin_open=True)
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
    accelerated = gpu or nnapi or bool(accel_extra)
    rt = {"name": "benchmark_model", "version": None,
          "xnnpack": dev.xnnpack and not accelerated, "threads": task.threads,
          "delegate": used if accel != "cpu" else "gpu" if gpu else
          ("nnapi" if nnapi else ("xnnpack" if dev.xnnpack else "cpu"))}
    rec = result_record(dev.name, task, parsed, device_info=device_info, runtime=rt)
    if accel != "cpu":  # what ran where, from the binary's own log: never assumed
        from .bm_accel import check, read_placement
        placement = read_placement(accel, text)
        bad = check(placement, task.accel)
        if bad is not None and rec.get("status") == "ok":  # its CPU timing is not the row's
            from ..errors import error_detail
            from ..results.record import error_result
            rec = error_result(dev.name, task, f"{bad[0]}: {bad[1]}",
                               detail=error_detail(bad[0], bad[1]))
        rec["placement"] = placement
    return rec


def run_tasks(transport: Any, tasks: Sequence[Any], emit: Any, *, workdir: Optional[str] = None,
              cancelled: Any = lambda: False, status: Any = lambda text: None,
              **options: Any) -> None:
    """A device's share of a run with `runner: benchmark_model`, for runner.DeviceRun to call
    in place of the agent: deploy the binary once, push each model content-addressed (sha256
    checked on the device), run the tasks one at a time and emit one result record per task the
    moment it is known, as emit(task, record). A failing model (bad graph, delegate error) is that task's error result;
    a transport failure (phone gone) propagates so the caller fails the remaining tasks."""
    from .deploy import Blob, check_workdir, ensure_blobs, remote_path
    from ..errors import TransportError
    from ..results.record import error_result
    dev = transport.device
    wd = check_workdir(transport, workdir or transport.resolve_workdir(dev.workdir))
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
                           lock_path=posixpath.join(wd, LOCK_NAME), **options)
        except TransportError:
            raise
        except EdgeBenchError as e:
            rec = error_result(dev.name, task, e.detail(), detail=detail_of(e))
        emit(task, rec)
    status(f"running {len(tasks)}/{len(tasks)}")


__all__ = ["FLAGS", "run_tasks", "SAMPLES_SOURCE", "build_flags", "parse_output", "parse_stat", "result_fields",
           "result_record", "elf_abi", "check_abi", "check_local_binary", "deploy_binary", "run_task",
           "strip_prefix", "EdgeBenchError"]
