"""Built-in models: the registry, the shipped files, the builder's numerics, script determinism."""
from __future__ import annotations

import numpy as np
import pytest

from edge_bench.builtin import BUILTINS, DATA_DIR, resolve
from edge_bench.errors import UsageError
from edge_bench.tflite_builder import ModelBuilder


def _run(model_bytes_or_path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = (Interpreter(model_content=model_bytes_or_path) if isinstance(model_bytes_or_path, bytes)
          else Interpreter(model_path=str(model_bytes_or_path)))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def test_resolve_known_and_unknown():
    m = resolve("builtin:digits")
    assert m.name == "builtin:digits" and m.path.is_file()
    assert m.calibration.is_file() and m.eval.is_file()
    mob = resolve("builtin:mobilenet")
    assert mob.eval is None and mob.calibration.is_file()
    assert "random" in mob.description
    with pytest.raises(UsageError) as e:
        resolve("builtin:resnet")
    assert "builtin:digits" in str(e.value) and "builtin:mobilenet" in str(e.value)


def test_shipped_data_small_and_well_formed():
    total = sum(p.stat().st_size for p in DATA_DIR.iterdir())
    assert total < 4_000_000, total
    for m in BUILTINS.values():
        assert m.path.read_bytes()[4:8] == b"TFL3"
    ev = np.load(resolve("builtin:digits").eval)
    assert ev["x"].dtype == np.float32 and ev["x"].shape[1:] == (64,)
    assert ev["y"].shape == (len(ev["x"]),) and set(np.unique(ev["y"])) == set(range(10))
    assert 0.0 <= ev["x"].min() and ev["x"].max() <= 1.0
    cal = np.load(resolve("builtin:digits").calibration)
    assert cal["x"].shape == (200, 64)
    mcal = np.load(resolve("builtin:mobilenet").calibration)
    assert mcal["x"].shape == (32, 96, 96, 3) and mcal["x"].dtype == np.float32


def test_digits_is_trained():
    m = resolve("builtin:digits")
    ev = np.load(m.eval)
    pred = [int(np.argmax(_run(m.path, x[None]))) for x in ev["x"]]
    assert np.mean(np.asarray(pred) == ev["y"]) >= 0.95


def test_signature_names():
    from ai_edge_litert.interpreter import Interpreter

    for name, inp in (("builtin:digits", "pixels"), ("builtin:mobilenet", "image")):
        it = Interpreter(model_path=str(resolve(name).path))
        assert it.get_signature_list() == {
            "serving_default": {"inputs": [inp], "outputs": ["probabilities"]}}


def _conv_ref(x, w, b, stride, pad):
    """NHWC conv, w [out, kh, kw, in]; pad = (top, left) zero padding for SAME."""
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    oh, ow = -(-h // stride), -(-wd // stride)
    ph = max((oh - 1) * stride + kh - h, 0)
    pw = max((ow - 1) * stride + kw - wd, 0)
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((n, oh, ow, o), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,ohwc->no", patch, w)
    return out + b


def _dw_ref(x, w, b, stride):
    c = x.shape[-1]
    out = np.stack([_conv_ref(x[..., k:k + 1], w[..., k][..., None], b[k:k + 1], stride, None)[..., 0]
                    for k in range(c)], axis=-1)
    return out


def test_builder_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.random((1, 9, 9, 3), dtype=np.float32)
    w1, b1 = rng.normal(size=(4, 3, 3, 3)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    w2, b2 = rng.normal(size=(1, 3, 3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    w3, b3 = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=5).astype(np.float32)

    mb = ModelBuilder("test")
    t = mb.input("x", [1, 9, 9, 3])
    a = mb.conv2d(t, w1, b1, stride=2, activation="relu6")              # [1,5,5,4]
    d = mb.depthwise_conv2d(a, w2, b2, stride=1, activation="relu")     # [1,5,5,4]
    s = mb.add(a, d)
    p = mb.reshape(mb.average_pool2d(s, 5), [1, 4])
    m = mb.mean(s, [1, 2])
    y = mb.softmax(mb.fully_connected(mb.add(p, m), w3, b3))
    mb.output(y, "y")
    got = _run(mb.build(), x)

    ra = np.clip(_conv_ref(x, w1, b1, 2, None), 0, 6)
    rd = np.maximum(_dw_ref(ra, w2, b2, 1), 0)
    rs = ra + rd
    feat = 2 * rs.mean(axis=(1, 2))
    z = feat @ w3.T + b3
    ref = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_make_models_is_deterministic(tmp_path):
    pytest.importorskip("sklearn")
    from edge_bench.builtin.make_models import make_all

    a = make_all(tmp_path / "a")
    b = make_all(tmp_path / "b")
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), name
        # and the committed files are exactly what the script makes
        assert a[name].read_bytes() == (DATA_DIR / name).read_bytes(), name
