"""A QAT example: builtin:digits-torch fine-tuned with quantization-aware training (PT2E).

    edge-bench run --model edge_bench.models.builtin.torch_qat:digits_torch_qat \\
        --quantizer pt2e --eval <edge_bench>/models/builtin/torch_data/digits_torch_eval.npz

`digits_torch_qat()` is a factory like any user's: it returns `(prepared_model,
example_inputs)`, where `prepared_model` is the built-in CNN's trained weights prepared with
`qat.prepare_qat` (litert-torch's PT2EQuantizer, `is_qat=True`) and fine-tuned for
`QAT_EPOCHS` epochs on the training split of the digits (the same split as the built-in;
seeded, one thread, a few seconds). Needs torch, litert-torch and scikit-learn.
"""
from __future__ import annotations

from typing import Any, Tuple

from .make_models import _digits_split
from .make_torch_model import BATCH, SEED, digits_cnn
from .torch_models import TORCH_BUILTINS

QAT_EPOCHS, QAT_LR = 2, 1e-4


def float_digits_cnn(torch: Any) -> Any:
    """The built-in digits CNN as an nn.Module with the shipped trained weights."""
    ep = torch.export.load(str(TORCH_BUILTINS["builtin:digits-torch"].path))
    model = digits_cnn(torch)
    model.load_state_dict(dict(ep.state_dict))
    return model.eval()


def digits_torch_qat() -> Tuple[Any, Tuple[Any, ...]]:
    """(QAT-prepared and fine-tuned digits CNN, example inputs of a batch of 1)."""
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_train

    from ..pytorch.qat import prepare_qat

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(SEED + 3)
        batch = torch.export.Dim("batch")
        prepared = prepare_qat(float_digits_cnn(torch), (torch.zeros(2, 1, 8, 8),),
                               dynamic_shapes=({0: batch},))
        move_exported_model_to_train(prepared)
        x, y, _, _ = _digits_split()
        xt, yt = torch.from_numpy(x.reshape(-1, 1, 8, 8)), torch.from_numpy(y)
        opt = torch.optim.Adam(prepared.parameters(), lr=QAT_LR)
        gen = torch.Generator().manual_seed(SEED + 4)
        for _ in range(QAT_EPOCHS):
            order = torch.randperm(len(xt), generator=gen)
            for s in range(0, len(order), BATCH):
                idx = order[s:s + BATCH]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(prepared(xt[idx]), yt[idx]).backward()
                opt.step()
        return prepared, (torch.zeros(1, 1, 8, 8),)
    finally:
        torch.set_num_threads(threads)
