"""agent/placement.py: reading what ran where from LiteRT's own log (lines as ai-edge-litert 2.3
wrote them on this machine), and capturing that log where the runtime writes it: fd 2."""
from __future__ import annotations

import ctypes
import os
import sys

from edge_bench_agent import placement as P
from edge_bench_agent.accel_spec import accel_params, parse_npu_options

import pytest

PLUGIN_MISSING = """\
INFO: [compiler_plugin.cc:308] Attempting to load plugin at: /x/ai_edge_litert/vendors/intel_openvino/compiler/libLiteRtCompilerPlugin_IntelOpenvino.so
WARNING: [compiler_plugin.cc:312] Failed to load plugin at: /x/libLiteRtCompilerPlugin_IntelOpenvino.so with error: ERROR: [litert/compiler/plugin/compiler_plugin.cc:259]
\u2514 Could not load shared library /x/libLiteRtCompilerPlugin_IntelOpenvino.so: libopenvino.so.2631: cannot open shared object file: No such file or directory.
WARNING: [compiled_model.cc:1393] Failed to apply compiler plugins: No compiler plugin found
INFO: [compiled_model.cc:829] Flatbuffer model initialized directly from incoming litert model.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
"""

NPU_OK = """\
INFO: [compiler_plugin.cc:742] Partitioned subgraph<0>, selected 21 ops, from a total of 21 ops. resulted in 1 partitions.
INFO: [openvino_compile_context.cc:77] Using Intel OpenVINO device: CPU
INFO: [compiled_model.cc:1397] 1 compiler plugins were applied successfully: IntelOpenVINO compiler plugin (ver 0.1.0)
INFO: [invocation_context.cc:402] Openvino InvocationContext Initialize SUCCESS
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
"""

NPU_PARTIAL_THEN_FAILED = """\
INFO: [compiler_plugin.cc:742] Partitioned subgraph<0>, selected 2 ops, from a total of 3 ops. resulted in 2 partitions.
INFO: [openvino_compiler_plugin.cc:642] Compiling partition 1 for device NPU
ERROR: [openvino_compiler_plugin.cc:714] Exception in compilation: Exception from src/inference/src/cpp/core.cpp:117:
Cannot load library "/x/openvino/libs/libopenvino_intel_npu_compiler_loader.so": cannot open shared object file
INFO: [compiled_model.cc:1397] 0 compiler plugins were applied successfully: 
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
"""

GPU_FULL = """\
I0000 00:00:1796683248.548648   25489 environment.cc:532] Selected adapter: SwiftShader Device (Subzero), arch=swiftshader, vendor=google, backend=Vulkan, adapterType=CPU / Software
I0000 00:00:1796683248.564844   25489 delegate_kernel.cc:984] Initializing WebGPU-based API from graph.
"""

GPU_PARTIAL = """\
ERROR: Following operations are not supported by GPU delegate:
ZEROS_LIKE: Operation is not supported.
1 operations will run on the GPU, and the remaining 2 operations will run on the CPU.
I0000 00:00:1796683102.960562   21016 delegate_kernel.cc:984] Initializing WebGPU-based API from graph.
"""


def test_npu_plugin_missing_is_a_whole_fallback_naming_the_library() -> None:
    p = P.read_placement("npu", PLUGIN_MISSING, 21)
    assert (p["ran"], p["ops_placed"], p["ops_total"]) == ("cpu", 0, 21)
    assert p["fallback"].startswith("NPU compiler plugin missing")
    assert "libopenvino.so.2631" in p["fallback"]


def test_npu_placement_is_counted_from_the_partition_lines() -> None:
    p = P.read_placement("npu", NPU_OK, 99)  # the plugin's own totals win over the caller's
    assert (p["ran"], p["ops_placed"], p["ops_total"], p["partitions"]) == ("npu", 21, 21, 1)
    assert p["fallback"] is None
    assert any("InvocationContext" in line for line in p["log"])


def test_a_plugin_that_partitioned_but_failed_to_compile_placed_nothing() -> None:
    p = P.read_placement("npu", NPU_PARTIAL_THEN_FAILED, 3)
    assert (p["ran"], p["ops_placed"], p["partitions"]) == ("cpu", 0, 0)
    assert p["fallback"].startswith("NPU compile failed (0 compiler plugins applied)")
    assert "npu_compiler_loader" in p["fallback"]


def test_gpu_full_partial_and_none() -> None:
    full = P.read_placement("gpu", GPU_FULL, 21)
    assert (full["ran"], full["ops_placed"], full["ops_total"], full["partitions"]) == \
        ("gpu", 21, 21, 1)
    part = P.read_placement("gpu", GPU_PARTIAL, 3)
    assert (part["ops_placed"], part["ops_total"], part["partitions"]) == (1, 3, 1)
    none = P.read_placement("gpu", "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", 5)
    assert (none["ran"], none["ops_placed"]) == ("cpu", 0) and none["fallback"]
    assert P.describe(part) == "gpu 1/3 ops, 1 partition"


def test_capture_fd2_sees_what_native_code_writes() -> None:
    libc = ctypes.CDLL(None)
    value, err, text = P.capture_fd2(lambda: libc.write(2, b"native line\n", 12) and 7)
    assert (value, err) == (7, None) and text == "native line\n"
    _, err, text = P.capture_fd2(lambda: 1 / 0)
    assert isinstance(err, ZeroDivisionError) and text == ""
    os.write(2, b"")  # fd 2 is back where it was
    assert os.fstat(2).st_ino == os.fstat(sys.__stderr__.fileno()).st_ino


def test_the_accelerator_field_is_checked() -> None:
    assert accel_params(None) is None
    assert accel_params({"name": "gpu"}) == {"name": "gpu", "gpu_precision": "fp16",
                                            "npu_options": {}, "require_full": False}
    for bad, why in (({"name": "tpu"}, "name must be one of"),
                     ({"name": "gpu", "gpu_precision": "fp8"}, "gpu_precision"),
                     ({"name": "npu", "npu_options": {"graph_backend": "dsp"}}, "unknown"),
                     ({"name": "npu", "require_full": "yes"}, "require_full")):
        with pytest.raises(ValueError, match=why):
            accel_params(bad)
    assert parse_npu_options("graph_backend=CPU, performance_mode=latency") == \
        {"graph_backend": "cpu", "performance_mode": "latency"}
