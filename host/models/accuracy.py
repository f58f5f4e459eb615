"""Host-side accuracy scoring of a variant's outputs against the fp32 model run on the host.

`reference_outputs()` runs the float model in the host's LiteRT, one sample at a time (the way
the agent runs them on the device). `score()` compares a variant's outputs with that reference:

- ``top1``: the variant's top-1 accuracy against the labels (when labels are given)
- ``top1_ref``: the fp32 reference's top-1 accuracy against the same labels
- ``agreement_vs_ref``: fraction of samples whose argmax equals the reference argmax
- ``max_abs_err``, ``mean_abs_err``: |variant - reference| over all output values
- ``snr_db``: 10*log10(sum(ref^2) / sum((variant - ref)^2)) (inf when identical)
- ``flag``: None, or why the variant is suspicious ("agreement 10.3% vs fp32 (tolerance 97%)")

Argmax metrics use the first output; errors use all outputs. Outputs are a list (one array
[N, ...] per model output) or a single array.

Tolerances (`TOLERANCES`, per variant: minimum argmax agreement with fp32 and minimum SNR).
Measured on builtin:digits (359 held-out samples) in LiteRT 2.3: every correct variant agrees
with fp32 on 100% of samples with SNR >= 44 dB (fp16 82 dB), except weight-int4: 99.2%, 28 dB.
A digits model with shuffled first-layer weights agrees on 10.9% (SNR -0.7 dB); tflite-runtime
2.14 running ai-edge-quantizer models is reported to score ~10% on digits. The thresholds sit
between the two, so a correct variant does not fire and a wrong one does:

============  =========  =======
variant       agreement  SNR dB
============  =========  =======
fp32          99%        40
fp16          98%        30
weight-int8   97%        20
int16x8       97%        20
dynamic-int8  95%        15
int8          95%        15
weight-int4   90%        10
============  =========  =======

builtin:mobilenet has random weights and ships no eval set: a random deep net amplifies
quantization noise (on its calibration images dynamic-int8 agrees 91%, int8 38%), so these
tolerances are not meant for it.

Without labels (inputs derived from calibration data or seeded random inputs, see unlabeled.py)
argmax agreement means little (a detector's box regressions, a segmentation mask), so such a
variant is flagged only when its outputs **collapse**: any non-finite value, an output that is
constant where the reference varies, or an output whose SNR vs fp32 is below
`COLLAPSE_SNR_DB` (3 dB: the error is at least half as large as the signal). Every score carries
``outputs``: per output tensor ``snr_db``, ``cosine`` (cosine similarity of the flattened
outputs) and ``max_abs_err``.

With fewer than 20 samples a single disagreement is a large fraction, so the agreement
tolerance is loosened to allow one mismatching sample. A top-1 drop of more than
`MAX_TOP1_DROP` (5 points) below the reference also flags.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from edge_bench_agent import tensors

from ..errors import ModelError, UsageError


class Tolerance(NamedTuple):
    agreement: float  # minimum fraction of argmax matches with fp32
    snr_db: float     # minimum SNR of the outputs vs fp32


TOLERANCES: Dict[str, Tolerance] = {
    "fp32": Tolerance(0.99, 40.0),
    "fp16": Tolerance(0.98, 30.0),
    "weight-int8": Tolerance(0.97, 20.0),
    "int16x8": Tolerance(0.97, 20.0),
    "dynamic-int8": Tolerance(0.95, 15.0),
    "int8": Tolerance(0.95, 15.0),
    "weight-int4": Tolerance(0.90, 10.0),
}
DEFAULT_TOLERANCE = Tolerance(0.95, 15.0)
MAX_TOP1_DROP = 0.05
#: unlabelled inputs: below this SNR (dB) an output has collapsed (flagged like WRONG OUTPUT)
COLLAPSE_SNR_DB = 3.0

Outputs = Union[np.ndarray, Sequence[np.ndarray]]


def tolerance_for(variant: Optional[str]) -> Tolerance:
    return TOLERANCES.get(variant or "", DEFAULT_TOLERANCE)


# ---- running models on the host --------------------------------------------------------------
def run_model(model_path: Union[str, Path], inputs: Dict[str, np.ndarray],
              num_threads: Optional[int] = 1, signature: Optional[str] = None
              ) -> List[np.ndarray]:
    """Run every sample through the model in LiteRT, one at a time.

    `inputs` maps input names (signature or tensor names; any key for a single-input model) to
    arrays [N, *sample shape]. int8/int16 inputs are quantized with the model's scale/zero-point
    and integer outputs dequantized, so the result is comparable with the float model.
    Returns one float array [N, *output shape without the batch of 1] per model output (per
    output of SignatureDef `signature` when given, as the agent reads them)."""
    from .modelinfo import check_tflite, inputs_of, interpreter

    check_tflite(model_path)
    it = interpreter(model_path, num_threads=num_threads)
    specs = inputs_of(it, signature)
    out_details = tensors.output_details(it, signature)
    try:  # the agent's rule: tensor name, signature name, `x` or the only array
        arrays = tensors.match_arrays(inputs, [s.detail for s in specs], "data")
    except tensors.AgentError as e:
        raise UsageError(e.message) from None
    feeds = []
    for spec, arr in zip(specs, arrays):
        sample = spec.shape[1:] if spec.shape[:1] == (1,) else spec.shape
        if arr.ndim == 0 or tensors.fit_shape(tuple(arr.shape[1:]), spec.detail) is None:
            raise UsageError(f"data for input {spec.name!r} has shape {list(arr.shape)}, "
                             f"expected [N, {', '.join(map(str, sample))}]")
        feeds.append((spec, arr))
    n = len(feeds[0][1])
    outs: List[List[np.ndarray]] = [[] for _ in out_details]
    current = {spec.index: list(spec.shape) for spec, _ in feeds}
    try:
        for i in range(n):
            # the agent's rule: a sample resizes the input's dynamic (-1) dims to its own shape
            samples = [tensors.sample_for(arr, i, spec.detail, "data") for spec, arr in feeds]
            resized = [(spec, shape) for (spec, _), (_, shape) in zip(feeds, samples)
                       if current[spec.index] != shape]
            for spec, shape in resized:
                it.resize_tensor_input(spec.index, shape)
                current[spec.index] = shape
            if resized:
                it.allocate_tensors()
                out_details = tensors.output_details(it, signature)
            for (spec, _), (sample, _) in zip(feeds, samples):
                it.set_tensor(spec.index, sample)
            it.invoke()
            for k, d in enumerate(out_details):
                y = tensors.dequantize(it.get_tensor(d["index"]), d)
                outs[k].append(y[0] if y.shape[:1] == (1,) else y)
    except tensors.AgentError as e:
        raise UsageError(e.message) from None
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"LiteRT failed running {model_path}: {e}") from e
    return [np.stack(o) for o in outs]


def reference_outputs(model_path: Union[str, Path], inputs: Dict[str, np.ndarray],
                      signature: Optional[str] = None) -> List[np.ndarray]:
    """The fp32 model's outputs on the host (the reference every variant is compared with)."""
    return run_model(model_path, inputs, signature=signature)


# ---- scoring -----------------------------------------------------------------------------------
def _as_list(x: Outputs) -> List[np.ndarray]:
    if isinstance(x, np.ndarray):
        return [x]
    return [np.asarray(a) for a in x]


def _argmax(y: np.ndarray) -> np.ndarray:
    return y.reshape(len(y), -1).argmax(axis=1)


def snr_db(out: np.ndarray, ref: np.ndarray) -> float:
    """10*log10(sum(ref^2) / sum((out - ref)^2)): inf when identical, -inf when broken."""
    o, r = out.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    if not np.all(np.isfinite(o)):
        return -math.inf
    noise, signal = float(np.sum((o - r) ** 2)), float(np.sum(r ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def per_output(outs: Sequence[np.ndarray], refs: Sequence[np.ndarray],
               names: Optional[Sequence[Optional[str]]] = None,
               floor: Optional[float] = COLLAPSE_SNR_DB) -> List[Dict[str, object]]:
    """Per output tensor: name, snr_db, cosine, max_abs_err, and why it collapsed (or None).
    `floor`: the SNR below which an output counts as collapsed (None: only non-finite or
    constant outputs do)."""
    rows: List[Dict[str, object]] = []
    for k, (o, r) in enumerate(zip(outs, refs)):
        of, rf = o.astype(np.float64).ravel(), r.astype(np.float64).ravel()
        finite = bool(np.all(np.isfinite(of)))
        err = np.abs(of - rf) if finite else np.array([math.inf])
        no, nr = float(np.linalg.norm(of)) if finite else 0.0, float(np.linalg.norm(rf))
        if not finite:
            cos = float("nan")
        elif no == 0.0 and nr == 0.0:
            cos = 1.0
        elif no == 0.0 or nr == 0.0:
            cos = 0.0
        else:
            cos = float(np.dot(of, rf) / (no * nr))
        snr = snr_db(o, r)
        collapse = None
        if not finite:
            collapse = f"{int(np.sum(~np.isfinite(of)))} non-finite values"
        elif of.size > 1 and np.ptp(of) == 0.0 and np.ptp(rf) > 0.0:
            collapse = f"constant output {of[0]:g}"
        elif floor is not None and snr < floor:
            collapse = f"SNR {snr:.1f} dB (floor {floor:g} dB)"
        name = names[k] if names is not None and k < len(names) else None
        rows.append({"name": name or f"output {k}", "snr_db": snr, "cosine": cos,
                     "max_abs_err": float(err.max()) if err.size else 0.0,
                     "collapse": collapse})
    return rows


def score(outputs: Outputs, reference: Outputs, labels: Optional[np.ndarray] = None,
          tolerance: Union[None, float, Tolerance] = None,
          variant: Optional[str] = None, unlabeled: bool = False,
          output_names: Optional[Sequence[Optional[str]]] = None,
          collapse_snr_db: Optional[float] = COLLAPSE_SNR_DB) -> Dict[str, object]:
    """Compare a variant's outputs with the fp32 reference (see the module docstring).

    `tolerance`: minimum argmax agreement (a float in 0..1), a Tolerance (agreement, snr_db),
    or None to use TOLERANCES[variant]. `collapse_snr_db` (unlabeled only): the SNR floor of
    a collapsed output; None for a model with random weights, whose quantization noise is as
    large as its signal (only non-finite and constant outputs are flagged then)."""
    outs, refs = _as_list(outputs), _as_list(reference)
    if len(outs) != len(refs):
        raise UsageError(f"variant has {len(outs)} outputs, the reference {len(refs)}")
    for k, (o, r) in enumerate(zip(outs, refs)):
        if o.shape != r.shape:
            raise UsageError(f"output {k}: variant shape {list(o.shape)} differs from the "
                             f"reference {list(r.shape)}")
    if isinstance(tolerance, Tolerance):
        tol = tolerance
    elif tolerance is not None:
        tol = Tolerance(float(tolerance), -math.inf)
    else:
        tol = tolerance_for(variant)

    n = len(refs[0])
    pred, ref_pred = _argmax(outs[0].astype(np.float64)), _argmax(refs[0].astype(np.float64))
    agreement = float(np.mean(pred == ref_pred)) if n else float("nan")

    o_all = np.concatenate([o.astype(np.float64).ravel() for o in outs])
    r_all = np.concatenate([r.astype(np.float64).ravel() for r in refs])
    err = np.abs(o_all - r_all)
    bad = ~np.isfinite(o_all)
    err[bad] = np.inf
    noise = float(np.sum((o_all - r_all) ** 2)) if not bad.any() else math.inf
    signal = float(np.sum(r_all ** 2))
    if noise == 0.0:
        snr = math.inf
    elif signal == 0.0 or math.isinf(noise):
        snr = -math.inf
    else:
        snr = 10.0 * math.log10(signal / noise)

    result: Dict[str, object] = {
        "samples": int(n),
        "top1": None,
        "top1_ref": None,
        "agreement_vs_ref": agreement,
        "max_abs_err": float(err.max()) if err.size else 0.0,
        "mean_abs_err": float(err.mean()) if err.size else 0.0,
        "snr_db": snr,
        "tolerance": {"agreement": tol.agreement, "snr_db": tol.snr_db},
        "flag": None,
        "outputs": per_output(outs, refs, output_names,
                              collapse_snr_db if unlabeled else COLLAPSE_SNR_DB),
    }
    reasons = []
    if unlabeled:  # no labels: only a collapsed output is flagged (see the module docstring)
        result["tolerance"] = {"collapse_snr_db": collapse_snr_db}
        result["flag"] = "; ".join(f"{o['name']}: {o['collapse']}" for o in result["outputs"]
                                   if o["collapse"]) or None
        return result
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != n:
            raise UsageError(f"{len(labels)} labels for {n} samples")
        result["top1"] = float(np.mean(pred == labels))
        result["top1_ref"] = float(np.mean(ref_pred == labels))

    min_agree = tol.agreement
    if n and n < 20:  # allow one mismatching sample on tiny eval sets
        min_agree = min(min_agree, (n - 1) / n)
    if bad.any():
        reasons.append(f"{int(bad.sum())} non-finite output values")
    if n and agreement < min_agree:
        reasons.append(f"agreement {agreement:.1%} vs fp32 (tolerance {tol.agreement:.0%})")
    if snr < tol.snr_db and not bad.any():
        reasons.append(f"SNR {snr:.1f} dB vs fp32 (tolerance {tol.snr_db:.0f} dB)")
    if result["top1"] is not None and result["top1"] < result["top1_ref"] - MAX_TOP1_DROP:
        reasons.append(f"top-1 {result['top1']:.1%} vs fp32 {result['top1_ref']:.1%}")
    result["flag"] = "; ".join(reasons) or None
    return result
