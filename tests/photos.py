"""Real photos for calibration/eval tests: the sample images scikit-image ships in its wheel
(astronaut, cat, coffee, rocket, ...; `skimage.data.data_dir`) and faces from its bundled
LFW subset, copied into a folder. Nothing is downloaded: only files inside the package."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import List

import numpy as np
import pytest

#: synthetic or drawn images among the samples: not photos
NOT_PHOTOS = {"logo.png", "chessboard_GRAY.png", "chessboard_RGB.png", "phantom.png",
              "clock_motion.png", "horse.png", "page.png", "text.png", "cell.png",
              "color.png"}


def photo_files() -> List[Path]:
    data = pytest.importorskip("skimage.data")
    return sorted(p for p in Path(data.data_dir).iterdir()
                  if p.suffix in (".png", ".jpg") and p.name not in NOT_PHOTOS)


def photo_folder(dest: Path, faces: int = 0, every: int = 1, start: int = 0) -> Path:
    """`dest` filled with the photos (every `every`-th from `start`) and `faces` LFW faces."""
    from PIL import Image
    data = pytest.importorskip("skimage.data")
    dest.mkdir(parents=True, exist_ok=True)
    for p in photo_files()[start::every]:
        shutil.copy(p, dest / p.name)
    if faces:
        lfw = data.lfw_subset()                       # [200, 25, 25] floats in [0, 1]
        for i in range(start, faces * every, every):
            Image.fromarray((lfw[i] * 255).astype(np.uint8)).save(dest / f"face{i:03d}.png")
    return dest
