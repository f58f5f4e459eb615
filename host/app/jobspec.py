"""What a queued device job carries, and the plan a worker makes from it: `run`'s own request
(app/run.py's RunRequest, its checks, device selection with the flags' overrides, models and
planning), so a queued job times exactly what `run` would.

Model files are named by absolute path and sha256: the worker must see the same file (a shared
filesystem, or the same path deployed on the lab host); a different file is refused, not timed.
The data files are pinned the same way (`data`: --calibration, --eval and each --reference, a
folder by the hashes of its files): a result is never scored on other data than was submitted.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

from ..errors import UsageError
from . import run as run_service

Key = Tuple[str, str, int, str]  # model, variant, threads, accelerator

#: RunRequest fields that belong to the submitter, not to the job
_SUBMITTER_ONLY = ("devices", "config", "db", "no_store", "label", "baseline", "argv", "model")


def request_from_args(args: argparse.Namespace) -> "run_service.RunRequest":
    req = run_service.RunRequest(**{f.name: getattr(args, f.name)
                                    for f in fields(run_service.RunRequest) if hasattr(args, f.name)})
    run_service.check(req)
    return req


def job_options(req: "run_service.RunRequest") -> Dict[str, Any]:
    """The JSON a job carries: the request's timing/variant/runtime fields and the models."""
    from ..hashing import sha256_file
    models = []
    for m in req.model or run_service.DEFAULT_MODELS:
        if m.startswith("builtin:"):
            models.append({"name": m, "path": m, "sha256": None})
            continue
        if not os.path.isfile(m):
            raise UsageError(f"--model {m}: no such file")
        # results keep the name as typed (as `run` does); the worker reads the absolute path
        models.append({"name": m, "path": os.path.abspath(m), "sha256": sha256_file(Path(m))})
    opts = {k: v for k, v in asdict(req).items() if k not in _SUBMITTER_ONLY}
    data = []
    for k in ("calibration", "eval"):
        if opts.get(k) and opts[k] != "random":
            opts[k] = os.path.abspath(opts[k])
            data.append({"flag": f"--{k}", "path": opts[k], "sha256": data_sha256(opts[k], k)})
    if opts.get("reference"):
        opts["reference"] = [os.path.abspath(r) for r in opts["reference"]]
        data += [{"flag": "--reference", "path": r, "sha256": data_sha256(r, "reference")}
                 for r in opts["reference"]]
    return {"request": opts, "models": models, "data": data}


def data_sha256(path: str, flag: str) -> str:
    """The content hash of a data file, or of a folder (its files' names and hashes)."""
    from ..hashing import sha256_bytes, sha256_file
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file())
        return sha256_bytes("\n".join(f"{f.name}:{sha256_file(f)}" for f in files).encode())
    if not p.exists():
        raise UsageError(f"--{flag} {path}: no such file")
    from ..models.datafiles import check_data_file
    check_data_file(p, f"--{flag}")  # a regular file (a FIFO would block) of a sane size
    return sha256_file(p)


def check_data(options: Dict[str, Any]) -> None:
    """The worker's data files are the submitted ones (UsageError naming the first that is not)."""
    for d in options.get("data") or []:  # jobs queued before data was pinned carry none
        if not os.path.exists(d["path"]):
            raise UsageError(f"{d['flag']} {d['path']} is not on this worker's host",
                             hint="put it at the same path (a shared filesystem)")
        if data_sha256(d["path"], d["flag"].lstrip("-")) != d["sha256"]:
            raise UsageError(f"{d['flag']} {d['path']} on this worker's host is not the file that"
                             " was submitted (sha256 differs); submit again with the new data")


def planned_keys(options: Dict[str, Any]) -> List[Key]:
    req = run_service.RunRequest(**options["request"])
    from ..models.variants import parse_variants
    from ..fleet.accelerators import parse_accelerators
    from ..fleet.plan import AOT_SUFFIX
    accels = [a for a, _ in parse_accelerators(req.accelerator, delegates=req.delegate)]
    variants = parse_variants(req.variants or run_service.DEFAULT_VARIANTS)
    threads = run_service.int_list(req.threads, "--threads")
    keys = [(m["name"], v, t, a) for m in options["models"] for v in variants for a in accels
            for t in threads]
    if req.aot:  # run --aot: each variant's VARIANT+aot row, on the npu only
        keys += [(m["name"], v + AOT_SUFFIX, t, "npu") for m in options["models"]
                 for v in variants for t in threads]
    return keys


def plan_device(options: Dict[str, Any], device: str, lab: str, config: Any,
                skip: Set[Key]) -> Tuple[Any, List[Any]]:
    """(the worker's Device with the flags' overrides, its tasks), leaving out the keys already
    stored (a retried job). UsageError when the device is not this worker's or a model differs."""
    from ..hashing import sha256_file
    for m in options["models"]:
        if m["sha256"] is None:
            continue
        if not os.path.isfile(m["path"]):
            raise UsageError(f"model {m['path']} is not on this worker's host",
                             hint="put it at the same path (a shared filesystem) or use builtin:")
        if sha256_file(Path(m["path"])) != m["sha256"]:
            raise UsageError(f"model {m['path']} on this worker's host is not the file that was"
                             " submitted (sha256 differs)")
    check_data(options)
    req = run_service.RunRequest(**options["request"], devices=device, config=config,
                                 model=[m["path"] for m in options["models"]])
    (dev,) = run_service.select_devices(req)
    if dev.lab != lab:
        raise UsageError(f"device {device} is in lab {dev.lab} here, not {lab}")
    models = run_service.resolve_models(req)
    for spec, m in zip(models, options["models"]):
        spec.name = m["name"]
    tasks = run_service.plan_tasks(req, [dev], models, progress=lambda *_: None)[dev]
    return dev, [t for t in tasks if (t.artifact.model.name, t.artifact.variant, t.threads,
                                       t.accelerator) not in skip]
