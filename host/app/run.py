"""The run service: plan the tasks, run them on the devices, keep every result, judge the run.

`edge-bench run` parses its flags into a RunRequest, hands it here with a Display (what shows
progress and results: render/display.LiveDisplay) and prints what comes back. The steps:
plan (models -> variants -> tasks per device, fleet/plan.py), store (the run is begun before the
first task and every result is stored the moment it arrives), session (fleet/session.py runs
the devices in parallel), the run's status, the optional comparison with a baseline
(app/compare.py) and the exit-code policy (`exit_code`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

from ..analysis.verdict import DEFAULT_THRESHOLD
from ..errors import UsageError
from .compare import Settings, compare_with_baseline

DEFAULT_MODELS = ["builtin:digits", "builtin:mobilenet"]
DEFAULT_VARIANTS = "fp32,int8"
#: the defaults for a model without calibration data: int8 is shown skipped (it needs
#: calibration), dynamic-int8 (no calibration needed) is made instead of nothing quantized
DEFAULT_VARIANTS_NO_CALIBRATION = "fp32,dynamic-int8,int8"


class Display(Protocol):
    """What the service reports to while it runs (render/display.LiveDisplay)."""

    def on_quantize(self, done: int, total: int, model: str, variant: str) -> None: ...
    def plan(self, plan: Dict[str, List[Tuple[str, str, str, int]]], timing: Any) -> None: ...
    def on_status(self, device: str, text: str) -> None: ...
    def on_progress(self, device: str, info: Dict[str, Any]) -> None: ...
    def on_result(self, r: Dict[str, Any]) -> None: ...
    def stop(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: Any) -> None: ...


@dataclass
class RunRequest:
    """What to run: the flags of `edge-bench run` (names as argparse makes them)."""
    devices: Optional[str] = None
    config: Optional[str] = None
    model: Optional[List[str]] = None
    reference: Optional[List[str]] = None   # float .tflite per --model (already-quantized ones)
    signature: Optional[str] = None         # SignatureDef key (default: serving_default, else first)
    variants: Optional[str] = None
    threads: str = "1"
    runs: int = 50
    warmup: int = 5
    min_seconds: float = 1.0
    max_seconds: float = 60.0
    max_runs: int = 10000
    processes: int = 3
    interleave: bool = True
    calibration: Optional[str] = None
    quantizer: str = "ai-edge-quantizer"
    eval: Optional[str] = None
    no_xnnpack: bool = False
    runtime: Optional[str] = None
    cooldown_temp: Optional[float] = None
    cooldown_max_s: Optional[float] = None
    lock_wait: Optional[float] = None
    op_profiling: bool = False
    timeout: Optional[float] = None
    db: Optional[str] = None
    no_store: bool = False
    label: Optional[str] = None
    baseline: Optional[str] = None
    threshold: float = DEFAULT_THRESHOLD
    argv: List[str] = field(default_factory=lambda: ["edge-bench", "run"])


@dataclass
class RunOutcome:
    """What a run left: its document (also in the store and --json), the failed results, how
    it ended, and the open store it went to (None with --no-store)."""
    doc: Dict[str, Any]
    failed: List[Dict[str, Any]]
    interrupted: bool = False
    signal: Optional[int] = None
    store: Any = None


def int_list(text: str, flag: str) -> List[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected whole numbers separated by commas, e.g. 1,2,4")
    if not vals or any(v < 1 for v in vals):
        raise UsageError(f"{flag} {text!r}: expected numbers >= 1")
    return vals


def check(req: RunRequest) -> None:
    """Refuse bad flags before anything is quantized or pushed."""
    if req.runs < 1 or req.warmup < 0 or req.min_seconds < 0 or req.max_seconds <= 0:
        raise UsageError("--runs must be >= 1, --warmup and --min-seconds >= 0, --max-seconds > 0")
    if not 1 <= req.processes <= 100:
        raise UsageError(f"--processes {req.processes}: expected 1 to 100 worker processes per"
                         " model (3 is the default)")
    if req.lock_wait is not None and req.lock_wait < 0:
        raise UsageError(f"--lock-wait {req.lock_wait:g}: expected seconds >= 0")
    if req.cooldown_max_s is not None and req.cooldown_max_s < 0:
        raise UsageError(f"--cooldown-max-s {req.cooldown_max_s:g}: expected seconds >= 0")
    if req.baseline and req.no_store:
        raise UsageError("--baseline needs the results store (drop --no-store)")


def select_devices(req: RunRequest) -> List[Any]:
    """The devices of devices.yaml that --devices names, with the flags' overrides applied
    (flags > devices.yaml; None keeps the device's own setting)."""
    from ..config import find_config, load_fleet
    devices = load_fleet(find_config(req.config)).select(req.devices)
    overrides: Dict[str, Any] = {}
    if req.no_xnnpack:
        overrides["xnnpack"] = False
    if req.runtime:
        overrides["runtime"] = req.runtime
    if req.timeout:
        overrides["timeout_s"] = req.timeout
    overrides.update(lock_wait_s=req.lock_wait, cooldown_temp_c=req.cooldown_temp,
                     cooldown_max_s=req.cooldown_max_s)
    return [d.with_overrides(**overrides) for d in devices]


def plan_tasks(req: RunRequest, devices: Sequence[Any], models: Sequence[Any],
               progress: Callable[[int, int, str, str], None]) -> Dict[Any, List[Any]]:
    """device -> its tasks: every variant of every model at every thread count.
    `progress(done, total, model, variant)` follows the quantization (fleet/plan.py)."""
    from ..fleet.plan import Timing, make_artifacts
    from ..fleet.runner import Task
    from ..models.variants import GIVEN, VARIANTS, parse_variants
    allowed = VARIANTS + (GIVEN,)
    variants = parse_variants(req.variants or DEFAULT_VARIANTS, allowed)
    threads = int_list(req.threads, "--threads")
    timing = Timing(runs=req.runs, warmup=req.warmup, min_seconds=req.min_seconds,
                    max_seconds=req.max_seconds, max_runs=max(req.max_runs, req.runs),
                    processes=req.processes, interleave=req.interleave)
    artifacts: List[Any] = []
    for m in models:  # defaults without calibration data: int8 shown skipped, dynamic-int8 made
        mine = variants if req.variants or m.calibration else parse_variants(
            DEFAULT_VARIANTS_NO_CALIBRATION, allowed)
        artifacts += make_artifacts([m], mine, progress=progress)
    plan = {}
    for d in devices:
        tasks: List[Any] = []
        for a in artifacts:
            for th in threads:
                tasks.append(Task(id=f"t{len(tasks)}", artifact=a, threads=th, timing=timing))
        plan[d] = tasks
    return plan


def resolve_models(req: RunRequest) -> List[Any]:
    from ..fleet.plan import resolve_model
    names = req.model or DEFAULT_MODELS
    refs = req.reference or []
    if refs and len(refs) != len(names):
        raise UsageError(f"--reference given {len(refs)} times for {len(names)} --model(s)",
                         hint="give one --reference per --model, in the same order")
    return [resolve_model(m, req.calibration, req.eval, req.quantizer, refs[i] if refs else None,
                          req.signature)
            for i, m in enumerate(names)]


def run_status(results: Sequence[Dict[str, Any]], interrupted: bool) -> str:
    """`interrupted`, `partial` (a result failed or disagrees with fp32) or `ok`."""
    if interrupted:
        return "interrupted"
    return "partial" if failed_results(results) else "ok"


def failed_results(results: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Errors and flagged outputs; a deliberate skip (its reason is shown) is not a failure."""
    return [r for r in results if r["status"] not in ("ok", "skipped")
            or (r.get("accuracy") or {}).get("flag")]


def execute(req: RunRequest, display: Display, json_out: Optional[str] = None) -> RunOutcome:
    """Run `req` to the end (or to Ctrl-C / SIGTERM), storing as it goes; --json written last."""
    check(req)
    devices = select_devices(req)
    models = resolve_models(req)
    try:
        plan = plan_tasks(req, devices, models, progress=display.on_quantize)
    finally:
        display.stop()  # the quantization's progress; the run's starts with the session
    display.plan({d.name: [(t.id, t.artifact.model.name, t.artifact.variant, t.threads)
                           for t in tasks] for d, tasks in plan.items()},
                 next((t.timing for tasks in plan.values() for t in tasks), None))

    from ..results.record import new_run
    doc = new_run(req.label, list(req.argv))
    store = None
    if not req.no_store:
        from ..results.backend import open_store
        store = open_store(req.db)
        if req.baseline and not req.baseline.startswith("last"):
            store.resolve(req.baseline)  # a typo fails now, not after the whole benchmark
        doc["run_id"] = store.begin_run(doc) or doc["run_id"]

    def on_result(r: Dict[str, Any]) -> None:
        doc["results"].append(r)
        if store is not None:
            store.add_result(doc["run_id"], r)
        display.on_result(r)

    from ..fleet.session import Session
    # cooldown and lock wait travel on each Device (flags > devices.yaml), see DeviceRun
    session = Session(plan, on_result=on_result, on_status=display.on_status, job_id=doc["run_id"],
                      op_profiling=req.op_profiling, on_progress=display.on_progress)
    interrupted = False
    try:
        with display:
            try:
                session.run()
            except KeyboardInterrupt:
                interrupted = True
    finally:
        doc["devices"] = {r.device.name: r.summary() for r in session.runs}
        doc["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        doc["status"] = run_status(doc["results"], interrupted)
        if store is not None:
            store.finish_run(doc["run_id"], doc["status"])
        if json_out:
            from ..results.document import write_json
            write_json(doc, json_out)
    return RunOutcome(doc=doc, failed=failed_results(doc["results"]), interrupted=interrupted,
                      signal=session.signal, store=store)


def compare_baseline(req: RunRequest, out: RunOutcome) -> Optional[Dict[str, Any]]:
    """`--baseline`: the finished run compared with it (app/compare.py, the service `compare`
    uses too); None when `last`/`last~N` found no earlier run (the first night)."""
    if out.store is None:
        raise UsageError("--baseline needs the results store (drop --no-store)")
    return compare_with_baseline(out.store, str(req.baseline), out.doc,
                                 Settings(threshold=req.threshold))


def exit_code(out: RunOutcome, comparison: Optional[Dict[str, Any]],
              fail_on_regression: bool) -> int:
    """128 + signal when interrupted (130 Ctrl-C, 143 SIGTERM); 1 for a regression with
    --fail-on-regression; 3 when a result failed; else 0."""
    if out.interrupted:
        return 128 + int(out.signal or 2)
    if fail_on_regression and comparison is not None and comparison["regressed"]:
        return 1
    return 3 if out.failed else 0
