"""`run --accelerator cpu,gpu,npu`: the flags -> the task's `accelerator` spec. The names and
the spec's rules live in edge_bench_agent.accel_spec (one home, host and agent);
docs/accelerators.md says how to set up each kind of device."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from edge_bench_agent.accel_spec import (ACCELERATORS, GPU_PRECISIONS, accel_params,
                                         delegate_label, parse_delegate, parse_npu_options)

from ..errors import UsageError


def parse_accelerators(text: Optional[str], *, gpu_precision: str = "fp16",
                       npu_options: Optional[str] = None,
                       require_full: bool = False, delegates: Optional[List[str]] = None
                       ) -> List[Tuple[str, Optional[Dict[str, Any]]]]:
    """[(name, spec sent to the agent)] in the order given, then one per `--delegate`
    (labelled delegate:FILE); `cpu` is today's Interpreter path (spec None). UsageError naming
    the flag and the value when one is wrong."""
    names = [x.strip().lower() for x in (text or "cpu").split(",") if x.strip()]
    if not names:
        raise UsageError(f"--accelerator {text!r}: name at least one of {', '.join(ACCELERATORS)}")
    bad = [n for n in names if n not in ACCELERATORS]
    if bad:
        raise UsageError(f"--accelerator {bad[0]!r} is unknown: use {','.join(ACCELERATORS)}"
                         " (several separated by commas)")
    if gpu_precision not in GPU_PRECISIONS:
        raise UsageError(f"--gpu-precision {gpu_precision!r}: use fp16 or fp32")
    try:
        npu = parse_npu_options(npu_options) if npu_options else {}
    except ValueError as e:
        raise UsageError(f"--npu-option {npu_options!r}: {e}") from None
    out: List[Tuple[str, Optional[Dict[str, Any]]]] = []
    for n in dict.fromkeys(names):
        if n == "cpu":
            out.append((n, None))
            continue
        spec = {"name": n, "require_full": require_full}
        if n == "gpu":
            spec["gpu_precision"] = gpu_precision
        if n == "npu":
            spec["npu_options"] = npu
        out.append((n, accel_params(spec)))
    for text in delegates or []:
        try:
            d = dict(parse_delegate(text), require_full=require_full)
        except ValueError as e:
            raise UsageError(f"--delegate {text!r}: {e}",
                             hint="give PATH or PATH:key=value,... (the .so on the device)") from None
        label = delegate_label(d)
        if any(label == a for a, _ in out):
            raise UsageError(f"--delegate {text!r}: another --delegate has the file name"
                             f" {label[len('delegate:'):]!r}; rows are keyed by it")
        out.append((label, d))
    return out



def device_delegate(value: Optional[str], require_full: bool = False
                    ) -> Optional[Tuple[str, Dict[str, Any]]]:
    """devices.yaml `delegate:` when it names an external delegate .so (a path, checked when
    the file was read): (label, spec) of the row it adds on that device; None otherwise."""
    if not value or "/" not in value:
        return None
    d = dict(parse_delegate(value), require_full=require_full)
    return delegate_label(d), d
