"""What accelerators this device can use (`--probe --accelerators`, shown by `devices --check`).

Each accelerator is tried for real: a tiny ADD model (embedded below, 496 bytes) is compiled
for it through LiteRT's CompiledModel API with the log captured at fd 2 and read as a task's
would be (agent/placement.py). `is_fully_accelerated()` is not asked: it says True after a
fallback. Also listed: the NPU vendors whose dispatch library the runtime ships, and the
external delegate files named in the device's EDGE_BENCH_DELEGATES (paths separated by `:`),
each with the reason it cannot load. Python >= 3.8 syntax; stdlib, numpy and the runtime only.
"""
from __future__ import annotations

import base64
import ctypes
import importlib
import os
from typing import Any, Dict, List, Optional, Tuple

from .accel_spec import accel_params
from .placement import capture_fd2, read_placement, why_failed

#: x[1,4] + y[1,4] -> sum: one ADD op, serving_default signature (tests/tflite_models.py)
TINY_ADD = base64.b64decode(
    "HAAAAFRGTDMUABgAFAAQAAwAAAAIAAAAAAAEABQAAAAUAAAAoAAAAKgAAAC0AQAAAwAAAAEAAAAQAAAAAAAKABAADAAI"
    "AAQACgAAAAwAAAAcAAAANAAAAA8AAABzZXJ2aW5nX2RlZmF1bHQAAQAAAAQAAADg////AgAAAAQAAAADAAAAc3VtAAIA"
    "AAAoAAAADAAAAAgADAAIAAQACAAAAAEAAAAEAAAAAQAAAGIABgAIAAQABgAAAAQAAAABAAAAYQAAAAEAAAAEAAAA5P7/"
    "/wEAAAAUAAAAAAAOABgAFAAQAAwACAAEAA4AAAAUAAAAHAAAAFwAAABgAAAAaAAAAAQAAABtYWluAAAAAAEAAAAUAAAA"
    "AAAOABQAAAAQAAwACwAEAA4AAAAQAAAAAAAACwwAAAAQAAAAUP///wEAAAACAAAAAgAAAAAAAAABAAAAAQAAAAIAAAAC"
    "AAAAAAAAAAEAAAADAAAAWAAAACgAAAAEAAAAwP///wgAAAAMAAAAAwAAAHN1bQACAAAAAQAAAAQAAADg////CAAAAAwA"
    "AAABAAAAYgAAAAIAAAABAAAABAAAAAwADAAIAAAAAAAEAAwAAAAIAAAADAAAAAEAAABhAAAAAgAAAAEAAAAEAAAAAQAA"
    "AAgAAAAEAAQABAAAAA==")
DELEGATES_ENV = "EDGE_BENCH_DELEGATES"


def _try(api: Dict[str, Any], name: str, npu_options: Optional[Dict[str, str]] = None
         ) -> Dict[str, Any]:
    from .accel import build_options
    spec = accel_params({"name": name, "npu_options": npu_options})
    assert spec is not None
    opts = build_options(api, spec, 1)
    model, err, text = capture_fd2(
        lambda: api["CompiledModel"].from_buffer(TINY_ADD, options=opts))
    p = read_placement(name, text, 1)
    adapter = [ln.split("Selected adapter:", 1)[1].strip() for ln in text.splitlines()
               if "Selected adapter:" in ln]
    ok = err is None and model is not None and not p["fallback"]
    why = None if ok else (p["fallback"] or why_failed(name, text, err))
    if npu_options:
        name += " " + ",".join("%s=%s" % kv for kv in sorted(npu_options.items()))
    return {"name": name, "usable": ok, "reason": why,
            "adapter": adapter[0][:200] if adapter else None}


def _vendors() -> List[str]:
    try:
        pkg = importlib.import_module("ai_edge_litert")
    except Exception:  # noqa: BLE001
        return []
    root = os.path.join(os.path.dirname(pkg.__file__), "vendors")
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [n for n in names if os.path.isdir(os.path.join(root, n, "dispatch"))]


def _delegates() -> List[Dict[str, Any]]:
    out = []
    for path in [p for p in os.environ.get(DELEGATES_ENV, "").split(":") if p]:
        try:
            getattr(ctypes.CDLL(path), "tflite_plugin_create_delegate")
            out.append({"path": path, "usable": True, "reason": None})
        except OSError as e:
            out.append({"path": path, "usable": False, "reason": str(e)[:300]})
        except AttributeError:
            out.append({"path": path, "usable": False,
                        "reason": "no tflite_plugin_create_delegate: not an external delegate"})
    return out


def probe_accelerators() -> Dict[str, Any]:
    """{"api": why not or None, "accelerators": [{name, usable, reason, adapter}],
    "npu_dispatch": [vendor], "delegates": [{path, usable, reason}]}."""
    from .accel import _api
    from .protocol import AgentError
    out: Dict[str, Any] = {"api": None, "accelerators": [], "npu_dispatch": _vendors(),
                           "delegates": _delegates()}
    try:
        api = _api()
    except AgentError as e:
        out["api"] = e.message
        return out
    tries: List[Tuple[str, Optional[Dict[str, str]]]] = [("gpu", None), ("npu", None)]
    if "intel_openvino" in out["npu_dispatch"]:  # OpenVINO's CPU device, the NPU stand-in
        tries.append(("npu", {"graph_backend": "cpu"}))
    for name, npu in tries:
        try:
            out["accelerators"].append(_try(api, name, npu))
        except Exception as e:  # noqa: BLE001 - a probe reports, never fails the listing
            out["accelerators"].append({"name": name, "usable": False, "adapter": None,
                                        "reason": "%s: %s" % (type(e).__name__, e)})
    return out
