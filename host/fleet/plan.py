"""What to run: models x variants x threads, resolved into files ready to push.

Quantized variants are made on the host (cached by model sha256 + variant + calibration sha256);
the fp32 reference outputs for eval data are computed on the host too.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from edge_bench_agent import tensors

from ..errors import EdgeBenchError, UsageError
from ..hashing import sha256_file
from ..models.accuracy import COLLAPSE_SNR_DB


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
    source: str = "eval file"   # or derived: calibration samples / seeded random inputs
    #: the SNR floor of a collapsed output (derived inputs); None: a model with random weights
    collapse_snr_db: Optional[float] = COLLAPSE_SNR_DB


@dataclass
class ModelSpec:
    name: str                        # as the user named it: builtin:digits or a path
    path: Path                       # the float model
    calibration: Optional[str] = None  # path or "random"
    eval: Optional[EvalData] = None
    source: Any = None               # Keras/SavedModel path or pytorch.TorchModel `path` came from
    quantizer: str = "ai-edge-quantizer"  # who makes the variants (dispatch.QUANTIZERS)
    given: Optional[Path] = None     # the .tflite as given (variant `given`), see models/baseline
    fp32_recipe: Optional[str] = None  # how `path` was derived from it (None: it is the file)
    given_recipe: Optional[str] = None
    no_float: Optional[str] = None   # why no variant can be made (already quantized, no reference)
    quantized: bool = False          # the file as given is already quantized: always timed as given
    signature: Optional[str] = None  # the SignatureDef used (None: the model has none)
    given_signature: Optional[str] = None  # the one of the file as given (None: it has none)
    input_shapes: Optional[Dict[str, List[int]]] = None  # dynamic inputs' sizes (models/shapes)
    shape_problem: Optional[str] = None  # dynamic dims no data sizes, which it cannot run at 1
    input_names: List[str] = field(default_factory=list)  # what --input-shape may name
    accuracy_target: Optional[float] = None  # int8-mixed's output SNR target, dB (mixed.py)
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
                self._reference = reference_outputs(self.path, self.eval.inputs, self.signature)
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
    skipped: Optional[str] = None    # a deliberate skip and its reason (not a failure)

    @property
    def signature(self) -> Optional[str]:
        """The SignatureDef the device reads this file through: the file as given keeps its
        own (None when it has none, even though its derived float baseline got one)."""
        from ..models.variants import GIVEN
        return self.model.given_signature if self.variant == GIVEN else self.model.signature

    def user_text(self, text: Optional[str]) -> Optional[str]:
        """`text` (an error from the quantizer or the device) with every file edge-bench made
        named the way the user named the model: a cache blob (`~/.cache/edge-bench/blobs/
        <sha256>.tflite` on a device), a derived baseline (`<sha>-r1.tflite`) or a variant in
        the quantization cache becomes `hand_recrop.tflite` / `hand_recrop.tflite (int8)`."""
        if not text:
            return text
        m = self.model
        files: List[tuple] = []
        if m.given is not None:
            files.append((m.given, m.name))
        if m.path != m.given:
            files.append((m.path, m.name if m.given is None else f"{m.name} (derived fp32)"))
        if self.path is not None and self.path not in (m.path, m.given):
            files.append((self.path, f"{m.name} ({self.variant})"))
        for path, label in files:
            # the user's own file keeps its own name; any file's blob on the device is renamed
            names = set() if path == m.given else {str(path), path.name}
            if self.path == path and self.sha256:
                names.add(f"{self.sha256}{path.suffix}")
            text = rename_files(text, names - {m.name}, label)
        return text


def rename_files(text: str, names: Any, label: str) -> str:
    """`text` with each of the file `names` (a path, or a file name with any directory before
    it: a device's workdir, the host's cache) replaced by `label`, longest name first."""
    for n in sorted(names, key=len, reverse=True):
        text = re.sub(r"(?:[^\s'\"(),:=]*/)?" + re.escape(n) + r"(?![\w.-])",
                      lambda _: label, text)
    return text


def resolve_model(name: str, calibration: Optional[str], eval_file: Optional[str],
                  quantizer: Optional[str] = None, reference: Optional[str] = None,
                  signature: Optional[str] = None,
                  input_shapes: Optional[Dict[str, List[int]]] = None,
                  images: Any = None) -> ModelSpec:
    """builtin:NAME, a .tflite, a Keras/SavedModel (converted to fp32, needs [tf]) or a PyTorch
    model (.pt2, module:function, builtin:digits-torch; converted by litert-torch, needs [torch]);
    built-ins bring their calibration and eval. A .tflite from the wild gets its float32
    baseline (models/baseline.py); an already-quantized one is timed as given and scored
    against `reference` (a float .tflite) when given. Without --eval, variants are compared
    with fp32 on derived inputs (models/unlabeled.py). `signature` chooses the SignatureDef
    (default: serving_default, else the first): calibration, inputs, outputs and scoring.
    `input_shapes`: --input-shape (models/shapes.py: the size of dynamic dims).
    `images`: the normalization flags for a folder of images (models/imagedata.ImageOptions)."""
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
        spec.signature = choose_signature(p if source is None else fp32, signature)
        spec.given_signature = spec.signature
        if source is None:
            _wild(spec, p, reference)
        ev = eval_file
    if spec.signature is None:  # a built-in or PyTorch model (a file's was chosen above)
        spec.signature = choose_signature(spec.path, signature)
    from ..models.imagedata import folder_as_npz  # a folder of images -> an .npz of the input
    spec.calibration = folder_as_npz(spec.calibration, spec.path, spec.signature, images,
                                     "--calibration", spec.given)
    folder, ev = ev, folder_as_npz(ev, spec.path, spec.signature, images, "--eval", spec.given)
    if reference and spec.given is None:
        raise UsageError(f"--reference {reference}: only for a .tflite --model ({name} is not)")
    quantizers = parse_quantizers(quantizer or spec.quantizer)  # e.g. ai-edge-quantizer,pt2e
    for q in quantizers:
        check_quantizer(q, spec.source, name)
    spec.quantizer = main_quantizer(quantizers)
    _dynamic_dims(spec, input_shapes or {}, [spec.calibration, ev])
    if spec.shape_problem:
        return spec
    if ev:
        spec.eval = load_eval(Path(ev), spec.path, spec.signature)
        if ev != folder:  # images: without labels, scored like derived inputs (no argmax)
            spec.eval.source = f"images in {folder}"
    elif spec.no_float is None:  # a built-in without eval data too (mobilenet: random weights)
        spec.eval = _derived_eval(spec)
        if spec.eval is not None and name.startswith("builtin:") and b_random(name):
            spec.eval.collapse_snr_db = None
            spec.eval.source += "; random weights: a low SNR is expected, not flagged"
    return spec


def choose_signature(path: Path, wanted: Optional[str]) -> Optional[str]:
    """The SignatureDef of the model at `path` to use: `wanted` (it must exist: ModelError
    naming the file, the key and the keys there are), else serving_default, else the first;
    None when the model has none (a baseline gets serving_default, the default)."""
    from ..errors import ModelError
    from ..models.repair import signature_key
    try:
        return signature_key(path.read_bytes(), wanted)
    except (ModelError, OSError) as e:
        if not wanted:  # an unreadable or truncated file: that model's own error, made later
            return None
        if isinstance(e, OSError):
            raise ModelError(f"{path.name}: cannot read the model: {e.strerror or e}") from None
        raise ModelError(f"{path.name}: {e.message}", hint=(f"{e.hint}; choose one with "
                         "--signature KEY") if e.hint else None) from None


def _wild(spec: ModelSpec, given: Path, reference: Optional[str]) -> None:
    """Fill `spec` from the file as given: its float baseline, or (already quantized) itself."""
    from ..errors import ModelError
    from ..models.baseline import float_baseline, model_baseline
    from ..models.repair import signature_subgraph
    data = given.read_bytes()
    key = spec.signature
    if key is not None and signature_subgraph(data, key) != 0:
        raise ModelError(f"{given.name}: its signature {key!r} runs subgraph "
                         f"{signature_subgraph(data, key)}; edge-bench times and calibrates the "
                         "main graph (subgraph 0)", hint="export the model with the signature "
                         "to benchmark as its first subgraph")
    b = model_baseline(given)
    spec.given, spec.given_recipe, spec.quantized = given, b.given_recipe(), b.facts.quantized
    if reference:
        ref_path = Path(reference).expanduser()
        if not ref_path.is_file():
            raise UsageError(f"--reference {reference}: no such file")
        rb = float_baseline(ref_path)
        spec.path = rb.path
        spec.fp32_recipe = f"float reference {ref_path.name} for {given.name}" + (
            f" ({rb.recipe()})" if rb.derived else "")
    elif b.facts.quantized:
        spec.path = given
        spec.no_float = (f"{given.name} is {b.facts.describe()}; variants are made from a float"
                         " model")
    else:
        spec.path = b.path
        spec.fp32_recipe = b.recipe() if b.derived else None


def _dynamic_dims(spec: ModelSpec, flags: Dict[str, List[int]],
                  data: Sequence[Optional[str]]) -> None:
    """Size the model's dynamic (-1) input dims (models/shapes.py): the float baseline becomes a
    copy stored at those shapes, the device gets them in every task; or `shape_problem`."""
    from ..models.modelinfo import check_tflite
    from ..models.shapes import cannot_guess, choose_shapes, describe, input_names, pin_shapes
    try:
        check_tflite(spec.path)
        spec.input_names = input_names(spec.path, spec.signature)
        shapes, how = choose_shapes(spec.path, spec.signature, flags, data, spec.name)
    except EdgeBenchError as e:
        if isinstance(e, UsageError):
            raise
        return  # a model LiteRT cannot read: its own error, made later
    if shapes:
        pinned = pin_shapes(spec.path, shapes)
        if spec.fp32_recipe:
            spec.fp32_recipe += "; " + describe(how)
        else:
            spec.fp32_recipe = f"float32 baseline: {spec.path.name} with {describe(how)}"
        spec.path, spec.input_shapes = pinned, shapes
    spec.shape_problem = cannot_guess(spec.path, spec.signature, shapes, spec.name)


def b_random(name: str) -> bool:
    """A built-in whose weights are random (its outputs mean nothing: see models/builtin)."""
    from ..models.builtin import BUILTINS
    b = BUILTINS.get(name)
    return bool(b is not None and b.random_weights)


def _derived_eval(spec: ModelSpec) -> Optional[EvalData]:
    """Unlabelled inputs (calibration samples or seeded random) to score variants against
    fp32; None when the host cannot run the model (a custom op: the device still times it)."""
    from ..models.quantize import host_cannot_run
    from ..models.unlabeled import derived_inputs, write_npz
    if host_cannot_run(spec.path):
        return None
    inputs, source = derived_inputs(spec.path, spec.calibration, spec.signature)
    path, sha = write_npz(inputs)
    return EvalData(path=path, sha256=sha, inputs=inputs, labels=None, source=source)


def _class_count(model_path: Path, signature: Optional[str]) -> int:
    """How many classes top-1 chooses from: the size of one sample of the first output."""
    from ..models.modelinfo import interpreter
    shape = [int(x) for x in tensors.output_details(interpreter(model_path), signature)[0]["shape"]]
    per_sample = shape[1:] if shape[:1] == [1] else shape
    return int(np.prod(per_sample)) if per_sample else 1


def load_eval(path: Path, model_path: Path, signature: Optional[str] = None) -> EvalData:
    """An .npz with the model inputs (by input name, or `x` for one input) and optional labels `y`."""
    if not path.exists():
        raise UsageError(f"--eval {path}: no such file")
    from ..models.datafiles import check_data_file
    check_data_file(path, "--eval")
    try:
        arrays = tensors.load_npz(path, "--eval")
    except tensors.AgentError as e:
        raise UsageError(e.message, hint="save with numpy.savez(path, x=inputs, y=labels)") from None
    from ..models.modelinfo import model_inputs
    specs = model_inputs(model_path, signature)
    try:  # the agent's rule (tensor name, signature name, `x`): what the host accepts, it does
        keys = tensors.match_keys(arrays, [s.detail for s in specs], f"--eval {path}")
    except tensors.AgentError as e:
        raise UsageError(e.message,
                         hint="name arrays after the model inputs, or `x` for a one-input model") from None
    inputs: Dict[str, np.ndarray] = {}
    for spec, key in zip(specs, keys):
        a = arrays[key]
        if a.ndim < 1 or a.dtype.kind not in "biuf":
            raise UsageError(f"--eval {path}: array {key!r} ({a.dtype}, shape {list(a.shape)}) is"
                             " not a batch of numbers [N, ...]")
        if a.shape[0] == 0:
            raise UsageError(f"--eval {path}: array {key!r} holds no samples (shape"
                             f" {list(a.shape)}: N = 0)",
                             hint="an eval set needs at least one sample; check the filter or"
                                  " slice that made it")
        shape = tensors.fit_shape(tuple(int(x) for x in a.shape[1:]), spec.detail)
        if shape is None:
            want = list(spec.shape[1:])
            raise UsageError(f"--eval {path}: array {key!r} has shape {list(a.shape)}; model input"
                             f" {spec.name!r} needs [N, {', '.join(map(str, want))}]")
        inputs[spec.name] = a
    labels = arrays.get("y")
    n = len(next(iter(inputs.values())))
    if any(len(a) != n for a in inputs.values()):
        raise UsageError(f"--eval {path}: the input arrays have different sample counts"
                         f" ({', '.join(f'{k}: {len(a)}' for k, a in inputs.items())})")
    if labels is not None and (labels.ndim != 1 or labels.dtype.kind not in "iu"):
        raise UsageError(f"--eval {path}: labels 'y' ({labels.dtype}, shape {list(labels.shape)})"
                         " must be one whole-number class index per sample")
    if labels is not None and len(labels) != n:
        raise UsageError(f"--eval {path}: {len(labels)} labels in 'y' for {n} samples")
    if labels is not None and labels.size:
        classes = _class_count(model_path, signature)
        bad = labels[(labels < 0) | (labels >= classes)]
        if bad.size:
            raise UsageError(f"--eval {path}: label {int(bad[0])} in 'y' is not a class of the"
                             f" model (its first output has {classes}: 0..{classes - 1});"
                             f" {bad.size} of {labels.size} labels are out of range")
    return EvalData(path=path, sha256=sha256_file(path), inputs=inputs, labels=labels)


def make_artifacts(models: Sequence[ModelSpec], variants: Sequence[str],
                   progress: Optional[Callable[[int, int, str, str], None]] = None,
                   cache_dir: Optional[Path] = None) -> List[Artifact]:
    """Quantize every model into every variant (cached). A failed variant never stops the rest.
    `progress(done, total, model, variant)` before each step and once more with done == total."""
    from ..errors import ModelError, VariantSkipped
    from ..models.dispatch import make_variant
    from ..models.variants import GIVEN
    out: List[Artifact] = []
    total = sum(len(variants) + (m.quantized and GIVEN not in variants) for m in models)
    for m in models:
        todo = list(variants)
        if m.quantized and GIVEN not in todo:
            todo.insert(0, GIVEN)  # an already-quantized file is always timed as given
        for v in todo:
            if progress:
                progress(len(out), total, m.name, v)
            art = Artifact(model=m, variant=v)
            try:
                if m.shape_problem:
                    raise ModelError(m.shape_problem)
                if v == GIVEN:
                    _given(art)
                elif m.no_float:
                    raise VariantSkipped(v, m.no_float, hint="timed as given (variant given);"
                                         " pass --reference FLOAT.tflite for the variants")
                else:
                    q = make_variant(m.path, v, None, m.calibration, quantizer=m.quantizer,
                                     source=m.source, cache_dir=cache_dir,
                                     signature=m.signature,
                                     accuracy_target=m.accuracy_target)
                    art.path, art.sha256, art.bytes = Path(q.path), q.sha256, q.bytes
                    art.recipe = getattr(q, "recipe_description", None)
                    if v == "fp32" and m.fp32_recipe:
                        art.recipe = m.fp32_recipe
            except VariantSkipped as e:
                art.skipped = art.user_text(e.detail())  # the row says variant and `skipped`
            except EdgeBenchError as e:
                art.error = art.user_text(str(e))
            out.append(art)
    if progress:
        progress(total, total, "", "")
    return out


#: the suffix of an AOT-compiled variant's name (`fp32+aot`): `run --aot TARGET`
AOT_SUFFIX = "+aot"


def aot_artifacts(made: Sequence[Artifact], target: str,
                  cache_dir: Optional[Path] = None) -> List[Artifact]:
    """`run --aot TARGET`: each made variant compiled ahead of time for the NPU (models/aot.py,
    cached by content) as one more artifact `VARIANT+aot`; a compile that fails is its row."""
    from ..models.aot import aot_compile
    out: List[Artifact] = []
    for a in made:
        if a.path is None or a.error or a.skipped or a.variant.endswith(AOT_SUFFIX):
            continue
        art = Artifact(model=a.model, variant=a.variant + AOT_SUFFIX)
        try:
            r = aot_compile(a.path, target, cache_dir / "aot" if cache_dir else None)
            art.path, art.sha256, art.bytes = r.path, r.sha256, r.bytes
            art.recipe = f"{a.recipe or a.variant}; compiled ahead of time for {r.target}"
        except EdgeBenchError as e:
            art.error = art.user_text(str(e))
        out.append(art)
    return out


def _given(art: Artifact) -> None:
    """Variant `given`: the .tflite exactly as the user gave it."""
    from ..errors import VariantSkipped
    m = art.model
    if m.given is None:
        raise VariantSkipped("given", f"{m.name} is not a .tflite file given by path")
    art.path, art.sha256, art.bytes = m.given, sha256_file(m.given), m.given.stat().st_size
    art.recipe = m.given_recipe


def describe(obj: Any) -> str:  # pragma: no cover - debugging aid
    return repr(obj)
