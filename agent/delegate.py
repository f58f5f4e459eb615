"""An external delegate (`run --delegate PATH[:key=value,...]`) through the Interpreter API.

`load_external` loads the delegate's .so with the runtime's own `load_delegate` (ai-edge-litert,
tflite-runtime and tensorflow all have it: libedgetpu, Arm NN, a vendor's delegate), its native
log captured at fd 2 (agent/placement.py); a file that is missing, is not a delegate or refuses
its options is an AcceleratorError naming it. `count_placement` reads what the delegate took
from the graph itself, right after the Interpreter applied it and before the default delegates
(XNNPACK, applied at allocate_tensors) add nodes of their own: every DELEGATE node is one
partition, and the model ops it replaced are the producers between its outputs and its inputs.
Nothing the delegate says about itself is taken on trust. Python >= 3.8 syntax, stdlib only.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Set

from .accel_spec import ACCELERATOR_ERROR, delegate_label
from .placement import MAX_LINE_CHARS, MAX_LINES, capture_fd2
from .protocol import AgentError


def _log(text: str) -> List[str]:
    lines = [ln.strip()[:MAX_LINE_CHARS] for ln in text.splitlines() if ln.strip()]
    return [ln for ln in lines if "XNNPACK delegate for CPU" not in ln][:MAX_LINES]


def load_external(rt: Any, spec: Dict[str, Any]) -> Any:
    """The runtime's Delegate object for spec; AgentError AcceleratorError naming the file."""
    label = delegate_label(spec)
    mod = sys.modules.get(getattr(rt.interpreter_cls, "__module__", ""), None)
    load = getattr(mod, "load_delegate", None)
    if load is None:
        raise AgentError(ACCELERATOR_ERROR, "%s: runtime %s has no load_delegate"
                         % (label, rt.name))
    delegate, err, text = capture_fd2(lambda: load(spec["path"], dict(spec["options"]) or None))
    if err is not None or delegate is None:
        why = " ".join(str(err).split())[:MAX_LINE_CHARS] if err is not None else "no delegate"
        raise AgentError(ACCELERATOR_ERROR, "%s did not load %s: %s" % (label, spec["path"], why),
                         {"placement": _failed(spec, why, _log(text))})
    return delegate


def _failed(spec: Dict[str, Any], why: str, log: List[str]) -> Dict[str, Any]:
    return {"asked": delegate_label(spec), "ran": None, "ops_placed": 0, "ops_total": None,
            "partitions": 0, "fallback": why, "log": log,
            "options": {"path": spec["path"], "options": spec["options"]}}


def count_placement(interp: Any, spec: Dict[str, Any], log: str = "") -> Dict[str, Any]:
    """{asked, ran, ops_placed, ops_total, partitions, fallback, log, options} from the graph of
    an Interpreter the delegate was applied to (before allocate_tensors)."""
    ops = interp._get_ops_details()
    model = [d for d in ops if d.get("op_name") != "DELEGATE"]
    kernels = [d for d in ops if d.get("op_name") == "DELEGATE"]
    producer = {int(t): int(d["index"]) for d in model for t in d["outputs"]}
    by_index = {int(d["index"]): d for d in model}
    placed: Set[int] = set()
    for k in kernels:
        stop = {int(t) for t in k["inputs"]}
        todo = [producer[int(t)] for t in k["outputs"] if int(t) in producer]
        while todo:
            n = todo.pop()
            if n in placed:
                continue
            placed.add(n)
            todo += [producer[int(t)] for t in by_index[n]["inputs"]
                     if int(t) >= 0 and int(t) not in stop and int(t) in producer]
    label = delegate_label(spec)
    fallback: Optional[str] = None
    if not kernels:
        fallback = "the delegate took none of the model's %d ops" % len(model)
    return {"asked": label, "ran": label if kernels else "cpu", "ops_placed": len(placed),
            "ops_total": len(model), "partitions": len(kernels), "fallback": fallback,
            "log": _log(log), "options": {"path": spec["path"], "options": spec["options"]}}


def check_placement(p: Dict[str, Any], spec: Dict[str, Any]) -> None:
    """AgentError AcceleratorError for a whole fallback, or a partial one with require_full."""
    if p["fallback"]:
        raise AgentError(ACCELERATOR_ERROR, "%s fell back to the CPU for the whole model: %s"
                         % (p["asked"], p["fallback"]), {"placement": p})
    if spec.get("require_full") and p["ops_placed"] < p["ops_total"]:
        raise AgentError(ACCELERATOR_ERROR, "%s ran %d of %d ops (require_full)"
                         % (p["asked"], p["ops_placed"], p["ops_total"]), {"placement": p})
