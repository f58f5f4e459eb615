"""Where a PyTorch model comes from: a .pt2 ExportedProgram, a `module:function` factory, or a
built-in; loaded into one `TorchModel` (the ExportedProgram, its example inputs, a content hash).

Everything that can go wrong with the user's model is a UsageError/ModelError naming the model
and what to do: torch missing (the install line), a factory that cannot be imported or raises,
example inputs that are not a tuple of tensors or do not fit the model, an export that fails.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ...errors import ModelError, UsageError
from ...quiet import captured_output
from . import qat

INSTALL_HINT = "pip install 'edge-bench[torch]'"
PT2_SUFFIX = ".pt2"
#: `package.module:function`, both parts Python identifiers
_FACTORY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


@dataclass
class TorchModel:
    """A PyTorch model ready to convert: `program` is a torch.export.ExportedProgram."""
    name: str                     # as the user named it (path, factory or builtin:NAME)
    program: Any                  # torch.export.ExportedProgram
    example_inputs: Tuple[Any, ...]
    sha256: str                   # content: the .pt2 bytes (torch.export.save) of `program`
    #: a factory's QAT-prepared GraphModule (qat.py): `program` is then its float network
    #: without fake-quantize, `sha256` the QAT model's content, and pt2e-int8 converts it
    qat: Any = None

    def module(self) -> Any:
        """The model as a callable nn.Module (the exported graph), in eval mode."""
        m = self.program.module()
        _eval_mode(m)
        return m


def is_torch_model(name: str) -> bool:
    """A .pt2 path, a `module:function` factory or a built-in PyTorch model. Never imports torch."""
    s = str(name)
    if s.startswith("builtin:"):
        from ..builtin.torch_models import is_torch_builtin
        return is_torch_builtin(s)
    if s.lower().endswith(PT2_SUFFIX):
        return True
    return bool(_FACTORY.match(s)) and not Path(s).exists()


def import_torch() -> Any:
    """`torch` after checking litert-torch is importable too, else UsageError with the install."""
    if "litert_torch" in sys.modules:
        return sys.modules["torch"]
    # their imports print warnings from Python and C++ (torchao's kernel notices, absl)
    with captured_output("import torch"):
        try:
            import torch
            import litert_torch  # noqa: F401
            import torchao.quantization.pt2e  # noqa: F401
            err = None
        except ImportError as e:
            err = e
    if err is not None:
        raise UsageError(f"PyTorch models need torch and litert-torch, which are not installed "
                         f"({err})", hint=INSTALL_HINT) from err
    return torch


def _eval_mode(m: Any) -> None:
    try:
        m.eval()
    except (NotImplementedError, RuntimeError):
        # an exported GraphModule refuses .eval() (train/eval is baked in at export); PT2E
        # models switch with torch.ao's move_exported_model_to_eval
        try:
            from torchao.quantization.pt2e import move_exported_model_to_eval
            move_exported_model_to_eval(m)
        except Exception:  # noqa: BLE001 - already in eval mode as exported
            pass


def _program_sha256(torch: Any, ep: Any) -> str:
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _check_inputs(name: str, inputs: Any, torch: Any) -> Tuple[Any, ...]:
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if isinstance(inputs, list):
        inputs = tuple(inputs)
    if not isinstance(inputs, tuple) or not inputs:
        raise UsageError(f"--model {name}: example_inputs must be a tuple of tensors, got "
                         f"{type(inputs).__name__}",
                         hint="return (model, (torch.randn(1, ...),)) from the factory")
    for i, t in enumerate(inputs):
        if not isinstance(t, torch.Tensor):
            raise UsageError(f"--model {name}: example input {i} is a {type(t).__name__}, "
                             f"not a tensor", hint="example_inputs must be a tuple of tensors")
    return inputs


def _one_line(e: BaseException, limit: int = 400) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return (text[:limit] + " ...") if len(text) > limit else text


def _call_factory(name: str) -> Tuple[Any, Any]:
    mod_name, func_name = name.split(":", 1)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, "")  # `edge-bench` as a console script has no cwd on sys.path
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - ImportError, SyntaxError, whatever the module raises
        raise UsageError(f"--model {name}: cannot import module {mod_name!r}: "
                         f"{type(e).__name__}: {_one_line(e)}",
                         hint="run from the folder that holds it, or put it on PYTHONPATH") from e
    func = getattr(mod, func_name, None)
    if not callable(func):
        raise UsageError(f"--model {name}: module {mod_name!r} has no function {func_name!r}")
    try:
        out = func()
    except Exception as e:  # noqa: BLE001 - the user's code
        raise ModelError(f"--model {name}: the factory raised {type(e).__name__}: "
                         f"{_one_line(e)}") from e
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise UsageError(f"--model {name}: the factory must return (nn.Module, example_inputs), "
                         f"got {type(out).__name__}")
    return out[0], out[1]


#: failures whose cause is known: (pattern of the message, what to do)
_KNOWN_CAUSES = (
    # PT2E turns a Python int of an arithmetic op (`2 * x`) into an int64 constant, and the
    # static recipe's HistogramObserver has no integer kernel (torchao 0.18, litert-torch 0.10)
    (re.compile(r"histogram_cpu\W+not implemented for \W*(Long|Int|Short|Char|Byte|Bool)"),
     "an integer constant in an arithmetic op (e.g. `2 * x`) is observed as an integer tensor "
     "by PT2E's static recipe: write it as a float (`2.0 * x`)"),
)


def export_failure(name: str, e: BaseException, stage: str) -> ModelError:
    """One line for an export/conversion failure, naming the unsupported op when known."""
    msg = _one_line(e)
    op = unsupported_op(str(e))
    what = f"unsupported op {op}" if op else f"{type(e).__name__}: {msg}"
    hint = ("replace that op in the model, or export it differently" if op
            else "check that the model exports with torch.export.export(model, example_inputs)")
    hint = next((h for pat, h in _KNOWN_CAUSES if pat.search(str(e))), hint)
    return ModelError(f"--model {name}: {stage} failed: {what}", hint=hint)


def unsupported_op(text: str) -> Optional[str]:
    """The aten op a litert-torch / torch.export error names as unsupported, if any."""
    for pat in (r"Lowering not found: (\S+)", r"[Uu]nsupported (?:op|operator)[: ]+(\S+)",
                r"(?:no|missing) (?:kernel|lowering|decomposition) for (\S+)"):
        m = re.search(pat, text)
        if m:
            return m.group(1).strip(".,;:'\"`")
    return None


def _export(name: str, module: Any, inputs: Tuple[Any, ...], torch: Any) -> Any:
    with captured_output("torch.export"):  # export prints guard chatter to the fds
        try:
            return torch.export.export(module, inputs)
        except Exception as e:  # noqa: BLE001 - torch raises many types
            err = e
    raise export_failure(name, err, "torch.export")


def load_torch_model(name: str) -> TorchModel:
    """The ExportedProgram behind `name` (.pt2, factory or builtin), checked on its inputs."""
    torch = import_torch()
    if str(name).startswith("builtin:"):
        from ..builtin.torch_models import resolve_torch
        path = resolve_torch(name).path
        return _load_pt2(name, path, torch)
    if str(name).lower().endswith(PT2_SUFFIX):
        p = Path(name).expanduser()
        if not p.is_file():
            raise UsageError(f"--model {name}: no such file",
                             hint="save one with torch.export.save(torch.export.export(model, "
                                  "example_inputs), 'model.pt2')")
        return _load_pt2(name, p, torch)
    module, inputs = _call_factory(name)
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"--model {name}: the factory returned a {type(module).__name__} "
                         f"where an nn.Module was expected")
    inputs = _check_inputs(name, inputs, torch)
    prepared = None
    if qat.is_qat_prepared(module):  # its float network is what converts to fp32
        qat.check_prepared(name, module)
        prepared, module = module, qat.float_graph(module)
    _eval_mode(module)
    try:
        with torch.no_grad():
            module(*inputs)
    except Exception as e:  # noqa: BLE001 - shape mismatch, dtype mismatch, ...
        shapes = ", ".join(f"{list(t.shape)} {str(t.dtype).replace('torch.', '')}"
                           for t in inputs)
        raise UsageError(f"--model {name}: the example inputs ({shapes}) do not fit the model: "
                         f"{type(e).__name__}: {_one_line(e, 300)}",
                         hint="return example inputs the model's forward() accepts (batch of 1)"
                         ) from e
    ep = _export(name, module, inputs, torch)
    if prepared is not None:
        return TorchModel(name, ep, inputs, qat.content_sha256(prepared), prepared)
    return TorchModel(name, ep, inputs, _program_sha256(torch, ep))


def _load_pt2(name: str, path: Path, torch: Any) -> TorchModel:
    try:
        ep = torch.export.load(str(path))
    except Exception as e:  # noqa: BLE001 - zip errors, version skew, pickles
        raise UsageError(f"--model {name}: {path} is not a torch.export program "
                         f"({type(e).__name__}: {_one_line(e, 200)})",
                         hint="save with torch.export.save(exported_program, 'model.pt2')") from e
    op = qat.traced_fake_quantize(ep.graph)
    if op is not None:
        raise UsageError(f"--model {name}: {path} is a QAT-prepared model saved as a program "
                         f"(its fake-quantize modules were traced into {op}), which cannot be "
                         f"converted to int8", hint="return the prepared model from a factory "
                         "(module:function) instead (docs/quantization.md)")
    ex = getattr(ep, "example_inputs", None)
    args = ex[0] if isinstance(ex, tuple) and len(ex) == 2 else None
    if not args:
        raise UsageError(f"--model {name}: {path} carries no example inputs",
                         hint="export with torch.export.export(model, example_inputs) and save "
                              "that program")
    if ex[1]:
        raise UsageError(f"--model {name}: keyword example inputs ({', '.join(ex[1])}) are not "
                         f"supported", hint="export with positional example inputs")
    args = _check_inputs(name, args, torch)
    from ...hashing import sha256_file
    return TorchModel(name, ep, args, sha256_file(path))


def stem_of(name: str) -> str:
    """A file-name stem for a PyTorch model: digits-torch, model (model.pt2), mymod_make."""
    if name.startswith("builtin:"):
        return name.split(":", 1)[1]
    if name.lower().endswith(PT2_SUFFIX):
        return Path(name).stem
    return re.sub(r"[^\w-]+", "_", name)


def positional_arrays(model: TorchModel, arrays: Dict[str, Any], what: str) -> List[Any]:
    """Input arrays [N, ...] in the order of the model's positional inputs: by the trailing
    number of litert-torch's names (args_0, serving_default_args_1, ...), else as given."""
    if len(arrays) != len(model.example_inputs):
        raise UsageError(f"{what} has {len(arrays)} input arrays, {model.name} takes "
                         f"{len(model.example_inputs)}")
    nums = [re.search(r"args_(\d+)$", k) for k in arrays]
    if all(nums):
        return [arrays[k] for _, k in sorted(zip((int(m.group(1)) for m in nums), arrays))]
    return list(arrays.values())


def sample_args(model: TorchModel, arrays: List[Any], i: int) -> Tuple[Any, ...]:
    """Sample `i` of each array as a tensor shaped and typed like the example input."""
    torch = import_torch()
    import numpy as np
    return tuple(torch.from_numpy(np.ascontiguousarray(a[i])).reshape(ex.shape).to(ex.dtype)
                 for a, ex in zip(arrays, model.example_inputs))
