"""A model on an accelerator through LiteRT's CompiledModel API (ai-edge-litert >= 2).

`open_accelerated` compiles the model for the accelerator a task asks for (task field
`accelerator`, agent/accel_spec.py) with the runtime's log captured at fd 2, reads from that
log what ran where (agent/placement.py) and fails with AcceleratorError when the accelerator
did not run the model (a whole fallback to the CPU, a failed compile, a missing plugin or
driver) or, with require_full, ran only part of it. It returns a `CompiledRunner`: the task's
Interpreter (kept for what it knows about the model: tensor details, quantization, signature
names) beside the compiled model that computes. The runner speaks the Interpreter methods the
timing loop and the eval use (set_tensor, invoke, get_tensor), and its `invoke` ends when every
output has been read back into host memory: an accelerator that returns from its run call
before the work is done (LiteRT's GPU accelerator does) is timed to completion.
Python >= 3.8 syntax; numpy and ai-edge-litert only.
"""
from __future__ import annotations

import importlib
import time
from typing import Any, Dict, List, Optional, Tuple

try:
    import numpy as np
except Exception:  # noqa: BLE001 - the task reports NoRuntime before this is used
    np = None  # type: ignore[assignment]

from .accel_spec import ACCELERATOR_ERROR, DISPATCH_OP
from .placement import capture_fd2, read_placement, why_failed
from .protocol import AgentError

_NO_API = ("this device's runtime has no CompiledModel API (ai_edge_litert.compiled_model): "
           "accelerators need ai-edge-litert >= 2 (pip install 'ai-edge-litert>=2'; it has "
           "wheels for Python 3.10-3.13)")


def _api() -> Dict[str, Any]:
    """The CompiledModel API's classes; AgentError AcceleratorError in one line without it."""
    try:  # by name, as runtime.py imports the runtimes: the agent ships without them
        cm = importlib.import_module("ai_edge_litert.compiled_model")
        ha = importlib.import_module("ai_edge_litert.hardware_accelerator")
        o = importlib.import_module("ai_edge_litert.options")
    except Exception as e:  # noqa: BLE001 - ImportError, or a wheel without the API
        raise AgentError(ACCELERATOR_ERROR, "%s (%s: %s)" % (_NO_API, type(e).__name__, e))
    return {"CompiledModel": cm.CompiledModel, "HA": ha.HardwareAccelerator, "o": o}


def build_options(api: Dict[str, Any], spec: Dict[str, Any], threads: Optional[int]) -> Any:
    """The runtime's Options for an accelerator spec. GPU and NPU keep the CPU in the set, so
    ops the accelerator does not take still run, and the placement log says how many."""
    ha, o = api["HA"], api["o"]
    cpu = o.CpuOptions(num_threads=int(threads or 1))
    name = spec["name"]
    if name == "cpu":
        return o.Options(hardware_accelerators=ha.CPU, cpu_options=cpu)
    if name == "gpu":
        return o.Options(hardware_accelerators=ha.GPU | ha.CPU, cpu_options=cpu,
                         gpu_options=o.GpuOptions(enforce_f32=spec["gpu_precision"] == "fp32"))
    kwargs: Dict[str, Any] = {"hardware_accelerators": ha.NPU | ha.CPU, "cpu_options": cpu}
    npu = spec.get("npu_options") or {}
    if npu and hasattr(o, "IntelOpenVinoOptions"):
        ov: Dict[str, Any] = {}
        if "graph_backend" in npu:
            ov["graph_backend"] = getattr(o.IntelOpenVinoGraphBackend, npu["graph_backend"].upper())
        if "performance_mode" in npu:
            ov["performance_mode"] = getattr(o.IntelOpenVinoPerformanceMode,
                                             npu["performance_mode"].upper())
        kwargs["intel_openvino_options"] = o.IntelOpenVinoOptions(**ov)
    return o.Options(**kwargs)


def count_ops(interp: Any) -> Optional[int]:
    """Ops in the model's main graph, from the Interpreter (None when it cannot say); the
    nodes a delegate (XNNPACK) added to the Interpreter's own plan are not model ops."""
    try:
        return len([d for d in interp._get_ops_details() if d.get("op_name") != "DELEGATE"])
    except Exception:  # noqa: BLE001 - older runtimes
        return None


def _op_names(interp: Any) -> List[str]:
    try:
        return [str(d.get("op_name")) for d in interp._get_ops_details()]
    except Exception:  # noqa: BLE001 - older runtimes
        return []


def is_aot(interp: Any) -> bool:
    """Whether the model was compiled ahead of time for an NPU (holds DISPATCH_OP nodes)."""
    return DISPATCH_OP in _op_names(interp)


def aot_placement(interp: Any) -> Tuple[int, int]:
    """(dispatch partitions, nodes) of an AOT model, counted from its graph: each DISPATCH_OP
    node is one partition the vendor's dispatch library runs; any other node runs on the CPU.
    The model ops inside a partition are in the vendor's bytecode, not countable here."""
    names = [n for n in _op_names(interp) if n != "DELEGATE"]
    return names.count(DISPATCH_OP), len(names)


class CompiledRunner:
    """The Interpreter methods the timing loop and the eval call, served by a CompiledModel."""

    def __init__(self, interp: Any, model: Any, signature: str) -> None:
        self.interp = interp
        self.model = model
        sig_index = model.get_signature_index(signature)
        self.in_details = list(model.get_input_tensor_details(signature).values())
        self.out_details = list(model.get_output_tensor_details(signature).values())
        self.ins = model.create_input_buffers(sig_index)
        self.outs = model.create_output_buffers(sig_index)
        self.sig_index = sig_index
        self.in_pos = {int(d["index"]): k for k, d in enumerate(self.in_details)}
        self.out_pos = {int(d["index"]): k for k, d in enumerate(self.out_details)}
        self.out_read = [(int(np.prod(d["shape"])), np.dtype(d["dtype"]), tuple(d["shape"]))
                         for d in self.out_details]
        self.results: List[Any] = [None] * len(self.outs)
        # the Interpreter's output tensors in its order, matched to the compiled model's
        graph_outs = [int(d["index"]) for d in interp.get_output_details()]
        if len(graph_outs) == len(self.out_details) and not all(i in self.out_pos
                                                                 for i in graph_outs):
            self.out_pos = {i: k for k, i in enumerate(graph_outs)}

    # --- the Interpreter's surface used by task.py and the eval
    def get_input_details(self) -> List[Dict[str, Any]]:
        return self.interp.get_input_details()

    def get_output_details(self) -> List[Dict[str, Any]]:
        return self.interp.get_output_details()

    def _get_full_signature_list(self) -> Any:
        return self.interp._get_full_signature_list()

    def resize_tensor_input(self, index: int, shape: List[int]) -> None:
        raise AgentError("EvalDataError", "inputs of another shape cannot be fed to a model "
                         "compiled for an accelerator (tensor %d to %s): give data of the "
                         "model's input shape" % (index, shape))

    def allocate_tensors(self) -> None:
        pass

    def set_tensor(self, index: int, data: Any) -> None:
        k = self.in_pos.get(int(index))
        if k is None:
            raise AgentError("InvokeError", "input tensor %d is not an input of the compiled "
                             "signature" % index)
        want = np.dtype(self.in_details[k]["dtype"])
        self.ins[k].write(np.ascontiguousarray(data, dtype=want))

    def invoke(self) -> None:
        """One run, complete: run, then read every output back into host memory."""
        self.model.run_by_index(self.sig_index, self.ins, self.outs)
        for k, (n, dtype, shape) in enumerate(self.out_read):
            self.results[k] = self.outs[k].read(n, dtype)

    def dispatch_only(self) -> None:
        """The run call alone (returns before an asynchronous accelerator is done): only for
        showing how much a timer around the call alone would miss; never timed as a sample."""
        self.model.run_by_index(self.sig_index, self.ins, self.outs)

    def get_tensor(self, index: int) -> Any:
        k = self.out_pos.get(int(index))
        if k is None or self.results[k] is None:
            raise AgentError("InvokeError", "output tensor %d was not read from the compiled "
                             "model" % index)
        n, dtype, shape = self.out_read[k]
        return np.asarray(self.results[k]).reshape(shape)


def _signature(model: Any, wanted: Optional[str]) -> str:
    keys = list(model.get_signature_list())
    if wanted is not None and wanted in keys:
        return wanted
    if "serving_default" in keys:
        return "serving_default"
    return keys[0]


def open_accelerated(interp: Any, path: str, spec: Dict[str, Any], threads: Optional[int],
                     signature: Optional[str]) -> Tuple[CompiledRunner, float, Dict[str, Any]]:
    """(runner, load+compile ms, placement) for the task's accelerator; AgentError
    AcceleratorError when it did not run the model (or, with require_full, not all of it)."""
    api = _api()
    asked = spec["name"]
    options = build_options(api, spec, threads)
    t0 = time.perf_counter_ns()
    model, err, text = capture_fd2(lambda: api["CompiledModel"].from_file(path, options=options))
    compile_ms = (time.perf_counter_ns() - t0) / 1e6
    aot = asked == "npu" and is_aot(interp)
    if aot:  # no plugin runs: the log says so, the graph says what the dispatch takes
        parts, nodes = aot_placement(interp)
        placement = read_placement(asked, text, nodes)
        if err is None and model is not None and "DispatchDelegate" in text:
            placement.update(ran=asked, ops_placed=parts, partitions=parts, fallback=None)
        placement["aot"] = True
    else:
        placement = read_placement(asked, text, count_ops(interp))
    placement["compile_ms"] = compile_ms
    placement["options"] = {k: v for k, v in spec.items() if k != "name"}
    if err is not None or model is None:
        why = why_failed(asked, text, err)
        raise AgentError(ACCELERATOR_ERROR, "%s did not run %s: %s" % (asked, path, why),
                         {"placement": dict(placement, fallback=why, ran=None)})
    if placement["fallback"]:
        raise AgentError(ACCELERATOR_ERROR, "%s fell back to the CPU for the whole model: %s"
                         % (asked, placement["fallback"]), {"placement": placement})
    placed, total = placement["ops_placed"], placement["ops_total"]
    if spec.get("require_full") and (placed is None or total is None or placed < total):
        raise AgentError(ACCELERATOR_ERROR, "%s ran %s of %s ops (require_full)"
                         % (asked, "?" if placed is None else placed,
                            "?" if total is None else total), {"placement": placement})
    try:
        runner = CompiledRunner(interp, model, _signature(model, signature))
    except AgentError:
        raise
    except Exception as e:  # noqa: BLE001
        raise AgentError(ACCELERATOR_ERROR, "%s: cannot create the buffers of %s: %s: %s"
                         % (asked, path, type(e).__name__, e), {"placement": placement})
    return runner, compile_ms, placement


def dispatch_ms(runner: CompiledRunner, n: int = 5) -> float:
    """Median ms of the run call alone (no read-back): what a naive timer would report."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        runner.dispatch_only()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        runner.invoke()  # drain: the next call starts from an idle accelerator
    samples.sort()
    return samples[len(samples) // 2]
