"""Turn agent messages into result records of the "edge-bench/run/1" document."""
from __future__ import annotations

import base64
import math
import platform
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import numpy as np

from .. import __version__
from ..analysis.stats import bootstrap_median_ci, summarize
from ..errors import BAD_EVAL, BAD_SAMPLES, UsageError, error_detail
from .dburl import redact_argv

SCHEMA = "edge-bench/run/1"


def new_run_id(now: Optional[datetime] = None) -> str:
    """UTC time to the second plus 6 random hex digits: sorts by time, never collides."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


MAX_LABEL_CHARS = 200


def check_label(label: str) -> None:
    """A label names runs for `compare`, `history --label` and `--baseline`: it must be printable
    text that no other kind of run reference (last, last~N, a .json file) would shadow."""
    import re
    from ..errors import UsageError
    if not label.strip():
        raise UsageError("--label is empty", hint="give the run a name, e.g. nightly-2026-11-27")
    if len(label) > MAX_LABEL_CHARS:
        raise UsageError(f"--label is {len(label)} characters long; at most {MAX_LABEL_CHARS}")
    if not label.isprintable():
        raise UsageError(f"--label {label!r} contains a control character (newline, tab...)")
    if label != label.strip():
        raise UsageError(f"--label {label!r} starts or ends with a space")
    if re.match(r"^last(~\d+)?$", label) or label.endswith(".json") or label == "-":
        raise UsageError(f"--label {label!r} would be read as a run reference or a file by"
                         " compare and --baseline", hint="pick another name")


def new_run(label: Optional[str], argv: List[str]) -> Dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "schema": SCHEMA,
        "run_id": new_run_id(now),
        "label": label,
        "started_at": now.isoformat(timespec="seconds"),
        "finished_at": None,
        "status": "running",
        "argv": redact_argv(argv),  # a --db URL's password never reaches a file or store
        "host": {"edge_bench": __version__, "python": platform.python_version(),
                 "machine": platform.machine(), "node": platform.node()},
        "results": [],
    }


#: quantizer name -> the package whose version is recorded with each variant it made
QUANTIZER_PACKAGES = {"ai-edge-quantizer": "ai-edge-quantizer", "tflite-converter": "tensorflow",
                      "pt2e": "litert-torch"}


def package_version(name: Optional[str]) -> Optional[str]:
    if not name:
        return None
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001 - not installed: unknown, not an error
        return None


def base_result(device: str, task: Any) -> Dict[str, Any]:
    art = task.artifact
    return {
        "device": device, "model": art.model.name, "variant": art.variant, "threads": task.threads,
        # cpu: the Interpreter path; gpu/npu: LiteRT's CompiledModel API (docs/accelerators.md)
        "accelerator": getattr(task, "accelerator", "cpu"),
        "status": "ok", "error": None, "error_detail": None,
        "runtime": None, "device_info": None, "agent_version": None,
        "model_sha256": art.sha256, "model_bytes": art.bytes,
        "init_ms": None, "first_inference_ms": None, "warmup": task.timing.warmup, "runs": 0,
        "latency_ms": summarize([]), "median_ci_ms": None, "samples_ms": [],
        "peak_rss_mb": None, "cooldown_s": None, "accuracy": None,
        # who made this variant and how (ai-edge-quantizer or TensorFlow's converter)
        "quantizer": _quantizer(art),
        "quantizer_version": None if art.variant == "fp32" else
        package_version(QUANTIZER_PACKAGES.get(_quantizer(art) or "")),
        "recipe": art.recipe,
        "signature": getattr(art, "signature", None),  # the SignatureDef used, if any
    }


def _user_text(task: Any, message: str) -> str:
    """The message naming the model as the user did, never a cache blob (fleet/plan.py)."""
    user_text = getattr(task.artifact, "user_text", None)
    return user_text(message) if user_text is not None else message


def _quantizer(art: Any) -> Optional[str]:
    from ..models.dispatch import variant_quantizer  # pt2e-* variants are PyTorch's PT2E
    return variant_quantizer(art.variant, getattr(art.model, "quantizer", None))


def error_result(device: str, task: Any, message: str, status: str = "error",
                 detail: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A failed (or skipped) result. `error` is the one-line text people read; `detail` the
    structured facts a program reads (see errors.error_detail: type, exit code, signal,
    stderr tail, process index), so CI can tell a timeout from a crash without parsing text."""
    r = base_result(device, task)
    r["status"] = status
    r["error"] = _user_text(task, message)
    r["error_detail"] = detail
    return r


def cancelled_result(device: str, task: Any) -> Dict[str, Any]:
    """The row of a task the run's interruption (Ctrl-C, SIGTERM) stopped before it finished:
    status `skipped` (not a failure of the device), error_detail type `Cancelled`."""
    from ..errors import CANCELLED, error_detail
    message = "cancelled: the run was interrupted before this finished"
    return error_result(device, task, message, status="skipped",
                        detail=error_detail(CANCELLED, message))


def partial_result(device: str, task: Any, msg: Dict[str, Any], hello: Dict[str, Any],
                   processes: int) -> Dict[str, Any]:
    """The row of a task the run's interruption cut short after some of its `processes` worker
    processes: their merged samples (`msg`, as a `result` of those processes) with status
    `partial`, never `ok` (error_detail type `Partial` says how much ran)."""
    from ..errors import PARTIAL
    r = ok_result(device, task, msg, hello)
    if r["status"] != "ok":
        return r
    message = (f"the run was interrupted after {msg.get('processes', 1)} of {processes} worker"
               f" processes ({r['runs']} samples kept)")
    r.update(status="partial", error=message, error_detail=error_detail(PARTIAL, message))
    return r


def is_cancelled(r: Dict[str, Any]) -> bool:
    from ..errors import CANCELLED
    return (r.get("error_detail") or {}).get("type") == CANCELLED


def sample_problem(samples: Any) -> Optional[str]:
    """Why a device's latency samples (ns) cannot be a result, or None: a timing loop always
    returns at least one sample, and every invoke takes a finite, positive time."""
    if not isinstance(samples, list) or not samples:
        return "the device reported no latency samples"
    bad = [x for x in samples if isinstance(x, bool) or not isinstance(x, (int, float))
           or not math.isfinite(x) or x <= 0]
    if bad:
        return (f"the device reported {len(bad)} impossible latency sample(s) of {len(samples)}"
                f" (e.g. {repr(bad[0])[:40]} ns; each must be a positive, finite number)")
    return None


def ok_result(device: str, task: Any, msg: Dict[str, Any], hello: Dict[str, Any]) -> Dict[str, Any]:
    """The result of an agent's `result` message; an error row when its samples are impossible."""
    why = sample_problem(msg.get("samples_ns"))
    if why:
        return error_result(device, task, why, detail=error_detail(BAD_SAMPLES, why))
    r = base_result(device, task)
    samples_ms = [ns / 1e6 for ns in msg.get("samples_ns", [])]
    rt = dict(msg.get("runtime") or {})
    r.update({
        "runtime": {"name": rt.get("name"), "version": rt.get("version"),
                    "xnnpack": rt.get("xnnpack"), "threads": rt.get("threads", task.threads)},
        "device_info": msg.get("device_info") or hello.get("device_info"),
        "agent_version": hello.get("agent_version"),
        "init_ms": msg.get("init_ms"), "first_inference_ms": msg.get("first_inference_ms"),
        "warmup": msg.get("warmup", task.timing.warmup), "runs": len(samples_ms),
        "latency_ms": summarize(samples_ms),
        "samples_ms": samples_ms,
        "peak_rss_mb": (msg["peak_rss_kb"] / 1024.0) if msg.get("peak_rss_kb") else None,
        "cooldown_s": msg.get("cooldown_s"),
        "stopped_by": msg.get("stopped_by"),
        # how many of samples_ms came from each worker process, in order (see docs/results.md)
        "processes": msg.get("processes", 1),
        "process_runs": msg.get("process_runs") or [len(samples_ms)],
        "process_init_ms": msg.get("process_init_ms") or [msg.get("init_ms")],
        # what else used the device's CPU while it timed (agent/interference.py)
        "interference": msg.get("interference"),
    })
    if msg.get("placement") is not None:  # what ran where, from the runtime's compile log
        r["placement"] = msg["placement"]
    lo, hi = bootstrap_median_ci(samples_ms)
    r["median_ci_ms"] = [lo, hi] if lo is not None else None
    if msg.get("eval"):
        # a disagreeing variant keeps status "ok" (its latency is real) but carries
        # accuracy.flag, which the table shows in red and the verdict counts as a failure
        try:
            r["accuracy"] = score_eval(task, msg["eval"])
        except (UsageError, KeyError, TypeError, ValueError) as e:  # binascii.Error: ValueError
            # outputs that cannot be set beside fp32's (another shape or count: a converter
            # that changed the model's outputs; malformed data): this task's failure, not the
            # device's, and never a variant that passes for accurate
            why = ("its eval outputs cannot be compared with the fp32 reference: "
                   + (e.detail() if isinstance(e, UsageError) else f"{type(e).__name__}: {e}"))
            why = _user_text(task, why)
            r.update(status="error", error=why, error_detail=error_detail(BAD_EVAL, why))
    return r


def decode_outputs(ev: Dict[str, Any]) -> List[np.ndarray]:
    outs = []
    for o in ev.get("outputs", []):
        a = np.frombuffer(base64.b64decode(o["b64"]), dtype="<f4").reshape(o["shape"])
        outs.append(a)
    return outs


def score_eval(task: Any, ev: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    spec = task.artifact.model
    if spec.eval is None:
        return None
    from ..models.accuracy import score
    outputs = decode_outputs(ev)
    names = [o.get("signature_name") or o.get("name") for o in ev.get("outputs", [])]
    derived = spec.eval.source != "eval file"
    acc = score(outputs, spec.reference(), labels=spec.eval.labels, variant=task.artifact.variant,
                unlabeled=derived and spec.eval.labels is None, output_names=names,
                collapse_snr_db=spec.eval.collapse_snr_db)
    acc["eval_source"] = spec.eval.source
    acc["reference"] = getattr(spec, "reference_label", None)  # e.g. "pytorch fp32"
    return acc
