"""builtin:digits-torch: the shipped files are what make_torch_model makes.

Training runs through PyTorch's CPU kernels, whose float rounding differs between CPUs (and
40 epochs of Adam carry such differences along), so the committed .pt2 is compared by what it
is and does, never by its bytes: same graph and parameter shapes, weights close, same eval
accuracy within one point, the same predictions on nearly every eval sample. (Two runs on one
machine give the same bytes: checked by hand, not here, to save a training run of CI time.)
The data files (a split of scikit-learn's digits) match exactly.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from torch_helpers import require_torch

pytestmark = pytest.mark.timeout(900)


def _predict(pt2: bytes, x: np.ndarray) -> np.ndarray:
    import torch
    m = torch.export.load(io.BytesIO(pt2)).module()
    with torch.no_grad():
        return np.stack([m(torch.from_numpy(s[None]))[0].numpy() for s in x])


def test_shipped_files_are_registered_and_small() -> None:
    from edge_bench.models.builtin.torch_models import TORCH_DATA_DIR, resolve_torch
    b = resolve_torch("builtin:digits-torch")
    assert b.path.is_file() and b.calibration.is_file() and b.eval.is_file()
    assert sum(p.stat().st_size for p in TORCH_DATA_DIR.iterdir()) < 500_000
    ev, cal = np.load(b.eval), np.load(b.calibration)
    assert ev["x"].shape[1:] == (1, 8, 8) and ev["x"].dtype == np.float32
    assert set(np.unique(ev["y"])) == set(range(10)) and len(ev["y"]) == len(ev["x"])
    assert cal["x"].shape == (200, 1, 8, 8)


def test_make_torch_model_matches_the_committed_files(tmp_path: Path) -> None:
    require_torch()
    import torch
    from edge_bench.models.builtin.make_torch_model import make_all
    from edge_bench.models.builtin.torch_models import TORCH_DATA_DIR

    a = make_all(tmp_path / "a")  # one training run: about 20 s of CPU
    assert sorted(a) == sorted(p.name for p in TORCH_DATA_DIR.iterdir())
    for name in ("digits_torch_eval.npz", "digits_torch_calib.npz"):
        with np.load(a[name]) as made, np.load(TORCH_DATA_DIR / name) as comm:
            assert sorted(made.files) == sorted(comm.files)
            for k in made.files:
                np.testing.assert_allclose(made[k], comm[k], rtol=1e-6, atol=1e-7)

    made = torch.export.load(str(a["digits_torch.pt2"]))
    comm = torch.export.load(str(TORCH_DATA_DIR / "digits_torch.pt2"))
    assert str(made.graph) == str(comm.graph)
    sd_m, sd_c = made.state_dict, comm.state_dict
    assert {k: tuple(v.shape) for k, v in sd_m.items()} == {k: tuple(v.shape)
                                                           for k, v in sd_c.items()}
    for k in sd_m:
        w_m, w_c = sd_m[k].detach().numpy(), sd_c[k].detach().numpy()
        # close relative to the layer's scale (rounding carried through training, not bytes)
        assert np.abs(w_m - w_c).max() <= 0.05 * np.abs(w_c).max() + 1e-6, k

    ev = np.load(TORCH_DATA_DIR / "digits_torch_eval.npz")
    p_made = _predict(a["digits_torch.pt2"].read_bytes(), ev["x"]).argmax(1)
    p_comm = _predict((TORCH_DATA_DIR / "digits_torch.pt2").read_bytes(), ev["x"]).argmax(1)
    top1_made, top1_comm = np.mean(p_made == ev["y"]), np.mean(p_comm == ev["y"])
    assert top1_comm >= 0.95
    assert abs(top1_made - top1_comm) <= 0.01
    assert np.mean(p_made == p_comm) >= 0.98
