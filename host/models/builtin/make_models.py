"""Regenerate the built-in models and their data in edge_bench/builtin/data/.

    python -m edge_bench.models.builtin.make_models [--out DIR]

Needs scikit-learn (for its bundled 8x8 digits set, no download) and numpy; no TensorFlow.
The .tflite files are written with edge_bench.models.tflite_builder. Everything is seeded, so two runs
on the same machine give byte-identical files.

* digits.tflite: an MLP 64 -> 128 (ReLU) -> 64 (ReLU) -> 10 (softmax) trained here with numpy
  (Adam, cross-entropy) on sklearn's 8x8 digits. Input float32 [1, 64], pixel values scaled from
  0..16 to [0, 1]; output float32 [1, 10] class probabilities.
  digits_eval.npz: the held-out 20 % split (`x` float32 [N, 64], `y` int64 labels), never trained
  on. digits_calib.npz: 200 samples (`x`) from the training split, for static quantization.
* mobilenet.tflite: a MobileNet-v1-style model for 96x96x3 float32 images in [-1, 1]: a 3x3/2
  conv stem, depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, ReLU6), global average
  pool (MEAN), a fully connected layer and softmax over 1000 classes. Its weights are RANDOM
  (He-initialised from a fixed seed; the pooled features are centred on their mean over the
  calibration images so outputs vary per image): it exists to measure latency and quantized
  sizes. Its predictions mean nothing, and a random deep net amplifies quantization noise (int8
  agrees with fp32 on few of its argmaxes), so no eval set is shipped for it. mobilenet_calib.npz: 32 smooth random images (`x`).
"""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from ..tflite_builder import ModelBuilder

DATA_DIR = Path(__file__).resolve().parent / "data"

DIGITS_SEED = 20240607
MOBILENET_SEED = 96
DIGITS_HIDDEN = (128, 64)
DIGITS_INPUT, DIGITS_OUTPUT = "pixels", "probabilities"
MOBILENET_INPUT, MOBILENET_OUTPUT = "image", "probabilities"
MOBILENET_CLASSES = 1000
# (pointwise output channels, depthwise stride) per depthwise-separable block (MobileNet v1, alpha 0.5)
MOBILENET_BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1))


# ---- digits -----------------------------------------------------------------------------------
def _digits_split() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # only this script needs scikit-learn

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(DIGITS_SEED)
    train_idx, eval_idx = [], []
    for c in range(10):  # stratified 80/20 split
        idx = rng.permutation(np.flatnonzero(y == c))
        n_eval = int(round(len(idx) * 0.2))
        eval_idx.extend(idx[:n_eval])
        train_idx.extend(idx[n_eval:])
    train_idx = np.sort(np.asarray(train_idx))
    eval_idx = np.sort(np.asarray(eval_idx))
    return x[train_idx], y[train_idx], x[eval_idx], y[eval_idx]


def _forward(params, x):
    h = x
    acts = [h]
    n = len(params)
    for i, (w, b) in enumerate(params):
        z = h @ w.T + b
        h = np.maximum(z, 0.0) if i < n - 1 else z
        acts.append(h)
    return acts


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_digits(x: np.ndarray, y: np.ndarray, epochs: int = 150, batch: int = 32,
                 lr: float = 2e-3, weight_decay: float = 1e-4):
    """Plain-numpy MLP training (float64, Adam). Returns [(W[out,in], b[out]), ...] float32."""
    rng = np.random.default_rng(DIGITS_SEED + 1)
    sizes = (x.shape[1],) + DIGITS_HIDDEN + (10,)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))
        params.append([w, np.zeros(fan_out)])
    m = [[np.zeros_like(p) for p in layer] for layer in params]
    v = [[np.zeros_like(p) for p in layer] for layer in params]
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    x64 = x.astype(np.float64)
    onehot = np.eye(10)[y]
    for _ in range(epochs):
        order = rng.permutation(len(x64))
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            acts = _forward(params, x64[idx])
            grad = (_softmax(acts[-1]) - onehot[idx]) / len(idx)
            step += 1
            for i in reversed(range(len(params))):
                w, _b = params[i]
                gw = grad.T @ acts[i] + weight_decay * w
                gb = grad.sum(axis=0)
                if i > 0:
                    grad = (grad @ w) * (acts[i] > 0)
                for j, g in enumerate((gw, gb)):
                    m[i][j] = b1 * m[i][j] + (1 - b1) * g
                    v[i][j] = b2 * v[i][j] + (1 - b2) * g * g
                    mh = m[i][j] / (1 - b1 ** step)
                    vh = v[i][j] / (1 - b2 ** step)
                    params[i][j] = params[i][j] - lr * mh / (np.sqrt(vh) + eps)
    return [(w.astype(np.float32), b.astype(np.float32)) for w, b in params]


def build_digits_tflite(params) -> bytes:
    mb = ModelBuilder("edge-bench builtin:digits (MLP on sklearn 8x8 digits)")
    h = mb.input(DIGITS_INPUT, [1, 64])
    for i, (w, b) in enumerate(params):
        last = i == len(params) - 1
        h = mb.fully_connected(h, w, b, activation=None if last else "relu", name=f"dense_{i}")
    mb.output(mb.softmax(h), DIGITS_OUTPUT)
    return mb.build()


def make_digits() -> Dict[str, bytes]:
    xtr, ytr, xev, yev = _digits_split()
    params = train_digits(xtr, ytr)
    calib_idx = np.sort(np.random.default_rng(DIGITS_SEED + 2).choice(len(xtr), 200, replace=False))
    return {
        "digits.tflite": build_digits_tflite(params),
        "digits_eval.npz": _npz(x=xev.astype(np.float32), y=yev.astype(np.int64)),
        "digits_calib.npz": _npz(x=xtr[calib_idx].astype(np.float32)),
    }


# ---- mobilenet --------------------------------------------------------------------------------
def _he(rng, shape, fan_in):
    return (rng.standard_normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _mobilenet_graph(mb: ModelBuilder, seed: int,
                     after_block: Optional[Callable[[int, int, int], int]] = None) -> int:
    """Stem + depthwise-separable blocks + global average pool; returns the [1, C] features.
    `after_block(i, h, channels) -> h` may add layers after block i (benchmarks use it)."""
    rng = np.random.default_rng(seed)
    h = mb.input(MOBILENET_INPUT, [1, 96, 96, 3])
    c = 16
    h = mb.conv2d(h, _he(rng, (c, 3, 3, 3), 27), 0.05 * rng.standard_normal(c), stride=2,
                  activation="relu6", name="stem")
    for i, (cout, stride) in enumerate(MOBILENET_BLOCKS):
        h = mb.depthwise_conv2d(h, _he(rng, (1, 3, 3, c), 9), 0.05 * rng.standard_normal(c),
                                stride=stride, activation="relu6", name=f"block_{i}/depthwise")
        h = mb.conv2d(h, _he(rng, (cout, 1, 1, c), c), 0.05 * rng.standard_normal(cout),
                      activation="relu6", name=f"block_{i}/pointwise")
        c = cout
        if after_block is not None:
            h = after_block(i, h, c)
    return mb.mean(h, [1, 2])  # global average pool -> [1, c]


def _feature_stats(images: np.ndarray, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Mean/std of the pooled features over `images`, run through LiteRT (rounded to float16
    precision so that the classifier weights do not depend on the last bits of the runtime)."""
    from ai_edge_litert.interpreter import Interpreter

    mb = ModelBuilder("features")
    mb.output(_mobilenet_graph(mb, seed), "features")
    it = Interpreter(model_content=mb.build(), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    feats = []
    for img in images:
        it.set_tensor(inp, img[None])
        it.invoke()
        feats.append(it.get_tensor(out)[0].astype(np.float64))
    f = np.asarray(feats)
    mu = f.mean(axis=0).astype(np.float16).astype(np.float32)
    sd = np.maximum(f.std(axis=0), 1e-3).astype(np.float16).astype(np.float32)
    return mu, sd


def build_mobilenet_tflite(seed: int = MOBILENET_SEED) -> bytes:
    """Random convolution and classifier weights. The pooled features are centred (an ADD of
    minus their mean over the calibration images) before the classifier, so predictions vary
    from image to image instead of collapsing onto one class."""
    mu, sd = _feature_stats(mobilenet_calibration(), seed)
    mb = ModelBuilder("edge-bench builtin:mobilenet (MobileNet-v1-style 96x96, RANDOM weights)")
    h = _mobilenet_graph(mb, seed)
    c = mb.shape(h)[-1]
    h = mb.add(h, mb.const("features/center", -mu[None, :]))
    rng = np.random.default_rng(seed + 1000)
    gain = 3.0 / np.sqrt(c) / float(np.sqrt(np.mean(sd.astype(np.float64) ** 2)))
    w = (rng.standard_normal((MOBILENET_CLASSES, c)) * gain).astype(np.float32)
    logits = mb.fully_connected(h, w, np.zeros(MOBILENET_CLASSES, np.float32), name="classifier")
    mb.output(mb.softmax(logits), MOBILENET_OUTPUT)
    return mb.build()


def mobilenet_calibration(n: int = 32, seed: int = MOBILENET_SEED + 1) -> np.ndarray:
    """Smooth random images in [-1, 1] (low-frequency colour fields + a few blobs), on a
    1/64 grid so that the compressed .npz stays small."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32) / 95.0
    out = np.empty((n, 96, 96, 3), np.float32)
    for k in range(n):
        img = np.zeros((96, 96, 3), np.float32)
        for ch in range(3):
            a, b, c = rng.uniform(-1, 1, 3)
            img[..., ch] = a * xx + b * yy + c
        for _ in range(3):
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            img += blob[..., None] * rng.uniform(-1, 1, 3).astype(np.float32)
        out[k] = np.clip(img, -1, 1)
    return (np.round(out * 32) / 32).astype(np.float32)


def make_mobilenet() -> Dict[str, bytes]:
    return {
        "mobilenet.tflite": build_mobilenet_tflite(),
        "mobilenet_calib.npz": _npz(x=mobilenet_calibration()),
    }


# ---- output -----------------------------------------------------------------------------------
def _npz(**arrays: np.ndarray) -> bytes:
    """A compressed .npz with fixed member timestamps (np.savez_compressed stamps "now",
    which would make the files differ run to run)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def make_all(out_dir: Path = DATA_DIR) -> Dict[str, Path]:
    return write_files({**make_digits(), **make_mobilenet()}, out_dir)


def write_files(files: Dict[str, bytes], out_dir: Path) -> Dict[str, Path]:
    """Write each file through a temp name (also used by make_torch_model)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, data in files.items():
        path = out_dir / name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        written[name] = path
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_bench.models.builtin.make_models",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DATA_DIR, help=f"output folder (default {DATA_DIR})")
    args = ap.parse_args(argv)
    for name, path in make_all(args.out).items():
        print(f"{path.stat().st_size:>10,d}  {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
