"""The `accelerator` field of a task: ONE home for its names and rules, host and agent alike.

A task without it (or with null) runs on today's path: the Interpreter API on the CPU
(XNNPACK or reference kernels). With it, the agent runs the model through LiteRT's
CompiledModel API on the accelerator named (agent/accel.py) and records what ran where
(agent/placement.py). Python >= 3.8 syntax, stdlib only (it runs on the device).

    {"name": "gpu" | "npu" | "cpu",       # cpu: the CompiledModel API on its CPU accelerator
     "gpu_precision": "fp16" | "fp32",   # GPU arithmetic (fp16 is LiteRT's default)
     "npu_options": {"graph_backend": "cpu" | "gpu" | "npu", ...},  # vendor options (OpenVINO)
     "require_full": false}              # partial placement becomes an error
    {"name": "delegate", "path": "/usr/lib/libedgetpu.so.1",   # an external delegate .so,
     "options": {"device": "usb"}, "require_full": false}      # loaded by the Interpreter API
                                                               # (agent/delegate.py)
"""
from __future__ import annotations

from typing import Any, Dict, Optional

#: the accelerators `run --accelerator` accepts; `cpu` is today's Interpreter path
ACCELERATORS = ("cpu", "gpu", "npu")
#: the spec name of an external delegate (`run --delegate PATH[:k=v,...]`); its rows are
#: labelled DELEGATE_PREFIX + the file's name
DELEGATE = "delegate"
DELEGATE_PREFIX = "delegate:"
GPU_PRECISIONS = ("fp16", "fp32")
#: NPU options the agent understands (Intel OpenVINO's; other vendors take theirs from the
#: runtime's defaults) and the values each may take
NPU_OPTIONS: Dict[str, tuple] = {"graph_backend": ("cpu", "gpu", "npu"),
                                 "performance_mode": ("latency", "throughput",
                                                      "cumulative_throughput")}
#: the error type of every accelerator failure: the API is missing, the accelerator did not
#: load, compile failed, the model fell back to the CPU, or placement was partial with
#: require_full
ACCELERATOR_ERROR = "AcceleratorError"
#: the custom op an ahead-of-time NPU compile leaves in the graph, one per compiled partition:
#: such a model runs only through the CompiledModel API on the npu (host: kind `aot`)
DISPATCH_OP = "DISPATCH_OP"


def accel_params(value: Any) -> Optional[Dict[str, Any]]:
    """The validated `accelerator` field of a task (None: the Interpreter path), every key
    present; ValueError saying what is wrong (protocol.task_params makes it a BadJob)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("task field 'accelerator' must be an object or null, got %r"
                         % (value,))
    name = value.get("name")
    if name == DELEGATE:
        return delegate_params(value)
    if name not in ACCELERATORS:
        raise ValueError("accelerator name must be one of %s, got %r"
                         % (", ".join(ACCELERATORS), name))
    precision = value.get("gpu_precision") or "fp16"
    if precision not in GPU_PRECISIONS:
        raise ValueError("accelerator gpu_precision must be fp16 or fp32, got %r"
                         % (precision,))
    opts = value.get("npu_options") or {}
    if not isinstance(opts, dict):
        raise ValueError("accelerator npu_options must be an object, got %r" % (opts,))
    for k, v in opts.items():
        if k not in NPU_OPTIONS or v not in NPU_OPTIONS[k]:
            raise ValueError("accelerator npu option %s=%s is unknown: use %s"
                             % (k, v, "; ".join("%s=%s" % (o, "|".join(vs))
                                                for o, vs in NPU_OPTIONS.items())))
    full = value.get("require_full", False)
    if not isinstance(full, bool):
        raise ValueError("accelerator require_full must be true or false, got %r"
                         % (full,))
    return {"name": name, "gpu_precision": precision, "npu_options": dict(opts),
            "require_full": full}


def delegate_params(value: Dict[str, Any]) -> Dict[str, Any]:
    """The validated spec of an external delegate; ValueError saying what is wrong."""
    path = value.get("path")
    if not isinstance(path, str) or not path or path.startswith("-") or "\0" in path:
        raise ValueError("delegate path must be a file path (not starting with '-'), got %r"
                         % (path,))
    opts = value.get("options") or {}
    if not isinstance(opts, dict) or not all(isinstance(k, str) and isinstance(v, str) and k
                                             for k, v in opts.items()):
        raise ValueError("delegate options must map names to strings, got %r" % (opts,))
    full = value.get("require_full", False)
    if not isinstance(full, bool):
        raise ValueError("delegate require_full must be true or false, got %r" % (full,))
    return {"name": DELEGATE, "path": path, "options": dict(opts), "require_full": full}


def parse_delegate(text: str) -> Dict[str, Any]:
    """`PATH[:key=value,...]` -> the delegate's spec (without require_full); ValueError. The
    options start after the last ':' when what follows it holds a '=' (a path may hold ':')."""
    path, sep, rest = text.rpartition(":")
    if not sep or "=" not in rest:
        path, rest = text, ""
    opts: Dict[str, str] = {}
    for part in (p.strip() for p in rest.split(",")):
        if not part:
            continue
        k, eq, v = part.partition("=")
        if not eq or not k.strip():
            raise ValueError("delegate option %r is not key=value" % part)
        opts[k.strip()] = v.strip()
    return delegate_params({"name": DELEGATE, "path": path.strip(), "options": opts})


def delegate_label(spec: Dict[str, Any]) -> str:
    """The accelerator a delegate's rows are keyed and shown by: `delegate:libedgetpu.so.1`."""
    return DELEGATE_PREFIX + spec["path"].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def parse_npu_options(text: str) -> Dict[str, str]:
    """`graph_backend=cpu,performance_mode=latency` -> dict, checked; ValueError."""
    out: Dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        k, sep, v = part.partition("=")
        out[k.strip().lower()] = v.strip().lower() if sep else ""
    accel_params({"name": "npu", "npu_options": out})
    return out


def result_accelerator(result: Dict[str, Any]) -> str:
    """The accelerator a result (or a stored row) was asked for: part of its key. Results from
    before accelerators (no field) ran on the CPU through the Interpreter: `cpu`."""
    return str(result.get("accelerator") or "cpu")
