"""Quantization-aware training (QAT) models of PyTorch's PT2E flow, for litert-torch.

A QAT-prepared model is what `prepare_qat_pt2e` returns (an exported GraphModule with
fake-quantize modules), after the user fine-tuned it. A factory (`--model mod:function`) may
return one instead of a float model; edge-bench then makes:

- `fp32`: the same network with the fake-quantize modules taken out (the fine-tuned float
  weights), exported and converted by litert-torch; it is also the PyTorch reference;
- `pt2e-int8`: `convert_pt2e` of the QAT model itself (its fake-quantize ranges, learned in
  training: no calibration) and `litert_torch.convert` with a static PT2E QuantConfig.

`prepare_qat(model, example_inputs)` is the preparation a user calls in the training script:
torch.export, litert-torch's own PT2EQuantizer with `is_qat=True` (symmetric, per-channel int8
weights, int8 activations), `prepare_qat_pt2e`. With torch 2.13, litert-torch 0.10.0 and
torchao 0.18.0 fail there without help: their conv+bn annotators and QAT fusions hand plain
pattern *functions* to torch.export (`_get_aten_graph_module_for_pattern`), which in torch 2.13
takes only an nn.Module ("Expected `mod` to be an instance of `torch.nn.Module`, got <class
'function'>"). `patterns_as_modules()` wraps those functions in an nn.Module for the duration
of the call; nothing else changes.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import warnings
from typing import Any, Iterator, Optional, Tuple

from ...errors import UsageError

#: the torchao helper that exports a pattern function, and the modules that import it by name
_PATTERN_FN = "_get_aten_graph_module_for_pattern"
_PATTERN_USERS = ("torchao.quantization.pt2e.utils", "torchao.quantization.pt2e.qat_utils",
                  "torchao.quantization.pt2e.reference_representation_rewrite",
                  "litert_torch.quantize.pt2e_quantizer_utils")


def quantizer() -> Any:
    """litert-torch's PT2EQuantizer set for QAT: symmetric per-channel int8 weights, int8
    activations (QAT is static only)."""
    from litert_torch.quantize import pt2e_quantizer as pq
    cfg = pq.get_symmetric_quantization_config(is_per_channel=True, is_qat=True)
    return pq.PT2EQuantizer().set_global(cfg)


@contextlib.contextmanager
def patterns_as_modules() -> Iterator[None]:
    """While active, the pattern functions torchao/litert-torch export are wrapped in an
    nn.Module (torch.export refuses a plain function). Restored afterwards."""
    import importlib

    import torch

    mods = [importlib.import_module(m) for m in _PATTERN_USERS]
    original = getattr(mods[0], _PATTERN_FN)

    class _Pattern(torch.nn.Module):
        def __init__(self, fn: Any) -> None:
            super().__init__()
            self.fn = fn

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.fn(*args, **kwargs)

    def wrapped(pattern: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(pattern, torch.nn.Module):
            pattern = _Pattern(pattern)
        return original(pattern, *args, **kwargs)

    patched = [m for m in mods if getattr(m, _PATTERN_FN, None) is original]
    for m in patched:
        setattr(m, _PATTERN_FN, wrapped)
    try:
        yield
    finally:
        for m in patched:
            setattr(m, _PATTERN_FN, original)


def prepare_qat(model: Any, example_inputs: Tuple[Any, ...], dynamic_shapes: Any = None) -> Any:
    """`model` exported and prepared for QAT with litert-torch's quantizer: fine-tune the
    returned GraphModule (its fake-quantize modules learn the int8 ranges), then return it
    from an edge-bench factory with example inputs of a batch of 1. `dynamic_shapes` goes to
    torch.export (e.g. `({0: torch.export.Dim("batch")},)` to train on batches)."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    gm = torch.export.export(model, tuple(example_inputs), dynamic_shapes=dynamic_shapes).module()
    with patterns_as_modules():
        return prepare_qat_pt2e(gm, quantizer())


def is_qat_prepared(m: Any) -> bool:
    """A model from `prepare_qat_pt2e` (or eager-mode QAT): it carries fake-quantize modules."""
    return any(_is_fake_quantize(sub) for sub in m.modules())


def _is_fake_quantize(sub: Any) -> bool:
    return any("FakeQuantize" in b.__name__ for b in type(sub).__mro__)


def traced_fake_quantize(graph: Any) -> Optional[str]:
    """The fake-quantize op of a QAT model that was exported again (a .pt2 of it), if any:
    its fake-quantize modules are then plain ops that convert_pt2e cannot turn into int8."""
    for node in graph.nodes:
        if node.op == "call_function" and "fake_quant" in str(node.target):
            return str(node.target)
    return None


def check_prepared(name: str, m: Any) -> None:
    """A QAT model edge-bench can convert: a PT2E GraphModule (eager-mode QAT is refused)."""
    import torch
    if not isinstance(m, torch.fx.GraphModule):
        raise UsageError(f"--model {name}: the factory returned an eager-mode QAT model "
                         f"({type(m).__name__} with fake-quantize modules); only PT2E QAT "
                         f"models convert with litert-torch",
                         hint="prepare with edge_bench.models.pytorch.qat.prepare_qat(model, "
                              "example_inputs) (docs/quantization.md)")


def to_eval(m: Any) -> Any:
    """Dropout and batch norm in eval mode (PT2E's own switch), and `training` off, which
    litert-torch checks (an exported GraphModule refuses .eval())."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    m = move_exported_model_to_eval(m)
    for sub in m.modules():
        sub.training = False
    return m


def _copy(m: Any) -> Any:
    """A deep copy (never change the user's model), without the FutureWarning torch's pytree
    prints when a GraphModule is copied."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return copy.deepcopy(m)


def float_graph(prepared: Any) -> Any:
    """A copy of the QAT model without its fake-quantize modules, in eval mode: the float
    network with the fine-tuned weights (what `fp32` converts and accuracy compares with)."""
    gm = to_eval(_copy(prepared))
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and _is_fake_quantize(gm.get_submodule(node.target)):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    used = {str(n.target) for n in gm.graph.nodes if n.op in ("call_module", "get_attr")}
    for name, sub in list(gm._modules.items()):  # PT2E puts them at the top, shared ones twice
        if _is_fake_quantize(sub) and not any(
                u == name or u.startswith(name + ".") for u in used):
            gm.delete_submodule(name)
    gm.recompile()
    return gm


def converted(prepared: Any) -> Any:
    """convert_pt2e of a copy of the QAT model in eval mode: quantize/dequantize pairs with the
    learned ranges, ready for litert_torch.convert with a static QuantConfig."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e
    return convert_pt2e(to_eval(_copy(prepared)), fold_quantize=False)


def content_sha256(prepared: Any) -> str:
    """The QAT model's content: its graph code and every parameter and buffer (fake-quantize
    scales and zero points included), so a re-trained model is a new cache key."""
    import torch
    h = hashlib.sha256(prepared.code.encode())
    for key, value in sorted(prepared.state_dict().items()):
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode() + str(value.dtype).encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
                 .tobytes())
    return h.hexdigest()
