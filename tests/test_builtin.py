"""Built-in models: the registry, the shipped files, the builder's numerics, script determinism."""
from __future__ import annotations

import io

import numpy as np
import pytest

from edge_bench.models.builtin import BUILTINS, DATA_DIR, resolve
from edge_bench.errors import UsageError
from edge_bench.models.tflite_builder import ModelBuilder


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
    assert "builtin:digits-torch" in str(e.value)  # the PyTorch built-in is one too


def test_unknown_builtin_on_the_command_line_lists_every_builtin(capsys, tmp_path):
    from edge_bench.cli import main
    rc = main(["quantize", "builtin:resnet", "--variants", "fp32", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, err
    for name in ("builtin:digits", "builtin:mobilenet", "builtin:digits-torch"):
        assert name in lines[0], lines[0]


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


# ---- the builder script is deterministic; the committed files are what it makes ------------------
# Float training runs through numpy's BLAS, whose last-bit rounding depends on the CPU and on the
# BLAS kernel (OPENBLAS_CORETYPE): bytes are only comparable on the machine that made them. So:
# two runs here are byte-identical; the committed files match the script up to that rounding
# (same graph, weights within a tight tolerance, same eval accuracy).
_WEIGHT_RTOL, _WEIGHT_ATOL = 1e-4, 1e-6


def _model_parts(data: bytes):
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    graph, consts = [], {}
    for sg in m.subgraphs:
        for op in sg.operators:
            graph.append(("op", codes[op.opcodeIndex], tuple(op.inputs), tuple(op.outputs)))
        for t in sg.tensors:
            name = t.name.decode() if isinstance(t.name, bytes) else t.name
            graph.append(("tensor", name, tuple(t.shape), t.type))
            buf = m.buffers[t.buffer].data if t.buffer else None
            if buf is not None and len(buf):
                dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT32: np.int32}[t.type]
                consts[name] = np.frombuffer(bytes(bytearray(buf)), dtype=dtype)
    return graph, consts


def _assert_same_up_to_rounding(name: str, made: bytes, committed: bytes) -> None:
    if name.endswith(".tflite"):
        g_made, c_made = _model_parts(made)
        g_comm, c_comm = _model_parts(committed)
        assert g_made == g_comm, f"{name}: graph differs from the committed file"
        assert c_made.keys() == c_comm.keys(), name
        for k in c_made:
            if c_made[k].dtype == np.int32:  # shapes and axes: exact
                np.testing.assert_array_equal(c_made[k], c_comm[k], err_msg=f"{name}: {k}")
            else:
                np.testing.assert_allclose(c_made[k], c_comm[k], rtol=_WEIGHT_RTOL, atol=_WEIGHT_ATOL,
                                           err_msg=f"{name}: weights {k}")
    else:
        with np.load(io.BytesIO(made)) as a, np.load(io.BytesIO(committed)) as b:
            assert sorted(a.files) == sorted(b.files), name
            for k in a.files:
                assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, (name, k)
                if np.issubdtype(a[k].dtype, np.floating):
                    np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7, err_msg=f"{name}:{k}")
                else:
                    np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}:{k}")


def _top1(model: bytes, ev) -> float:
    pred = [int(np.argmax(_run(model, x[None]))) for x in ev["x"]]
    return float(np.mean(np.asarray(pred) == ev["y"]))


def test_make_models_is_deterministic(tmp_path):
    from edge_bench.models.builtin.make_models import make_all

    a = make_all(tmp_path / "a")
    b = make_all(tmp_path / "b")
    assert sorted(a) == sorted(p.name for p in DATA_DIR.iterdir())
    for name in a:
        # same seed, same machine: same bytes
        assert a[name].read_bytes() == b[name].read_bytes(), name
        # the committed files are what the script makes, up to BLAS rounding
        _assert_same_up_to_rounding(name, a[name].read_bytes(), (DATA_DIR / name).read_bytes())
    ev = np.load(DATA_DIR / "digits_eval.npz")
    made_top1 = _top1(a["digits.tflite"].read_bytes(), ev)
    assert made_top1 == _top1((DATA_DIR / "digits.tflite").read_bytes(), ev)
    assert made_top1 >= 0.95


def test_rounding_check_catches_a_changed_weight():
    """The tolerance check above is not vacuous: one weight moved by 1% is caught."""
    from ai_edge_litert import schema_py_generated as schema

    data = (DATA_DIR / "digits.tflite").read_bytes()
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    buf = next(b for b in m.buffers if b.data is not None and len(b.data) >= 4)
    w = np.frombuffer(bytes(bytearray(buf.data)), dtype=np.float32).copy()
    w[np.argmax(np.abs(w))] *= 1.01
    buf.data = np.frombuffer(w.tobytes(), dtype=np.uint8)
    import flatbuffers

    fb = flatbuffers.Builder(0)
    fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
    with pytest.raises(AssertionError):
        _assert_same_up_to_rounding("digits.tflite", bytes(fb.Output()), data)
