"""The libraries' own output stays off the terminal (host/quiet.py): captured at the file
descriptor level, shown with --verbose, and kept to explain an error."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_bench import quiet
from edge_bench.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_capture_takes_c_level_and_python_output(capfd: pytest.CaptureFixture) -> None:
    libc = ctypes.CDLL(None)
    with quiet.quiet("test") as cap:
        os.write(2, b"INFO: straight to fd 2\n")
        libc.printf(b"printf from C, buffered while fd 1 is a file\n")
        print("a Python print")
        print("to sys.stderr", file=sys.stderr)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    for text in ("INFO: straight to fd 2", "printf from C", "a Python print", "to sys.stderr"):
        assert text in cap.text and text in quiet.captured()
    print("after")  # the descriptors are back
    assert capfd.readouterr().out == "after\n"


def test_converter_capture_hands_back_the_text_and_silences_warnings(
        capfd: pytest.CaptureFixture) -> None:
    import warnings
    with pytest.raises(RuntimeError):
        with quiet.captured_output("converter") as log:
            os.write(2, b"I0000 00:00 absl notice\n")
            os.write(1, b"error: op FOO has no lowering\n")
            warnings.warn("a deprecation", FutureWarning)
            raise RuntimeError("conversion failed")
    out, err = capfd.readouterr()
    assert out == "" and err == "" and len(log) == 1
    assert "absl notice" in log[0] and "op FOO" in log[0]
    assert quiet.noise_free(log[0]) == "error: op FOO has no lowering"
    assert "op FOO" in quiet.take_failure_output()  # kept for the error line (and taken here)
    assert quiet.noise_free("x" * 50 + "\nlast line", limit=9) == "last line"


def test_verbose_shows_it_and_a_failure_keeps_it(capfd: pytest.CaptureFixture) -> None:
    quiet.set_verbose(True)
    try:
        with quiet.quiet("v"):
            os.write(2, b"shown with --verbose\n")
    finally:
        quiet.set_verbose(False)
    assert "shown with --verbose" in capfd.readouterr().err
    with pytest.raises(ValueError):
        with quiet.quiet("fails"):
            os.write(2, b"\rRunning:  50%|#####     | 1/2\rwhy it failed: bad tensor\n")
            raise ValueError("boom")
    assert capfd.readouterr().err == ""
    assert quiet.take_failure_output() == "why it failed: bad tensor"  # the bar is left out
    assert quiet.take_failure_output() == ""  # once


def quantize(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, EDGE_BENCH_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", "quantize", "builtin:digits",
                           "--variants", "fp32,int8,dynamic-int8", "-o", str(tmp_path / "o"), *extra],
                          capture_output=True, text=True, env=env, timeout=600)


def test_quantize_is_quiet_unless_verbose(tmp_path: Path) -> None:
    p = quantize(tmp_path / "a")
    assert p.returncode == 0, p.stderr
    both = p.stdout + p.stderr
    assert "XNNPACK" not in both and "Calibration" not in both and "%|" not in both, both
    assert "int8" in p.stdout
    p = quantize(tmp_path / "b", "--verbose")  # a fresh cache: the quantizer runs again
    assert p.returncode == 0, p.stderr
    assert "Running Calibration" in p.stderr or "XNNPACK" in p.stderr, p.stderr


def test_a_failing_quantizer_says_what_it_printed(tmp_path: Path, monkeypatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    from edge_bench.models import quantize as Q

    def noisy(model_path, variant, calibration, signature=None):
        with Q._quiet():
            os.write(2, b"ERROR: tensor 'dense/kernel' has no quantization parameters\n")
            raise RuntimeError("quantization failed")
    monkeypatch.setattr(Q, "_run_quantizer", noisy)
    rc = main(["quantize", "builtin:digits", "--variants", "dynamic-int8", "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 3 and "quantization failed" in err
    assert "the quantizer printed: ERROR: tensor 'dense/kernel' has no quantization parameters" in err
