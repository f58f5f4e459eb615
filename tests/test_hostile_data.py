"""Hostile or damaged data (issue 16): the variant cache, eval and calibration files, labels."""
from __future__ import annotations

from pathlib import Path

from edge_bench.hashing import sha256_file
from edge_bench.models import quantize as Q
from edge_bench.models.builtin import resolve as builtin


def test_cached_variant_corrupted_in_place_is_made_again(tmp_path: Path, capsys) -> None:
    digits = builtin("digits")
    cache = tmp_path / "cache"
    first = Q.cached_variant(digits.path, "int8", digits.calibration, cache)
    good = first.path.read_bytes()
    assert first.sha256 == sha256_file(first.path)
    # flip bytes in the middle of the weights: same size, other content (a bad disk, a bad copy)
    bad = bytearray(good)
    mid = len(bad) // 2
    bad[mid:mid + 64] = bytes(b ^ 0x5A for b in bad[mid:mid + 64])
    first.path.write_bytes(bytes(bad))
    again = Q.cached_variant(digits.path, "int8", digits.calibration, cache)
    assert not again.cached                                  # not used: made again
    assert again.path.read_bytes() == good and again.sha256 == first.sha256
    assert "does not match its sha256" in capsys.readouterr().err
    third = Q.cached_variant(digits.path, "int8", digits.calibration, cache)
    assert third.cached and third.path.read_bytes() == good


def _zip_bomb(path: Path, n_samples: int) -> None:
    """A valid .npz whose x.npy (float32 [n, 64] of zeros) inflates to n*256 bytes: a few MB on
    disk, streamed so the test itself never holds it in memory."""
    import io
    import zipfile

    import numpy as np
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (n_samples, 64)})
    chunk = bytes(16 << 20)
    left = n_samples * 64 * 4
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as m:
            m.write(header.getvalue())
            while left > 0:
                m.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)


def test_eval_and_calibration_zip_bomb_is_refused_before_loading(tmp_path: Path) -> None:
    from edge_bench.models.datafiles import MAX_DATA_BYTES
    from test_hostile_config import one_clean_line
    from test_run_local import edge_bench
    bomb = tmp_path / "bomb.npz"
    _zip_bomb(bomb, MAX_DATA_BYTES // 256 + 1000)
    assert bomb.stat().st_size < 50 << 20
    for flag in ("--eval", "--calibration"):
        p = edge_bench(["run", "--no-store", "--model", "builtin:digits", "--variants", "int8",
                        flag, str(bomb)], tmp_path)
        assert p.returncode in (2, 3), p.stdout + p.stderr
        assert "once decompressed; at most 2048 MB" in p.stdout + p.stderr
        assert "Traceback" not in p.stderr


def test_eval_arrays_that_are_not_batches_of_numbers_are_one_line(tmp_path: Path) -> None:
    import numpy as np
    from test_hostile_config import one_clean_line
    from test_run_local import edge_bench
    cases = {
        "scalar.npz": dict(x=np.float32(1.0)),
        "empty.npz": dict(x=np.zeros((0, 64), np.float32)),
        "text.npz": dict(x=np.array([["a"] * 64])),
        "labels2d.npz": dict(x=np.zeros((2, 64), np.float32), y=np.zeros((2, 2), np.int64)),
        "labels0d.npz": dict(x=np.zeros((2, 64), np.float32), y=np.int64(3)),
        "labelsfloat.npz": dict(x=np.zeros((2, 64), np.float32), y=np.array([0.5, 1.5])),
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        p = edge_bench(["run", "--no-store", "--model", "builtin:digits", "--variants", "fp32",
                        "--eval", str(tmp_path / name)], tmp_path)
        assert p.returncode == 2, (name, p.stdout + p.stderr)
        one_clean_line(p)
        assert str(tmp_path / name) in p.stderr
        if name == "empty.npz":   # says what is wrong, not a shape that looks like the one asked
            assert "'x' holds no samples (shape [0, 64]: N = 0)" in p.stderr, p.stderr


def test_uint8_eval_data_is_quantized_by_value_for_int8_inputs(tmp_path: Path) -> None:
    """Binarized digits as uint8 0/1: the int8 variant must see the same values as the fp32
    reference (1 -> 1.0 quantized), not a raw cast (1 -> int8 1 = 0.5 after dequantization)."""
    import json

    import numpy as np
    from test_run_local import edge_bench
    digits = builtin("digits")
    z = np.load(digits.eval)
    x = (z["x"] > 0.5).astype(np.uint8)
    np.savez(tmp_path / "bin.npz", x=x, y=z["y"])
    out = tmp_path / "out.json"
    p = edge_bench(["run", "--no-store", "--model", "builtin:digits", "--variants", "fp32,int8",
                    "--eval", str(tmp_path / "bin.npz"), "--runs", "3", "--warmup", "0",
                    "--min-seconds", "0", "--processes", "1", "--json", str(out)], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    res = {r["variant"]: r for r in json.loads(out.read_text())["results"]}
    ref, q = res["fp32"]["accuracy"], res["int8"]["accuracy"]
    assert q["flag"] is None and q["agreement_vs_ref"] > 0.9, q
    assert abs(q["top1"] - ref["top1"]) < 0.05
