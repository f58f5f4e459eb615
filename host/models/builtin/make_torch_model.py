"""Regenerate the built-in PyTorch model `builtin:digits-torch` in edge_bench/models/builtin/torch_data/.

    python -m edge_bench.models.builtin.make_torch_model [--out DIR]

Needs torch and scikit-learn (its bundled 8x8 digits, no download). Same stratified split as
builtin:digits (make_models._digits_split). Training is seeded and single-threaded, so two runs
on one machine give the same weights; float rounding differs between CPUs, so compare the
committed files with tolerances (tests/test_torch_builtin.py), never bytes.

* digits_torch.pt2: `torch.export.save` of a small CNN, input float32 [1, 1, 8, 8] (pixels
  scaled from 0..16 to [0, 1]), output [1, 10] logits:
  Conv2d(1, 16, 3, pad 1) ReLU, Conv2d(16, 32, 3, stride 2, pad 1) ReLU, flatten,
  Linear(512, 64) ReLU, Linear(64, 10). Adam, cross-entropy, 40 epochs of batches of 32.
* digits_torch_eval.npz: the held-out 20 % (`x` float32 [N, 1, 8, 8], `y` int64 labels).
* digits_torch_calib.npz: 200 training samples (`x`), for static quantization.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any, Dict

import numpy as np

from .make_models import _digits_split, _npz, write_files
from .torch_models import TORCH_DATA_DIR

SEED = 20261201
EPOCHS, BATCH, LR = 40, 32, 2e-3
CALIB_SAMPLES = 200


def digits_cnn(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def train(x: np.ndarray, y: np.ndarray) -> Any:
    """The trained CNN (eval mode). Deterministic on one machine (seeded, one thread)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(SEED)
        model = digits_cnn(torch)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        xt = torch.from_numpy(x.reshape(-1, 1, 8, 8))
        yt = torch.from_numpy(y)
        gen = torch.Generator().manual_seed(SEED + 1)
        loss_fn = torch.nn.CrossEntropyLoss()
        model.train()
        for _ in range(EPOCHS):
            order = torch.randperm(len(xt), generator=gen)
            for s in range(0, len(order), BATCH):
                idx = order[s:s + BATCH]
                opt.zero_grad()
                loss_fn(model(xt[idx]), yt[idx]).backward()
                opt.step()
        return model.eval()
    finally:
        torch.set_num_threads(threads)


def make_digits_torch() -> Dict[str, bytes]:
    import torch

    x_tr, y_tr, x_ev, y_ev = _digits_split()
    model = train(x_tr, y_tr)
    ep = torch.export.export(model, (torch.zeros(1, 1, 8, 8),))
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    rng = np.random.default_rng(SEED + 2)
    cal = x_tr[np.sort(rng.choice(len(x_tr), CALIB_SAMPLES, replace=False))]
    return {
        "digits_torch.pt2": buf.getvalue(),
        "digits_torch_eval.npz": _npz(x=x_ev.reshape(-1, 1, 8, 8), y=y_ev),
        "digits_torch_calib.npz": _npz(x=cal.reshape(-1, 1, 8, 8)),
    }


def make_all(out_dir: Path = TORCH_DATA_DIR) -> Dict[str, Path]:
    return write_files(make_digits_torch(), out_dir)


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_bench.models.builtin.make_torch_model",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=TORCH_DATA_DIR,
                    help=f"output folder (default {TORCH_DATA_DIR})")
    args = ap.parse_args(argv)
    for _name, path in make_all(args.out).items():
        print(f"{path.stat().st_size:>10,d}  {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
