"""Dynamic (-1) input dims: which size to run them at, on the host and on the device.

A .tflite input may have dims of unknown size (`shape_signature` -1; an audio front end takes
`[-1, -1]`). LiteRT allocates such a tensor at its stored `shape` (1 for every dynamic dim),
which the model often cannot run (`XNNPack delegate failed to reshape`). The size comes from,
in this order:

1. `--input-shape NAME=1x16000` (NAME: the input's signature or tensor name; `1x16000` alone
   for a one-input model), repeatable;
2. the first sample of the user's `--calibration` file, else of the `--eval` file;
3. the stored shape (1 for each dynamic dim), when the host's LiteRT can run the model at it;
   else `cannot_guess` says which flag to pass.

`pin_shapes` writes a working copy of the float baseline whose inputs' stored shape is the
chosen one (the dims stay dynamic in `shape_signature`): ai-edge-quantizer allocates the model
at its stored shape before it calibrates, and so do the host's checks and fp32 reference. The
device gets the shapes in the task (`input_shapes`) and resizes the file as given (and every
variant) with `resize_tensor_input` + `allocate_tensors` (agent/task.py).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_bench_agent import tensors

from ..errors import UsageError
from ..hashing import sha256_file

Shapes = Dict[str, List[int]]   # input tensor name -> the batch-1 shape to run it at
_SHAPE = re.compile(r"^\d+(x\d+)*$")


def parse_input_shapes(values: Optional[Sequence[str]]) -> Dict[str, List[int]]:
    """`--input-shape NAME=1x16000` values -> {NAME: [1, 16000]} ("" for a bare `1x16000`)."""
    out: Dict[str, List[int]] = {}
    for v in values or []:
        name, _, dims = v.rpartition("=")
        dims = dims.strip().lower()
        if not _SHAPE.match(dims) or any(int(d) < 1 for d in dims.split("x")):
            raise UsageError(f"--input-shape {v}: expected NAME=DxDx... with whole numbers >= 1,"
                             " e.g. audio=1x16000", hint="NAME may be left out for a one-input"
                                                         " model: --input-shape 1x16000")
        if name.strip() in out:
            raise UsageError(f"--input-shape {v}: input {name.strip() or '(the only one)'} is"
                             " given twice")
        out[name.strip()] = [int(d) for d in dims.split("x")]
    return out


def _signature(detail: Dict) -> List[int]:
    sig = detail.get("shape_signature")
    return [int(x) for x in (sig if sig is not None and len(sig) else detail["shape"])]


def dynamic_inputs(details: List[Dict]) -> List[Dict]:
    return [d for d in details if any(x < 0 for x in _signature(d))]


def _data_arrays(path: Optional[str]) -> Dict[str, np.ndarray]:
    """The arrays of a calibration/eval file (.npz, .npy, folder of .npy); {} for none/random."""
    from .datafiles import check_data_file
    if not path or path == "random":
        return {}
    p = Path(path).expanduser()
    try:
        if p.is_dir():
            files = sorted(p.glob("*.npy"))
            for f in files:   # a FIFO in the folder would block the read forever
                check_data_file(f, "data file")
            return {f.stem: tensors.load_npy(f, "data") for f in files}
        if p.suffix == ".npy":
            check_data_file(p, "data file")
            return {p.stem: tensors.load_npy(p, "data")}
        if p.is_file():
            check_data_file(p, "data file")
            return tensors.load_npz(p, "data")
    except (tensors.AgentError, UsageError, OSError):
        return {}   # the file's own loader names what is wrong with it, later
    return {}


def _from_data(detail: Dict, n_inputs: int, arrays: Dict[str, np.ndarray]) -> Optional[List[int]]:
    names = [detail.get("name"), detail.get("signature_name")] + (["x"] if n_inputs == 1 else [])
    key = next((n for n in names if n and n in arrays), None)
    if key is None and n_inputs == 1 and len(arrays) == 1:
        key = next(iter(arrays))
    a = arrays.get(key) if key else None
    if a is None or a.ndim < 1 or not a.shape[0]:
        return None
    return tensors.fit_shape(tuple(int(x) for x in a.shape[1:]), detail)


def input_names(model_path: Path, signature: Optional[str]) -> List[str]:
    """Every name an --input-shape may use for the model's inputs (signature and tensor)."""
    from .modelinfo import interpreter
    details = tensors.model_inputs(interpreter(model_path, allocate=False), signature)
    return [str(n) for d in details for n in (d.get("signature_name"), d.get("name")) if n] + (
        [""] if len(details) == 1 else [])


def choose_shapes(model_path: Path, signature: Optional[str], flags: Dict[str, List[int]],
                  data: Sequence[Optional[str]], what: str) -> Tuple[Shapes, List[str]]:
    """({tensor name: shape} of every dynamic input, how each was chosen), by the order in the
    module docstring (a stored shape is not listed). A flag naming no input of this model is
    not looked at (it may be another --model's); UsageError for one that does not fit."""
    from .modelinfo import interpreter
    details = tensors.model_inputs(interpreter(model_path, allocate=False), signature)
    dynamic = dynamic_inputs(details)
    loaded = [_data_arrays(p) for p in data] if dynamic else []
    shapes: Shapes = {}
    how: List[str] = []
    for d in dynamic:
        sig, label = _signature(d), tensors.input_name(d)
        flag = next((flags[n] for n in (d.get("signature_name"), d.get("name"), "")
                     if n is not None and n in flags and (n or len(details) == 1)), None)
        if flag is not None:
            if len(flag) != len(sig) or any(s >= 0 and s != f for s, f in zip(sig, flag)):
                raise UsageError(f"--input-shape {label}={'x'.join(map(str, flag))} does not fit"
                                 f" input {label!r} of {what} (shape {sig}, -1 = any size)")
            shapes[str(d["name"])] = flag
            how.append(f"{label}={'x'.join(map(str, flag))} (--input-shape)")
            continue
        for path, arrays in zip(data, loaded):
            got = _from_data(d, len(details), arrays)
            if got == [int(x) for x in d["shape"]]:
                break   # the size it is stored at: nothing to change
            if got is not None:
                shapes[str(d["name"])] = got
                how.append(f"{label}={'x'.join(map(str, got))} (from {Path(str(path)).name})")
                break
    return shapes, how


def cannot_guess(model_path: Path, signature: Optional[str], shapes: Shapes,
                 what: str) -> Optional[str]:
    """Why the model cannot be run with its dynamic dims left at their stored size (the host's
    LiteRT fails to allocate it), as one line asking for --input-shape; None when it runs, or
    when every dynamic input has a chosen shape."""
    from .modelinfo import interpreter
    it = interpreter(model_path, allocate=False)
    left = [d for d in dynamic_inputs(tensors.model_inputs(it, signature))
            if str(d["name"]) not in shapes]
    if not left:
        return None
    from ..quiet import quiet, take_failure_output
    try:
        with quiet("LiteRT"):
            for d in tensors.model_inputs(it, signature):
                if str(d["name"]) in shapes:
                    it.resize_tensor_input(int(d["index"]), shapes[str(d["name"])])
            it.allocate_tensors()
        return None
    except (ValueError, RuntimeError) as e:
        take_failure_output()   # said below, in the one line
        why = " ".join(str(e).split())
    if "custom op" in why.lower():
        return None   # not the dims: a model the host cannot run (the device may)
    at = ", ".join(str([int(x) for x in d["shape"]]) for d in left)
    dims = ", ".join(f"{tensors.input_name(d)!r} {_signature(d)}" for d in left)
    flag = " ".join(f"--input-shape {tensors.input_name(d)}=" + "x".join(
        ("1" if k == 0 else "N") if x < 0 else str(x) for k, x in enumerate(_signature(d)))
        for d in left)
    return (f"{what}: input {dims} has dynamic dims that no --calibration/--eval data sizes,"
            f" and it does not run at {at} ({why[:120]}); pass {flag}")


def pin_shapes(path: Path, shapes: Shapes, cache_dir: Optional[Path] = None) -> Path:
    """A copy of the model at `path` whose inputs named in `shapes` are stored at that shape
    (their shape_signature keeps the -1 dims); cached by the file's sha256 and the shapes."""
    import hashlib

    from . import repair as rep
    from .quantcache import default_cache_dir, write_atomic
    key = json.dumps(sorted(shapes.items()))
    sha = sha256_file(path)
    digest = hashlib.sha256(f"{sha}|{key}".encode()).hexdigest()[:24]
    base = Path(cache_dir) if cache_dir else default_cache_dir().parent / "baseline"
    out = base / f"{digest}-shapes.tflite"
    if out.is_file():
        return out
    model = rep.load(path.read_bytes(), path.name)
    sg = model.subgraphs[0]
    for i in sg.inputs if sg.inputs is not None else []:
        t = sg.tensors[int(i)]
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        if name in shapes and t.shapeSignature is not None and len(t.shapeSignature):
            t.shape = list(shapes[name])
    write_atomic(out, rep.dump(model))
    return out


def describe(how: List[str]) -> str:
    return "input shapes " + ", ".join(how)

