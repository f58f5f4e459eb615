"""What to run: models x variants x threads, resolved into files ready to push.

Quantized variants are made on the host (cached by model sha256 + variant + calibration sha256);
the fp32 reference outputs for eval data are computed on the host too.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from edge_bench_agent import tensors

from ..errors import EdgeBenchError, UsageError
from ..hashing import sha256_file


@dataclass
class Timing:
    """How one task is timed. runs, min_seconds, max_seconds and max_runs are totals over the
    task's `processes` worker processes; `per_process()` is what each process is asked for."""
    runs: int = 50
    warmup: int = 5
    min_seconds: float = 1.0
    max_seconds: float = 60.0
    max_runs: int = 10000
    processes: int = 3          # worker processes per task (see docs/results.md)
    interleave: bool = True     # run the tasks' processes round-robin, not back to back

    def per_process(self) -> Dict[str, Any]:
        k = max(1, int(self.processes))
        return {"runs": -(-self.runs // k), "warmup": self.warmup,
                "min_seconds": self.min_seconds / k, "max_seconds": self.max_seconds / k,
                "max_runs": max(-(-self.runs // k), self.max_runs // k), "processes": k}


@dataclass
class EvalData:
    path: Path
    sha256: str
    inputs: Dict[str, np.ndarray]
    labels: Optional[np.ndarray]


@dataclass
class ModelSpec:
    name: str                        # as the user named it: builtin:digits or a path
    path: Path                       # the float model
    calibration: Optional[str] = None  # path or "random"
    eval: Optional[EvalData] = None
    source: Any = None               # Keras/SavedModel path or pytorch.TorchModel `path` came from
    quantizer: str = "ai-edge-quantizer"  # who makes the variants (dispatch.QUANTIZERS)
    _reference: Optional[List[np.ndarray]] = None
    _ref_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def reference_label(self) -> str:
        """What variants are scored against: the PyTorch model itself for PyTorch models."""
        from ..models.pytorch import TorchModel
        from ..models.pytorch.reference import REFERENCE
        return REFERENCE if isinstance(self.source, TorchModel) else "fp32 .tflite"

    def reference(self) -> Optional[List[np.ndarray]]:
        """fp32 outputs for every eval sample, computed once on the host (by the PyTorch model
        for PyTorch models: the fp32 row then shows the conversion's own error)."""
        if self.eval is None:
            return None
        with self._ref_lock:
            from ..models.pytorch import TorchModel
            if self._reference is None and isinstance(self.source, TorchModel):
                from ..models.pytorch.reference import torch_outputs
                self._reference = torch_outputs(self.source, self.eval.inputs)
            if self._reference is None:
                from ..models.accuracy import reference_outputs
                self._reference = reference_outputs(self.path, self.eval.inputs)
            return self._reference


@dataclass
class Artifact:
    """One variant of one model, as a file on the host (or why it could not be made)."""

    model: ModelSpec
    variant: str
    path: Optional[Path] = None
    sha256: Optional[str] = None
    bytes: Optional[int] = None
    recipe: Optional[str] = None
    error: Optional[str] = None


def resolve_model(name: str, calibration: Optional[str], eval_file: Optional[str],
                  quantizer: Optional[str] = None) -> ModelSpec:
    """builtin:NAME, a float .tflite, or a Keras/SavedModel (converted to fp32, needs [tf]);
    built-ins bring their calibration and eval."""
    from ..models.dispatch import check_quantizer, float_model, main_quantizer, parse_quantizers
    from ..models.pytorch import is_torch_model
    if is_torch_model(name):  # .pt2, module:function or builtin:digits-torch (needs [torch])
        fp32, source = float_model(name)
        cal, ev = calibration, eval_file
        if name.startswith("builtin:"):
            from ..models.builtin.torch_models import resolve_torch
            b = resolve_torch(name)
            cal, ev = cal or str(b.calibration), ev or str(b.eval)
        spec = ModelSpec(name=name, path=fp32, calibration=cal, source=source)
    elif name.startswith("builtin:"):
        from ..models.builtin import resolve
        b = resolve(name)
        cal = calibration or (str(b.calibration) if b.calibration else None)
        ev = eval_file or (str(b.eval) if b.eval else None)
        spec = ModelSpec(name=name, path=Path(b.path), calibration=cal)
    else:
        p = Path(name).expanduser()
        if not p.exists():
            raise UsageError(f"--model {name}: no such file",
                             hint="give a path to a .tflite file (or .keras/.h5/SavedModel with"
                                  " the [tf] extra) or builtin:digits / builtin:mobilenet")
        fp32, source = float_model(p)
        spec = ModelSpec(name=name, path=fp32, calibration=calibration, source=source)
        ev = eval_file
    quantizers = parse_quantizers(quantizer or spec.quantizer)  # e.g. ai-edge-quantizer,pt2e
    for q in quantizers:
        check_quantizer(q, spec.source, name)
    spec.quantizer = main_quantizer(quantizers)
    if ev:
        spec.eval = load_eval(Path(ev), spec.path)
    return spec


def load_eval(path: Path, model_path: Path) -> EvalData:
    """An .npz with the model inputs (by input name, or `x` for one input) and optional labels `y`."""
    if not path.is_file():
        raise UsageError(f"--eval {path}: no such file")
    try:
        arrays = tensors.load_npz(path, "--eval")
    except tensors.AgentError as e:
        raise UsageError(e.message, hint="save with numpy.savez(path, x=inputs, y=labels)") from None
    from ..models.modelinfo import model_inputs
    specs = model_inputs(model_path)
    try:  # the agent's rule (tensor name, signature name, `x`): what the host accepts, it does
        keys = tensors.match_keys(arrays, [s.detail for s in specs], f"--eval {path}")
    except tensors.AgentError as e:
        raise UsageError(e.message,
                         hint="name arrays after the model inputs, or `x` for a one-input model") from None
    inputs: Dict[str, np.ndarray] = {}
    for spec, key in zip(specs, keys):
        a = arrays[key]
        shape = tensors.fit_shape(tuple(int(x) for x in a.shape[1:]), spec.detail) if a.ndim else None
        if shape is None or a.shape[0] == 0:
            want = list(spec.shape[1:])
            raise UsageError(f"--eval {path}: array {key!r} has shape {list(a.shape)}; model input"
                             f" {spec.name!r} needs [N, {', '.join(map(str, want))}]")
        inputs[spec.name] = a
    labels = arrays.get("y")
    n = len(next(iter(inputs.values())))
    if labels is not None and len(labels) != n:
        raise UsageError(f"--eval {path}: {len(labels)} labels in 'y' for {n} samples")
    return EvalData(path=path, sha256=sha256_file(path), inputs=inputs, labels=labels)


def make_artifacts(models: Sequence[ModelSpec], variants: Sequence[str],
                   progress: Optional[Callable[[int, int, str, str], None]] = None,
                   cache_dir: Optional[Path] = None) -> List[Artifact]:
    """Quantize every model into every variant (cached). A failed variant never stops the rest.
    `progress(done, total, model, variant)` before each step and once more with done == total."""
    from ..models.dispatch import make_variant
    out: List[Artifact] = []
    total = len(models) * len(variants)
    for m in models:
        for v in variants:
            if progress:
                progress(len(out), total, m.name, v)
            art = Artifact(model=m, variant=v)
            try:
                q = make_variant(m.path, v, None, m.calibration, quantizer=m.quantizer,
                                 source=m.source, cache_dir=cache_dir)
                art.path, art.sha256, art.bytes = Path(q.path), q.sha256, q.bytes
                art.recipe = getattr(q, "recipe_description", None)
            except EdgeBenchError as e:
                art.error = str(e)
            out.append(art)
    if progress:
        progress(total, total, "", "")
    return out


def describe(obj: Any) -> str:  # pragma: no cover - debugging aid
    return repr(obj)
