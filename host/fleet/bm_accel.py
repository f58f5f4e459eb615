"""`runner: benchmark_model` and accelerators: a task's accelerator -> the binary's own flags, and
what ran where read back from its log (docs/accelerators.md).

    cpu              devices.yaml `delegate:` as before (xnnpack, gpu, nnapi or none)
    gpu              --use_gpu=true (--gpu_precision_loss_allowed=false with --gpu-precision fp32)
    npu              --use_nnapi=true (Android's route to the NPU/DSP)
    delegate:FILE    --external_delegate_path=PATH [--external_delegate_options=k:v;k:v]

benchmark_model keeps going on the CPU when a delegate it was asked for takes nothing, so a row
under an accelerator's name needs the log's own words that the delegate ran: TFLite's
`Replacing N out of M node(s) with delegate (NAME) node, yielding K partitions` and the tool's
`Explicitly applied ... delegate, and the model graph will be completely|partially executed`.
A log that says the delegate took nothing (or says nothing about it) is an AcceleratorError.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from edge_bench_agent.accel_spec import ACCELERATOR_ERROR, DELEGATE

_REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\) node,"
                        r" yielding (\d+) partitions")
_APPLIED = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be "
                      r"(completely|partially) executed by the delegate")
_NOT_APPLIED = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will "
                          r"not be executed by the delegate")
_FAILED = re.compile(r"Failed to apply (\S+) delegate|Failed to create .*delegate|"
                     r"Could not load|cannot open shared object file", re.I)


def accelerator_flags(accel: str, spec: Optional[Dict[str, Any]],
                      device_delegate: str) -> Tuple[bool, bool, List[str], str]:
    """(use_gpu, use_nnapi, extra flags, the delegate's name for the result's runtime) for one
    task on a benchmark_model device."""
    if accel == "cpu" or spec is None:
        d = (device_delegate or "").lower()
        if "/" in d:  # an external delegate's path: its own row; this one is the CPU's
            d = ""
        return d == "gpu", d == "nnapi", [], d or "xnnpack"
    if spec["name"] == "gpu":
        extra = ["--gpu_precision_loss_allowed=false"] if spec.get("gpu_precision") == "fp32" \
            else []
        return True, False, extra, "gpu"
    if spec["name"] == "npu":
        return False, True, [], "nnapi"
    if spec["name"] == DELEGATE:
        extra = [f"--external_delegate_path={spec['path']}"]
        if spec.get("options"):
            extra.append("--external_delegate_options="
                         + ";".join(f"{k}:{v}" for k, v in spec["options"].items()))
        return False, False, extra, accel
    raise ValueError(f"unknown accelerator {accel!r}")


def read_placement(accel: str, text: str) -> Dict[str, Any]:
    """{asked, ran, ops_placed, ops_total, partitions, fallback, log} from benchmark_model's log;
    the XNNPACK delegate's own lines are not the accelerator's."""
    placed = total = parts = None
    log: List[str] = []
    for line in text.splitlines():
        m = _REPLACING.search(line)
        if m and "xnnpack" not in m.group(3).lower():
            placed = (placed or 0) + int(m.group(1))
            total = int(m.group(2)) if total is None else total
            parts = (parts or 0) + int(m.group(4))
            log.append(line.strip()[:300])
        elif _APPLIED.search(line) or _NOT_APPLIED.search(line) or _FAILED.search(line):
            log.append(line.strip()[:300])
    applied = _APPLIED.search(text)
    fallback: Optional[str] = None
    if _NOT_APPLIED.search(text) or (placed == 0):
        fallback = "benchmark_model says the delegate runs no part of the graph"
    elif placed is None and applied is None:
        failed = _FAILED.search(text)
        fallback = ("the delegate did not apply: " + failed.group(0)) if failed else \
            "benchmark_model's log does not say the delegate ran any op"
    elif placed is None and applied is not None and applied.group(2) == "completely":
        placed, total, parts = None, None, 1  # whole graph; the node count not printed
    return {"asked": accel, "ran": "cpu" if fallback else accel, "ops_placed": placed,
            "ops_total": total, "partitions": parts, "fallback": fallback, "log": log[:40]}


def check(placement: Dict[str, Any], spec: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """(error type, message) when the row must be an error: a whole fallback, or a partial
    placement with require_full; None when it may be an ok row."""
    if placement["fallback"]:
        return ACCELERATOR_ERROR, (f"{placement['asked']} fell back to the CPU for the whole "
                                   f"model: {placement['fallback']}")
    placed, total = placement["ops_placed"], placement["ops_total"]
    if spec.get("require_full") and placed is not None and total is not None and placed < total:
        return ACCELERATOR_ERROR, f"{placement['asked']} ran {placed} of {total} ops (require_full)"
    return None
