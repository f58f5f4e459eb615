"""PyTorch models in (the optional `[torch]` extra): load, convert with litert-torch, quantize
with PyTorch's PT2E flow, and score against the PyTorch model itself.

`--model` takes, besides .tflite files:

- a `.pt2` file: an ExportedProgram saved with `torch.export.save(ep, "model.pt2")` (its example
  inputs are saved with it);
- a factory `package.module:function` (importable from the current directory or sys.path) that
  returns `(nn.Module, example_inputs)`, example_inputs a tuple of tensors (batch of 1); the
  module may be QAT-prepared (`qat.prepare_qat`, then fine-tuned: see qat.py);
- a built-in PyTorch model, `builtin:digits-torch` (see builtin/make_torch_model.py).

`source` loads them (torch imported lazily; without it one line says what to install),
`convert` makes the float .tflite and the PT2E variants (cached by content), `qat` prepares
QAT models and takes their float network apart from their fake-quantize modules, `reference`
runs the PyTorch fp32 model on the eval set (the reference every variant is scored against).
"""
from .source import INSTALL_HINT, TorchModel, is_torch_model, load_torch_model

__all__ = ["INSTALL_HINT", "TorchModel", "is_torch_model", "load_torch_model"]
