"""What a queued device job carries: `run`'s options as plain JSON, and the plan a worker makes
from them for its device (the same models, variants, threads and timing as `run` would use).

Model files are named by absolute path and sha256: the worker must see the same file (a shared
filesystem, or the same path deployed on the lab host); a different file is refused, not timed.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

from ..errors import UsageError

Key = Tuple[str, str, int]


def options_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """`run`'s options (already parsed) as the JSON a job carries; checks them like `run`."""
    from ..commands.run import DEFAULT_MODELS, DEFAULT_VARIANTS, _int_list
    from ..hashing import sha256_file
    from ..models.quantize import parse_variants
    if args.runs < 1 or args.warmup < 0 or args.min_seconds < 0 or args.max_seconds <= 0:
        raise UsageError("--runs must be >= 1, --warmup and --min-seconds >= 0, --max-seconds > 0")
    if not 1 <= args.processes <= 100:
        raise UsageError(f"--processes {args.processes}: expected 1 to 100 worker processes per"
                         " model (3 is the default)")
    models = []
    for m in args.model or DEFAULT_MODELS:
        if m.startswith("builtin:"):
            models.append({"name": m, "path": m, "sha256": None})
            continue
        if not os.path.isfile(m):
            raise UsageError(f"--model {m}: no such file")
        # results keep the name as typed (as `run` does); the worker reads the absolute path
        models.append({"name": m, "path": os.path.abspath(m), "sha256": sha256_file(Path(m))})
    overrides = {"xnnpack": False if args.no_xnnpack else None, "runtime": args.runtime,
                 "timeout_s": args.timeout, "lock_wait_s": args.lock_wait,
                 "cooldown_temp_c": args.cooldown_temp, "cooldown_max_s": args.cooldown_max_s}

    def path(p: Any) -> Any:
        return os.path.abspath(p) if p and p != "random" else p
    return {
        "models": models,
        "variants": list(parse_variants(args.variants or DEFAULT_VARIANTS)),
        "threads": _int_list(args.threads, "--threads"),
        "timing": {"runs": args.runs, "warmup": args.warmup, "min_seconds": args.min_seconds,
                   "max_seconds": args.max_seconds, "max_runs": max(args.max_runs, args.runs),
                   "processes": args.processes, "interleave": args.interleave},
        "calibration": path(args.calibration), "eval": path(args.eval),
        "quantizer": args.quantizer, "op_profiling": bool(args.op_profiling),
        "overrides": {k: v for k, v in overrides.items() if v is not None},
    }


def planned_keys(options: Dict[str, Any]) -> List[Key]:
    """(model, variant, threads) of every result a job for these options produces."""
    return [(m["name"], v, t) for m in options["models"] for v in options["variants"]
            for t in options["threads"]]


def plan_tasks(options: Dict[str, Any], skip: Set[Key], progress: Any = None) -> List[Any]:
    """The tasks of one device's job, leaving out the keys already stored (a retried job)."""
    from ..fleet.plan import Timing, make_artifacts, resolve_model
    from ..fleet.runner import Task
    from ..hashing import sha256_file
    todo_models = []
    for m in options["models"]:
        if all((m["name"], v, t) in skip for v in options["variants"] for t in options["threads"]):
            continue
        if m["sha256"] is not None:
            if not os.path.isfile(m["path"]):
                raise UsageError(f"model {m['path']} is not on this worker's host",
                                 hint="put it at the same path (a shared filesystem) or use builtin:")
            if sha256_file(Path(m["path"])) != m["sha256"]:
                raise UsageError(f"model {m['path']} on this worker's host is not the file that"
                                 " was submitted (sha256 differs)")
        spec = resolve_model(m["path"], options.get("calibration"), options.get("eval"),
                             options.get("quantizer"))
        spec.name = m["name"]
        todo_models.append(spec)
    timing = Timing(**options["timing"])
    arts = make_artifacts(todo_models, options["variants"], progress=progress)
    tasks: List[Any] = []
    for a in arts:
        for th in options["threads"]:
            if (a.model.name, a.variant, th) in skip:
                continue
            tasks.append(Task(id=f"t{len(tasks)}", artifact=a, threads=th, timing=timing))
    return tasks
