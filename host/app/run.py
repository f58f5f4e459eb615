"""The run service: plan the tasks, run them on the devices, keep every result, judge the run.

`edge-bench run` parses its flags into a RunRequest, hands it here with a Display (what shows
progress and results: render/display.LiveDisplay) and prints what comes back. The steps:
plan (models -> variants -> tasks per device, fleet/plan.py), store (the run is begun before the
first task and every result is stored the moment it arrives), session (fleet/session.py runs
the devices in parallel), the run's status, the optional comparison with a baseline
(app/compare.py) and the exit-code policy (`exit_code`).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import (Any, Callable, Collection, Dict, Iterator, List, Optional, Protocol,
                    Sequence, Set, Tuple)

from ..analysis.interference import busy_note
from ..analysis.verdict import DEFAULT_THRESHOLD, Key
from ..errors import EdgeBenchError, UsageError
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
    input_shape: Optional[List[str]] = None  # --input-shape NAME=1x16000 (dynamic dims)
    variants: Optional[str] = None
    threads: str = "1"
    accelerator: str = "cpu"                # cpu,gpu,npu (host/fleet/accelerators.py)
    gpu_precision: str = "fp16"
    npu_option: Optional[str] = None        # k=v,... (edge_bench_agent.accel_spec.NPU_OPTIONS)
    require_full: bool = False
    aot: Optional[str] = None               # VENDOR[:SOC]: also each variant compiled AOT (npu)
    delegate: Optional[List[str]] = None     # PATH[:k=v,...] external delegates, a row each
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
    input_range: Optional[str] = None       # a folder of images: how pixels are normalized
    mean: Optional[str] = None
    std: Optional[str] = None
    accuracy_target: Optional[float] = None  # int8-mixed's output SNR target (dB)
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
    allow_inconclusive: bool = False        # accepted, no effect: unjudged keys only warn now
    fail_on_inconclusive: bool = False
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
    store_error: Optional[str] = None   # results the store could not take (they are in --json)


def int_list(text: str, flag: str) -> List[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected whole numbers separated by commas, e.g. 1,2,4")
    if not vals or any(v < 1 for v in vals):
        raise UsageError(f"{flag} {text!r}: expected numbers >= 1")
    return vals


#: flag -> (smallest, largest, smallest allowed); every number must be finite
FLAG_LIMITS = {
    "runs": (1, 1_000_000_000, True), "warmup": (0, 1_000_000, True),
    "min_seconds": (0, 86400, True), "max_seconds": (0, 7 * 86400, False),
    "max_runs": (1, 1_000_000_000, True), "timeout": (0, 7 * 86400, False),
    "lock_wait": (0, 86400, True), "cooldown_temp": (0, 150, False),
    "cooldown_max_s": (0, 86400, True), "threshold": (0, 100, True),
    "accuracy_target": (-100, 200, True),
}


def check(req: RunRequest) -> None:
    """Refuse bad flags before anything is quantized or pushed: every number finite and in
    range (NaN compares false with everything, so it slips through `x < 0` checks)."""
    import math
    for name, (lo, hi, lo_ok) in FLAG_LIMITS.items():
        v = getattr(req, name, None)
        if v is None:
            continue
        flag = "--" + name.replace("_", "-")
        if not math.isfinite(v) or v > hi or v < lo or (v == lo and not lo_ok):
            shown = v if isinstance(v, int) else f"{v:g}"
            raise UsageError(f"{flag} {shown}: expected a number {'>=' if lo_ok else '>'} {lo:g}"
                             f" and <= {hi:g}")
    if not 1 <= req.processes <= 100:
        raise UsageError(f"--processes {req.processes}: expected 1 to 100 worker processes per"
                         " model (3 is the default)")
    if req.label is not None:
        from ..results.record import check_label
        check_label(req.label)
    if req.baseline and req.no_store:
        raise UsageError("--baseline needs the results store (drop --no-store)")


def select_devices(req: RunRequest, note: Optional[Callable[[str], None]] = None) -> List[Any]:
    """The devices of devices.yaml that --devices names, with the flags' overrides applied
    (flags > devices.yaml; None keeps the device's own setting). `note` hears which
    devices.yaml is in use (it chooses what runs: docs/security.md)."""
    from ..config import find_config, load_fleet
    fleet = load_fleet(find_config(req.config))
    if note is not None and fleet.path is not None:
        note(f"devices from {fleet.path.resolve()}")
    devices = fleet.select(req.devices)
    overrides: Dict[str, Any] = {}
    if req.no_xnnpack:
        overrides["xnnpack"] = False
    if req.runtime:
        overrides["runtime"] = req.runtime
    if req.timeout is not None:
        overrides["timeout_s"] = req.timeout
    overrides.update(lock_wait_s=req.lock_wait, cooldown_temp_c=req.cooldown_temp,
                     cooldown_max_s=req.cooldown_max_s)
    return [d.with_overrides(**overrides) for d in devices]


def plan_tasks(req: RunRequest, devices: Sequence[Any], models: Sequence[Any],
               progress: Callable[[int, int, str, str], None]) -> Dict[Any, List[Any]]:
    """device -> its tasks: every variant of every model at every thread count.
    `progress(done, total, model, variant)` follows the quantization (fleet/plan.py)."""
    from ..fleet.accelerators import device_delegate, parse_accelerators
    from ..fleet.plan import AOT_SUFFIX, Timing, aot_artifacts, make_artifacts
    from ..fleet.runner import Task
    from ..models.dispatch import parse_quantizers, route_variants
    from ..models.variants import GIVEN, VARIANTS, parse_variants
    allowed = VARIANTS + (GIVEN,)
    quantizers = parse_quantizers(req.quantizer)
    variants = route_variants(parse_variants(req.variants or DEFAULT_VARIANTS, allowed),
                              quantizers)  # pt2e: pt2e-int8, ...
    threads = int_list(req.threads, "--threads")
    accels = parse_accelerators(req.accelerator, gpu_precision=req.gpu_precision,
                                npu_options=req.npu_option, require_full=req.require_full,
                                delegates=req.delegate)
    timing = Timing(runs=req.runs, warmup=req.warmup, min_seconds=req.min_seconds,
                    max_seconds=req.max_seconds, max_runs=max(req.max_runs, req.runs),
                    processes=req.processes, interleave=req.interleave)
    artifacts: List[Any] = []
    for m in models:  # defaults without calibration data: int8 shown skipped, dynamic-int8 made
        mine = variants if req.variants or m.calibration else route_variants(
            parse_variants(DEFAULT_VARIANTS_NO_CALIBRATION, allowed), quantizers)
        artifacts += make_artifacts([m], mine, progress=progress)
    if req.aot:  # VARIANT+aot rows: the NPU's AOT file next to its JIT compile
        if "npu" not in [a for a, _ in accels]:
            raise UsageError("--aot needs --accelerator npu (an AOT-compiled model runs only"
                             " on the NPU), e.g. --accelerator cpu,npu")
        artifacts += aot_artifacts(artifacts, req.aot)
    plan = {}
    for d in devices:
        tasks: List[Any] = []
        mine = list(accels)  # + the device's own external delegate (devices.yaml `delegate:`)
        extra = device_delegate(getattr(d, "delegate", None), req.require_full)
        if extra is not None and extra[0] not in [a for a, _ in mine]:
            mine.append(extra)
        for a in artifacts:
            for acc, spec in mine:
                if a.variant.endswith(AOT_SUFFIX) and acc != "npu":
                    continue  # its DISPATCH_OP runs on the NPU only
                for th in threads:
                    tasks.append(Task(id=f"t{len(tasks)}", artifact=a, threads=th, timing=timing,
                                      accelerator=acc, accel=spec))
        plan[d] = tasks
    return plan


def resolve_models(req: RunRequest) -> List[Any]:
    from ..fleet.plan import resolve_model
    names = req.model or DEFAULT_MODELS
    refs = req.reference or []
    if refs and len(refs) != len(names):
        raise UsageError(f"--reference given {len(refs)} times for {len(names)} --model(s)",
                         hint="give one --reference per --model, in the same order")
    from ..models.imagedata import ImageOptions
    from ..models.shapes import parse_input_shapes
    images = ImageOptions(req.input_range, req.mean, req.std)
    shapes = parse_input_shapes(req.input_shape)
    models = [resolve_model(m, req.calibration, req.eval, req.quantizer,
                            refs[i] if refs else None, req.signature, shapes, images)
              for i, m in enumerate(names)]
    for s in models:
        s.accuracy_target = req.accuracy_target
    unused = [n for n in shapes if n and not any(n in m.input_names for m in models)]
    if unused:
        raise UsageError(f"--input-shape {unused[0]}=...: no --model has an input of that name",
                         hint="inputs: " + "; ".join(f"{m.name}: " + ", ".join(
                             n for n in m.input_names if n) for m in models))
    return models


def run_status(results: Sequence[Dict[str, Any]], interrupted: bool) -> str:
    """`interrupted`, `partial` (a result failed or disagrees with fp32) or `ok`."""
    if interrupted:
        return "interrupted"
    return "partial" if failed_results(results) else "ok"


def failed_results(results: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Errors and flagged outputs; a deliberate skip (its reason is shown) is not a failure,
    nor is a `partial` result (an interrupted run's: the run is `interrupted`)."""
    return [r for r in results if r["status"] not in ("ok", "skipped", "partial")
            or (r.get("accuracy") or {}).get("flag")]


class StoreWriter:
    """Writes results into the store as they arrive without ever stopping the run: a write that
    fails (the store locked by another process past its busy timeout, a corrupt page, a full
    disk) keeps the result in `pending`, says so once, and later results are queued behind it;
    `flush` tries the queue again at the end. The results always reach --json and the table."""

    def __init__(self, store: Any, run_id: str, note: Callable[[str], None]) -> None:
        self.store, self.run_id, self.note = store, run_id, note
        self.pending: List[Dict[str, Any]] = []
        self.error: Optional[str] = None

    def add(self, r: Dict[str, Any]) -> None:
        if self.pending:                      # keep the store's order; retried in flush()
            self.pending.append(r)
            return
        self._try(r)

    def _try(self, r: Dict[str, Any]) -> bool:
        from ..errors import StoreError
        try:
            self.store.add_result(self.run_id, r)
            return True
        except StoreError as e:
            if self.error is None:
                self.note(f"edge-bench: warning: {e}; results go on to the table and --json,"
                          " the store is tried again at the end")
            self.error = str(e)
            self.pending.append(r)
            return False

    def flush(self) -> None:
        queued, self.pending = self.pending, []
        for i, r in enumerate(queued):
            if not self._try(r):
                self.pending.extend(queued[i + 1:])
                return
        if queued and not self.pending:
            self.error = None                 # everything made it in the end

    def finish(self, status: str) -> None:
        from ..errors import StoreError
        try:
            self.store.finish_run(self.run_id, status)
        except StoreError as e:
            self.error = self.error or str(e)
            self.note(f"edge-bench: warning: {e}; the run stays `running` in the store until"
                      " it is read again (then `abandoned`)")


@contextmanager
def calibration_warnings(note: Callable[[str], None], said: List[str]) -> Iterator[None]:
    """Every CalibrationWarning raised inside (one per model and static variant: random
    calibration) said once per run (`said`: what this run said already), as one line through
    `note`, not as a Python warning with its source line; other warnings are shown as usual."""
    from ..models.quantize import CalibrationWarning
    with warnings.catch_warnings():
        warnings.simplefilter("always", CalibrationWarning)
        shown = warnings.showwarning

        def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                 line: Optional[str] = None) -> None:
            if not issubclass(category, CalibrationWarning):
                shown(message, category, filename, lineno, file, line)   # as it would be
            elif str(message) not in said:
                said.append(str(message))
                note(f"edge-bench: warning: {message}")
        warnings.showwarning = show
        yield


def execute(req: RunRequest, display: Display, json_out: Optional[str] = None,
            only: Optional[Collection[Key]] = None, json_later: bool = False) -> RunOutcome:
    """Run `req` to the end (or to Ctrl-C / SIGTERM), storing as it goes; --json written last.
    `only`: time just these (device, model, variant, threads, accelerator) keys of the plan. `json_later`:
    the caller writes --json (after a confirmation); here only if the run ends in an error."""
    check(req)
    devices = select_devices(req, note=display.note)
    if req.op_profiling:
        cannot = [d.name for d in devices if d.runner != "benchmark_model"]
        if cannot:
            display.note(f"edge-bench: --op-profiling: {', '.join(cannot)} cannot profile ops"
                         " (the python runner has no per-op profiler; a device with `runner:"
                         " benchmark_model` in devices.yaml has): timed without a profile")
    said: List[str] = []  # warnings said once per run
    with calibration_warnings(display.note, said):
        models = resolve_models(req)
    if json_out:
        from ..results.document import check_writable
        check_writable(json_out, "--json")
    store = None
    if not req.no_store:
        # opened and tried before any work: an unwritable or locked --db fails now
        from ..results.backend import open_store
        store = open_store(req.db)
        store.check_writable()   # a real no-op write, SQLite and PostgreSQL alike
        if req.baseline and not req.baseline.startswith("last"):
            store.resolve(req.baseline)  # a typo fails now, not after the whole benchmark
    try:
        with calibration_warnings(display.note, said):
            plan = plan_tasks(req, devices, models, progress=display.on_quantize)
    finally:
        display.stop()  # the quantization's progress; the run's starts with the session
    if only is not None:
        plan = {d: [t for t in tasks
                    if (d.name, t.artifact.model.name, t.artifact.variant, t.threads,
                        t.accelerator) in only]
                for d, tasks in plan.items()}
        plan = {d: tasks for d, tasks in plan.items() if tasks}
    display.plan({d.name: [(t.id, t.artifact.model.name, t.artifact.variant, t.threads)
                           for t in tasks] for d, tasks in plan.items()},
                 next((t.timing for tasks in plan.values() for t in tasks), None))

    from ..results.record import new_run
    doc = new_run(req.label, list(req.argv))
    if store is not None:
        doc["run_id"] = store.begin_run(doc) or doc["run_id"]

    writer = StoreWriter(store, doc["run_id"], display.note) if store is not None else None

    busy_devices: Set[Any] = set()  # devices already said to be busy

    def on_result(r: Dict[str, Any]) -> None:
        doc["results"].append(r)
        if writer is not None:
            writer.add(r)      # never raises: a store failure must not stop the benchmark
        display.on_result(r)
        busy = busy_note(r) if r.get("device") not in busy_devices else None
        if busy is not None:   # said while it runs, once per device: its slowdowns are not judged
            busy_devices.add(r.get("device"))
            display.note(f"edge-bench: warning: {busy}")

    from ..fleet.session import Session
    # cooldown and lock wait travel on each Device (flags > devices.yaml), see DeviceRun
    session = Session(plan, on_result=on_result, on_status=display.on_status, job_id=doc["run_id"],
                      op_profiling=req.op_profiling, on_progress=display.on_progress)
    interrupted = ended = False
    try:
        with display:
            try:
                session.run()
            except KeyboardInterrupt:
                interrupted = True
        ended = True
    finally:
        doc["devices"] = {r.device.name: r.summary() for r in session.runs}
        doc["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        doc["status"] = run_status(doc["results"], interrupted)
        if writer is not None:
            writer.flush()     # the results the store refused, once more (busy timeout)
            if writer.error is not None:
                doc["status"] = "interrupted" if interrupted else "partial"
            if not writer.pending:
                writer.finish(doc["status"])   # else it would only wait out the lock again
            if writer.error is not None:
                doc["status"] = "interrupted" if interrupted else "partial"
                doc["store_error"] = (f"{len(writer.pending)} of {len(doc['results'])} results"
                                      f" not in the results store: {writer.error}")
        if json_out and not (json_later and ended):
            from ..results.document import write_json
            write_json(doc, json_out)
    return RunOutcome(doc=doc, failed=failed_results(doc["results"]), interrupted=interrupted,
                      signal=session.signal, store=store,
                      store_error=doc.get("store_error"))


def compare_baseline(req: RunRequest, out: RunOutcome) -> Optional[Dict[str, Any]]:
    """`--baseline`: the finished run compared with it (app/compare.py, the service `compare`
    uses too); None when `last`/`last~N` found no earlier run (the first night)."""
    if out.store is None:
        raise UsageError("--baseline needs the results store (drop --no-store)")
    return compare_with_baseline(out.store, str(req.baseline), out.doc,
                                 Settings(threshold=req.threshold))


def confirm_regressions(req: RunRequest, out: RunOutcome, comparison: Dict[str, Any],
                        display: Display) -> Dict[str, Any]:
    """--fail-on-regression: measure the keys judged `slower` once more (not stored: the run in
    the store is the one made) and keep them `slower` only when the re-measurement against the
    same baseline is slower too (analysis/confirm.py says why)."""
    from ..analysis.confirm import apply_confirmation, keys_to_confirm
    keys = keys_to_confirm(comparison)
    if not keys:
        return comparison
    again_req = replace(req, no_store=True, label=None, baseline=None)
    try:
        again = execute(again_req, display, only=keys)
    except EdgeBenchError as e:   # e.g. a model file changed into garbage since the run
        apply_confirmation(comparison, None, failure=str(e))
        keep_confirmations(out, comparison)
        return comparison
    if again.interrupted:
        raise KeyboardInterrupt
    base_id = str(comparison["base"]["run_id"])
    recheck = compare_with_baseline(out.store, base_id, again.doc, Settings(threshold=req.threshold))
    apply_confirmation(comparison, recheck, run_id=again.doc.get("run_id"))
    keep_confirmations(out, comparison)
    return comparison


def keep_confirmations(out: RunOutcome, comparison: Dict[str, Any]) -> None:
    """The re-measurements go with the run (document and store), so that `compare` of the
    stored runs later gives the verdicts `run` gave."""
    from ..analysis.confirm import confirmations
    out.doc["confirmations"] = confirmations(comparison)
    if out.store is not None and out.doc["confirmations"]:
        try:
            out.store.annotate_run(str(out.doc["run_id"]), "confirmations",
                                   out.doc["confirmations"])
        except EdgeBenchError:
            pass   # the verdict stands; `compare` would show the first measurement's


def exit_code(out: RunOutcome, comparison: Optional[Dict[str, Any]],
              fail_on_regression: bool, fail_on_inconclusive: bool = False) -> int:
    """128 + signal when interrupted (130 Ctrl-C, 143 SIGTERM); 1 for a regression with
    --fail-on-regression (or keys it could not judge, with fail_on_inconclusive: else they
    only warn, analysis/gate.py); 3 when a result failed or the store lost results; else 0."""
    from ..analysis.gate import gate
    if out.interrupted:
        return 128 + int(out.signal or 2)
    if comparison is not None and gate(comparison, fail_on_regression,
                                       fail_on_inconclusive)["code"]:
        return 1
    return 3 if out.failed or out.store_error else 0
