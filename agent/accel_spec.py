"""The `accelerator` field of a task: ONE home for its names and rules, host and agent alike.

A task without it (or with null) runs on today's path: the Interpreter API on the CPU
(XNNPACK or reference kernels). With it, the agent runs the model through LiteRT's
CompiledModel API on the accelerator named (agent/accel.py) and records what ran where
(agent/placement.py). Python >= 3.8 syntax, stdlib only (it runs on the device).

    {"name": "gpu" | "npu" | "cpu",       # cpu: the CompiledModel API on its CPU accelerator
     "gpu_precision": "fp16" | "fp32",   # GPU arithmetic (fp16 is LiteRT's default)
     "npu_options": {"graph_backend": "cpu" | "gpu" | "npu", ...},  # vendor options (OpenVINO)
     "require_full": false}              # partial placement becomes an error
"""
from __future__ import annotations

from typing import Any, Dict, Optional

#: the accelerators `run --accelerator` accepts; `cpu` is today's Interpreter path
ACCELERATORS = ("cpu", "gpu", "npu")
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


def accel_params(value: Any) -> Optional[Dict[str, Any]]:
    """The validated `accelerator` field of a task (None: the Interpreter path), every key
    present; ValueError saying what is wrong (protocol.task_params makes it a BadJob)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("task field 'accelerator' must be an object or null, got %r"
                         % (value,))
    name = value.get("name")
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
