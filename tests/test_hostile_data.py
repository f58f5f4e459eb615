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
