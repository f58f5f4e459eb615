"""A result record in the edge-bench/run/1 shape, around given samples (for unit tests of the
store, compare and report; the end-to-end tests use the real agent)."""
from __future__ import annotations

from typing import Any, Dict, Sequence

from edge_bench.analysis.stats import summarize


def fake_result(samples: Sequence[float], *, device: str = "local", model: str = "builtin:digits",
                variant: str = "fp32", threads: int = 1, **overrides: Any) -> Dict[str, Any]:
    s = [float(x) for x in samples]
    r: Dict[str, Any] = {
        "device": device, "model": model, "variant": variant, "threads": threads,
        "status": "ok", "error": None,
        "runtime": {"name": "ai-edge-litert", "version": "2.3.0", "xnnpack": True},
        "agent_version": "0.1.0",
        "device_info": {"arch": "x86_64", "cpu": "Test CPU", "governor": "performance",
                        "temp_c_before": 40.0, "temp_c_after": 41.0, "throttled": False},
        "model_sha256": "cd" * 32, "model_bytes": 4321, "init_ms": 1.0, "first_inference_ms": 2.0,
        "warmup": 5, "runs": len(s), "latency_ms": summarize(s), "samples_ms": s,
        "peak_rss_mb": 60.0,
        "accuracy": {"top1": 0.97, "top1_ref": 0.97, "agreement_vs_ref": 1.0, "max_abs_err": 0.0},
    }
    r.update(overrides)
    return r
