"""What ran where: the runtime's own words about placement, captured at the fd level and read.

LiteRT writes its compile/partition messages to the native stderr (fd 2), not to Python's
sys.stderr, so `capture_fd2` points fd 2 at a temporary file around a call and returns what
was written. `read_placement` turns those lines into facts: the accelerator asked for, the one
that ran the ops, how many ops of how many were placed, in how many partitions, and (when the
model fell back) why. `is_fully_accelerated()` is never consulted: it says True after a whole
fallback to the CPU. Python >= 3.8 syntax, stdlib only.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

#: NPU compiler plugin: one line per subgraph it partitioned
_NPU_PARTITION = re.compile(r"Partitioned subgraph<(\d+)>, selected (\d+) ops, from a total of "
                            r"(\d+) ops\. resulted in (\d+) partitions")
_NPU_APPLIED = re.compile(r"(\d+) compiler plugins were applied successfully")
#: TFLite GPU delegate: printed only when some ops stay on the CPU
_GPU_PARTIAL = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) "
                          r"operations will run on the CPU")
#: one per GPU delegate kernel (= partition) the WebGPU accelerator built
_GPU_KERNEL = "Initializing WebGPU-based API from graph"
#: lines kept in the result, per accelerator: what the runtime said about loading,
#: partitioning and compiling for it
_KEEP = {"gpu": re.compile(r"adapter|Adapter|Vulkan|WebGPU|GPU delegate|operations will run|"
                           r"not supported|not accelerated|ERROR|Failed|failed"),
         "npu": re.compile(r"plugin|Partition|partition|compil|Compil|Dispatch|dispatch|"
                           r"InvocationContext|OpenVINO|Openvino|Exception|cannot open|"
                           r"ERROR|Failed|failed"),
         "cpu": re.compile(r"XNNPACK|ERROR|Failed|failed")}
MAX_LINES = 40
MAX_LINE_CHARS = 300


def capture_fd2(fn: Callable[[], Any]) -> Tuple[Any, Optional[BaseException], str]:
    """(fn's value or None, its exception or None, what was written to fd 2 meanwhile)."""
    try:
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        value: Any = None
        err: Optional[BaseException] = None
        try:
            value = fn()
        except Exception as e:  # noqa: BLE001 - returned to the caller, who names it
            err = e
        finally:
            try:
                sys.stderr.flush()
            except Exception:  # noqa: BLE001
                pass
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace")
    return value, err, text


def log_lines(asked: str, text: str) -> List[str]:
    """The lines about `asked` worth keeping, shortened, at most MAX_LINES."""
    keep = _KEEP.get(asked, _KEEP["cpu"])
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or "RegisterAccelerator" in line:
            continue
        if asked == "gpu" and ("compiler_plugin" in line or "IntelOpenvino" in line):
            continue  # the NPU plugins the environment tried to load: not the GPU's story
        if keep.search(line):
            out.append(line[:MAX_LINE_CHARS])
    return out[:MAX_LINES]


def _first(text: str, *needles: str) -> Optional[str]:
    """The first line holding the first needle found (needles in order of preference)."""
    lines = text.splitlines()
    for n in needles:
        for line in lines:
            if n in line:
                return line.strip()[:MAX_LINE_CHARS]
    return None


def why_failed(asked: str, text: str, err: Optional[BaseException]) -> str:
    """One line naming why the accelerator did not run the model, from the runtime's log."""
    if asked == "gpu":
        vk = _first(text, "Couldn't load Vulkan")
        if vk or "No adapters found" in text:
            return ("GPU accelerator found no GPU adapter (%s): install a Vulkan driver for "
                    "this GPU, or set VK_ICD_FILENAMES (docs/accelerators.md)"
                    % (vk or "No adapters found"))
        if "dynamic-sized tensors" in text:
            return ("the GPU delegate takes static-sized tensors only, and this model has "
                    "dynamic-sized ones (%s)" % (_first(text, "dynamic-sized tensor") or "?"))
        if "Some ops are not accelerated" in str(err or ""):
            return "op unsupported on the GPU: %s" % (_first(text, "Operation is not supported")
                                                     or "some ops")
        if "libLiteRtWebGpuAccelerator" not in text and "GPU accelerator" not in text:
            return "GPU accelerator library did not load"
    if asked == "npu":
        missing = _first(text, "cannot open shared object file")
        if "No compiler plugin found" in text or (missing and "applied successfully" not in text):
            return ("NPU compiler plugin missing: %s" % (missing or "no compiler plugin found"))
        applied = _NPU_APPLIED.search(text)
        if applied and int(applied.group(1)) == 0:
            cause = _first(text, "Cannot load library", "Exception in compilation",
                           "Plugin errs")
            return "NPU compile failed (0 compiler plugins applied): %s" % (cause or "see log")
    if err is not None:
        return "%s: %s" % (type(err).__name__, " ".join(str(err).split())[:MAX_LINE_CHARS])
    return "the runtime placed no op on the %s" % asked.upper()


def read_placement(asked: str, text: str, total_ops: Optional[int]) -> Dict[str, Any]:
    """Placement facts from the compile log: {asked, ran, ops_placed, ops_total, partitions,
    fallback (why, or None), log}. `ran` is the accelerator that ran the placed ops, or "cpu"
    when none was placed (a whole fallback)."""
    placed: Optional[int] = None
    total = total_ops
    partitions: Optional[int] = None
    if asked == "npu":
        parts = _NPU_PARTITION.findall(text)
        applied = _NPU_APPLIED.search(text)
        ok = applied is not None and int(applied.group(1)) > 0
        if parts and ok:
            placed = sum(int(p[1]) for p in parts)
            total = sum(int(p[2]) for p in parts)
            partitions = sum(int(p[3]) for p in parts)
        else:
            placed, partitions = 0, 0
    elif asked == "gpu":
        kernels = text.count(_GPU_KERNEL)
        partial = _GPU_PARTIAL.search(text)
        if kernels == 0:
            placed, partitions = 0, 0
        elif partial:
            placed = int(partial.group(1))
            total = int(partial.group(1)) + int(partial.group(2))
            partitions = kernels
        else:
            placed, partitions = total, kernels
    else:  # the CPU accelerator of the CompiledModel API: XNNPACK, or the builtin kernels
        placed, partitions = total, None
    fallback = None
    if asked != "cpu" and placed == 0:
        fallback = why_failed(asked, text, None)
    return {"asked": asked, "ran": asked if placed else "cpu", "ops_placed": placed,
            "ops_total": total, "partitions": partitions, "fallback": fallback,
            "log": log_lines(asked, text)}


def describe(p: Dict[str, Any]) -> str:
    """`gpu 41/52 ops, 3 partitions` (the table's words)."""
    placed, total, parts = p.get("ops_placed"), p.get("ops_total"), p.get("partitions")
    text = "%s %s/%s ops" % (p.get("ran") or p.get("asked"), "?" if placed is None else placed,
                             "?" if total is None else total)
    if parts is not None:
        text += ", %d partition%s" % (parts, "" if parts == 1 else "s")
    return text
