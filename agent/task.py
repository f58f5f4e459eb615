"""One task in this (worker) process: verify files, open the interpreter, warm up, time, eval."""
from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

try:
    import numpy as np
except Exception:  # noqa: BLE001 - reported in hello / as NoRuntime, never a bare traceback
    np = None  # type: ignore[assignment]

from . import interference
from .accel import dispatch_ms, is_aot, open_accelerated
from .accel_spec import ACCELERATOR_ERROR, DELEGATE
from .delegate import check_placement, count_placement, load_external
from .facts import _safe, collect_device_info, cooling_devices, read_temp_c, throttled
from .output import emit, emit_error
from .placement import capture_fd2
from .protocol import AgentError, task_params
from .runtime import Runtime, load_runtime, numpy_major
from .safepath import fd_path, hash_fd, open_checked
from .tensors import (check_signature, dequantize, load_npz, match_arrays, model_inputs,
                      output_details, random_input, sample_for, signature_keys, signature_names,
                      tensor_info)


def resolve_path(workdir: str, path: str) -> str:
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.join(workdir, path)


def verify_file(workdir: str, spec: Any, what: str, keep: bool = False
                ) -> Tuple[str, str, int, Optional[bytes]]:
    """(a path to use, sha256, size, the bytes if `keep`) of a {"path", "sha256"} file, checked
    before use: opened once without following a symlink, a plain file of this user that no one
    else may write (safepath.open_checked), hashed through that descriptor. The path to use
    opens that same file (/proc/self/fd/N) where the system has one, so what was hashed is what
    is loaded even if someone renames another file into place afterwards."""
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
        raise AgentError("BadJob", "%s must be an object with a 'path' (and 'sha256'), got %r"
                         % (what, spec))
    path = resolve_path(workdir, spec["path"])
    fd = open_checked(path, what)   # stays open for the life of this worker process
    actual, size, data = hash_fd(fd, keep)
    expected = spec.get("sha256")
    if expected and str(expected).lower() != actual:
        raise AgentError("ChecksumMismatch", "%s file %s has sha256 %s, expected %s (a partial "
                         "or stale upload: push it again)" % (what, path, actual, expected))
    return fd_path(fd) or path, actual, size, data


def _npz(workdir: str, spec: Any, what: str) -> Dict[str, "np.ndarray"]:
    """An .npz job file, verified and read once (verify_file), as arrays."""
    path, _, _, data = verify_file(workdir, spec, what, keep=True)
    assert data is not None
    return load_npz(io.BytesIO(data), what, name=resolve_path(workdir, spec["path"]))


# --------------------------------------------------------------------------- one task

def _initial_shapes(interp: Any, first: Optional[List["np.ndarray"]], what: str,
                    shapes: Optional[Dict[str, List[int]]] = None) -> None:
    """Resize dynamic (-1) input dims: to the user sample's shape, else to the task's
    `input_shapes` for the input's tensor name, else to 1."""
    for k, d in enumerate(interp.get_input_details()):
        sig = d.get("shape_signature")
        if sig is None or not len(sig) or all(int(x) >= 0 for x in sig):
            continue
        wanted = (shapes or {}).get(str(d.get("name")))
        if first is not None:
            _, shape = sample_for(first[k], 0, d, what)
        elif wanted is not None:
            if len(wanted) != len(sig) or any(int(s) >= 0 and int(s) != w
                                              for s, w in zip(sig, wanted)):
                raise AgentError("BadJob", "input_shapes: %r does not fit input %r (shape %s, -1"
                                 " = any size)" % (wanted, d.get("name"), [int(x) for x in sig]))
            shape = list(wanted)
        else:
            shape = [1 if int(x) < 0 else int(x) for x in sig]
        interp.resize_tensor_input(int(d["index"]), shape)


def open_interpreter(rt: Runtime, path: str, threads: Optional[int], xnnpack: bool,
                     user_first: Optional[Dict[str, "np.ndarray"]],
                     signature: Optional[str] = None, name: Optional[str] = None,
                     shapes: Optional[Dict[str, List[int]]] = None,
                     delegates: Optional[List[Any]] = None,
                     on_made: Optional[Callable[[Any, str], None]] = None,
                     aot_ok: bool = False
                     ) -> Tuple[Any, float, Optional[List["np.ndarray"]]]:
    """(interpreter, init_ms, the user's input arrays matched to inputs): construct + allocate.
    `signature` (a SignatureDef key, None for the default naming) must exist in the model.
    `name`: the model file as messages show it (`path` may be /proc/self/fd/N); `shapes`: the
    sizes of dynamic input dims (the task's input_shapes). `delegates`: external ones, applied
    by the constructor; `on_made(interp, native log)` is called before allocation (the default
    delegates come then), where what the external ones took can be read (agent/delegate.py).
    `aot_ok`: a model compiled ahead of time for an NPU (DISPATCH_OP nodes, agent/accel.py
    is_aot) is returned unallocated (the CompiledModel runs it); without it, one clear error."""
    shown = name or path
    t0 = time.perf_counter_ns()
    try:
        interp, err, log = capture_fd2(lambda: rt.make(path, threads, xnnpack, delegates)) \
            if delegates else (rt.make(path, threads, xnnpack), None, "")
        if err is not None:
            raise err
        if on_made is not None:
            on_made(interp, log)
    except AgentError:
        raise
    except Exception as e:  # noqa: BLE001
        if delegates:  # the delegate's Prepare failed: the model never ran on it
            raise AgentError(ACCELERATOR_ERROR, "the delegate refused %s: %s: %s%s"
                             % (shown, type(e).__name__, " ".join(str(e).split())[:300],
                                "" if not log.strip() else " (%s)" % log.strip()
                                .splitlines()[-1][:200]))
        hint = ""
        if rt.name == "tflite-runtime" and numpy_major() >= 2:
            hint = " (tflite-runtime needs numpy<2; numpy %s is installed)" % np.__version__
        raise AgentError("ModelLoadError", "%s cannot load %s: %s: %s%s"
                         % (rt.name, shown, type(e).__name__, e, hint))
    check_signature(signature_keys(interp), signature, os.path.basename(shown))
    matched = None
    if user_first is not None:
        matched = match_arrays(user_first, model_inputs(interp, signature), "input")
    if is_aot(interp):  # its DISPATCH_OP runs only through the CompiledModel API
        if not aot_ok:
            raise AgentError("ModelLoadError", "%s is compiled ahead of time for an NPU (it "
                             "holds DISPATCH_OP): run it with --accelerator npu"
                             % os.path.basename(shown))
        return interp, (time.perf_counter_ns() - t0) / 1e6, matched
    try:
        _initial_shapes(interp, matched, "input", shapes)
        interp.allocate_tensors()
    except AgentError:
        raise
    except Exception as e:  # noqa: BLE001
        raise AgentError("ModelLoadError", "allocate_tensors failed for %s: %s: %s"
                         % (shown, type(e).__name__, e))
    return interp, (time.perf_counter_ns() - t0) / 1e6, matched


def set_inputs(interp: Any, matched: Optional[List["np.ndarray"]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for k, d in enumerate(interp.get_input_details()):
        if matched is not None:
            data, _ = sample_for(matched[k], 0, d, "input")
        else:
            data = random_input(d, rng)
        interp.set_tensor(int(d["index"]), data)


def timing_loop(invoke: Callable[[], Any], runs: int, min_seconds: float,
                max_seconds: Optional[float],
                max_runs: Optional[int] = None,
                clock: Callable[[], int] = time.perf_counter_ns) -> Tuple[List[int], str, float]:
    """(samples_ns, stopped_by, loop_s): time invoke() until >= runs samples AND >= min_seconds
    of summed samples; stop anyway once max_seconds of wall time passed or max_runs samples were
    taken (after >= 1 sample). Only invoke() itself is between the two clock reads. `clock`
    (nanoseconds) is injected by the tests (tests/test_timing_clock.py)."""
    min_ns = int(min_seconds * 1e9)
    max_ns = int(max_seconds * 1e9) if max_seconds is not None and max_seconds > 0 else -1
    cap = max_runs if max_runs is not None and max_runs > 0 else -1
    samples: List[int] = []
    append = samples.append
    n = 0
    total = 0
    stopped_by = "runs"
    start = clock()
    t1 = start
    while n < runs or total < min_ns:
        if n > 0:
            if max_ns >= 0 and t1 - start >= max_ns:
                stopped_by = "max_seconds"
                break
            if n == cap:
                stopped_by = "max_runs"
                break
        t0 = clock()
        invoke()
        t1 = clock()
        append(t1 - t0)
        total += t1 - t0
        n += 1
    if stopped_by == "runs" and n > runs:
        stopped_by = "min_seconds"
    return samples, stopped_by, (clock() - start) / 1e9


def _invoke_checked(interp: Any, what: str) -> Callable[[], Any]:
    def call() -> Any:
        try:
            return interp.invoke()
        except Exception as e:  # noqa: BLE001
            raise AgentError("InvokeError", "invoke() failed during %s: %s: %s"
                             % (what, type(e).__name__, e))
    return call


def run_eval(interp: Any, data: Dict[str, "np.ndarray"],
             signature: Optional[str] = None) -> Dict[str, Any]:
    """Every eval sample through the model (batch 1); the outputs of `signature` (None: all)
    dequantized, stacked, base64."""
    in_details = model_inputs(interp, signature)
    out_details = output_details(interp, signature)
    arrays = match_arrays(data, in_details, "eval")
    current = {int(d["index"]): [int(x) for x in d["shape"]] for d in in_details}
    n = int(arrays[0].shape[0])
    collected: List[List["np.ndarray"]] = []
    for i in range(n):
        feeds = [sample_for(arrays[k], i, d, "eval") for k, d in enumerate(in_details)]
        resized = False
        for d, (_, shape) in zip(in_details, feeds):
            if current[int(d["index"])] != shape:
                interp.resize_tensor_input(int(d["index"]), shape)
                current[int(d["index"])] = shape
                resized = True
        if resized:
            interp.allocate_tensors()
            out_details = output_details(interp, signature)
        for d, (sample, _) in zip(in_details, feeds):
            interp.set_tensor(int(d["index"]), sample)
        _invoke_checked(interp, "eval sample %d" % i)()
        outs = [dequantize(interp.get_tensor(int(d["index"])), d) for d in out_details]
        collected.append([o[0] if o.ndim >= 1 and o.shape[0] == 1 else o for o in outs])
    return {"n": n, "outputs": _pack_outputs(interp, collected, signature)}


def _pack_outputs(interp: Any, collected: List[List["np.ndarray"]],
                  signature: Optional[str]) -> List[Dict[str, Any]]:
    sig_names = signature_names(interp, "outputs", signature)
    packed = []
    for j, d in enumerate(output_details(interp, signature)):
        try:
            stacked = np.ascontiguousarray(np.stack([row[j] for row in collected]),
                                           dtype="<f4")
        except ValueError as e:
            raise AgentError("EvalDataError", "output %r changes shape between eval samples: %s"
                             % (d.get("name"), e))
        entry = {"name": d.get("name"), "shape": [int(x) for x in stacked.shape],
                 "dtype": "float32", "b64": base64.b64encode(stacked.tobytes()).decode("ascii")}
        sig = sig_names.get(int(d["index"]))
        if sig is not None and sig != entry["name"]:
            entry["signature_name"] = sig
        packed.append(entry)
    return packed


def peak_rss_kb() -> Optional[int]:
    try:
        import resource
    except ImportError:
        return None
    try:
        rss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except Exception:  # noqa: BLE001
        return None
    return rss // 1024 if sys.platform == "darwin" else rss


def run_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Run one task in this process; the fields of its `result` event. AgentError on failure."""
    task = payload.get("task")
    p = task_params(task)
    workdir = os.path.expanduser(str(payload.get("workdir") or os.getcwd()))
    temp_before = _safe(read_temp_c)
    throttled_before = _safe(throttled)
    cooling_before = _safe(cooling_devices) or {}
    model_path, model_sha, model_bytes, _ = verify_file(workdir, task.get("model"), "model")
    rt = load_runtime(payload.get("runtime") or "auto")
    evals = _npz(workdir, task["eval"], "eval") if task.get("eval") else None
    user = _npz(workdir, task["input"], "input") if task.get("input") else None
    key = p["signature"]
    acc = p["accelerator"]
    ext = acc is not None and acc["name"] == DELEGATE  # an external delegate: the Interpreter
    placed: Dict[str, Any] = {}

    def on_made(made: Any, log: str) -> None:
        placed.update(count_placement(made, acc, log))

    interp, init_ms, matched = open_interpreter(rt, model_path, p["threads"], p["xnnpack"], user,
                                                key, resolve_path(workdir, task["model"]["path"]),
                                                p["input_shapes"],
                                                [load_external(rt, acc)] if ext else None,
                                                on_made if ext else None,
                                                aot_ok=acc is not None and acc["name"] == "npu")
    placement = None
    if ext:
        placement = dict(placed, compile_ms=init_ms)
        check_placement(placement, acc)
    elif acc is not None:  # the CompiledModel API computes; interp describes
        interp, init_ms, placement = open_accelerated(interp, model_path, acc,
                                                      p["threads"], key)
    set_inputs(interp, matched, p["seed"])
    t0 = time.perf_counter_ns()
    _invoke_checked(interp, "the first inference")()
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    invoke = _invoke_checked(interp, "warmup")
    for _ in range(p["warmup"]):
        invoke()
    probe = interference.Probe().start()  # what else used the CPU meanwhile
    try:  # the bare bound method inside the loop: no wrapper call between the clock reads
        samples, stopped_by, loop_s = timing_loop(interp.invoke, p["runs"], p["min_seconds"],
                                                  p["max_seconds"], p["max_runs"])
    except Exception as e:  # noqa: BLE001
        raise AgentError("InvokeError", "invoke() failed during timing: %s: %s"
                         % (type(e).__name__, e))
    finally:
        busy = probe.stop()
    if placement is not None and not ext:  # what a timer around the run call alone said
        placement["dispatch_only_ms"] = dispatch_ms(interp)
    info = collect_device_info()
    info["temp_c_before"] = temp_before
    info["temp_c_after"] = info.get("temp_c")
    info["throttled_before"] = throttled_before
    info["cooling_devices_before"] = cooling_before
    sig_in, sig_out = signature_names(interp, "inputs", key), signature_names(interp, "outputs", key)
    ins = [tensor_info(d, sig_in.get(int(d["index"]))) for d in interp.get_input_details()]
    outs = [tensor_info(d, sig_out.get(int(d["index"]))) for d in output_details(interp, key)]
    ev = run_eval(interp, evals, key) if evals is not None else None
    return {"init_ms": init_ms, "first_inference_ms": first_ms, "warmup": p["warmup"],
            "runs": len(samples), "samples_ns": samples, "stopped_by": stopped_by,
            "loop_s": loop_s, "peak_rss_kb": peak_rss_kb(), "interference": busy,
            "cooldown_s": float(payload.get("cooldown_s") or 0.0),
            "runtime": {"name": rt.name, "module": rt.module, "version": rt.version,
                        "xnnpack": p["xnnpack"], "threads": p["threads"]},
            "device_info": info, "model_sha256": model_sha, "model_bytes": model_bytes,
            "inputs": ins, "outputs": outs, "eval": ev, "signature": key,
            **({"placement": placement} if placement is not None else {})}


def worker_main() -> int:
    """--worker: one task from stdin -> one `result` or `error` line."""
    task_id: Optional[str] = None
    try:
        payload = json.loads(sys.stdin.read())
        if not isinstance(payload, dict) or not isinstance(payload.get("task"), dict):
            raise AgentError("BadJob", "worker input must be {\"task\": {...}, ...}")
        task_id = payload["task"].get("id")
        result = run_task(payload)
        emit("result", task=task_id, **result)
        return 0
    except AgentError as e:
        emit_error(task_id, e.type, e.message, traceback.format_exc(), **e.extra)
        return 1
    except Exception as e:  # noqa: BLE001
        emit_error(task_id, "InternalError", "%s: %s" % (type(e).__name__, e),
                   traceback.format_exc())
        return 1
